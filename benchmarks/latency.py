"""Params, GMACs and latency of RGB-only vs RGB-D EfficientViT-SAM, per fusion block.

    python benchmarks/latency.py [--preset efficientvit-sam-l0] [--fusion-point neck] [--device cpu]

Latency is one image through the encoder(s), the fusion block(s) and one box prompt's
decoder, as a ratio to the RGB-only model: the models take turns one forward at a time over
``--runs`` rounds and the medians are compared (absolute times are printed too, but only a
GPU's are worth quoting). Target: ``add`` ≤ 1.9×.
"""
from __future__ import annotations

import argparse

import torch

from fusionlab.fusion import list_fusions
from fusionlab.models import build_model
from fusionlab.models.cost import count_parameters, encoder_gmacs, latency_ratios, latency_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", help="model preset(s) (default: l0 and nano)")
    parser.add_argument("--fusion-point", default="neck")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runs", type=int, default=7, help="timed rounds of alternating forwards")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for preset in args.preset or ["efficientvit-sam-l0", "efficientvit-sam-nano"]:
        models = {"rgb-only": build_model(preset)}
        for block in list_fusions():
            models[block] = build_model(preset, fusion=block, fusion_point=args.fusion_point)
        for model in models.values():
            model.to(device).eval()
        ratios = latency_ratios(models, "rgb-only", runs=args.runs)
        base_seconds = latency_seconds(models["rgb-only"])
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
            f"CPU, {torch.get_num_threads()} threads"
        print(f"\n{preset} at {models['rgb-only'].image_size[1]} px, fusion point {args.fusion_point}, {name}")
        print(f"{'variant':<16}{'params (M)':>12}{'GMACs':>10}{'latency ×':>12}")
        for variant, model in models.items():
            print(f"{variant:<16}{count_parameters(model) / 1e6:>12.2f}{encoder_gmacs(model):>10.1f}"
                  f"{ratios[variant]:>12.2f}")
        print(f"(rgb-only: {base_seconds * 1e3:.1f} ms per image with one box prompt)")


if __name__ == "__main__":
    main()
