"""Params, GMACs and latency of RGB-D EfficientViT-SAM against RGB-only: per fusion block, and per
depth encoder at each fusion point.

    python benchmarks/latency.py                          # both tables on L0 and L2 at 512 px
    python benchmarks/latency.py --axis encoders --preset efficientvit-sam-l0 --runs 9
    python benchmarks/latency.py --axis fusions --fusion-point neck_inputs

Latency is one image through the encoder(s), the fusion block(s) and one box prompt's
decoder, as a ratio to the RGB-only model of the same table: the models take turns one forward
at a time (A, B, C, A, B, C, ...) over ``--runs`` rounds after two untimed ones, and the medians
are compared, so that outside load slows every model alike (absolute times are printed too, but
only a GPU's are worth quoting). ``GMACs ×`` is the same ratio by arithmetic: a latency ratio well
above it is overhead beyond the multiply-accumulates.

Targets: a light depth encoder's latency ratio ≤ 1.15 (L0 at 512 px, on the CPU); ``same``'s
latency ratio within 5 % of its GMACs ratio.
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Tuple

import torch

from fusionlab.fusion import list_fusions
from fusionlab.models import build_model
from fusionlab.models.cost import count_parameters, encoder_gmacs, latency_ratios, latency_seconds

# (row label, depth_encoder, extra SamConfig fields); "shared, 1 batch" batches RGB and depth, which
# "shared" does on a GPU only;
# depth_size "half" is half the encoder's input side
ENCODERS: List[Tuple[str, str, dict]] = [
    ("same", "same", {}),
    ("same, depth at half size", "same", {"depth_size": "half"}),
    ("shared", "shared", {}),
    ("shared, 1 batch", "shared", {}),
    ("efficientvit-half", "efficientvit-half", {}),
    ("efficientvit-quarter", "efficientvit-quarter", {}),
    ("timm:resnet18", "timm:resnet18", {}),
    ("timm:convnext_atto", "timm:convnext_atto", {}),
    ("timm:efficientvit_b0", "timm:efficientvit_b0", {}),
    ("timm:mobilenetv4_conv_small", "timm:mobilenetv4_conv_small", {}),
    ("timm:mobilenetv3_small_100", "timm:mobilenetv3_small_100", {}),
]
POINTS = ("neck", "neck_inputs")


def fusion_models(preset: str, point: str) -> Dict[str, torch.nn.Module]:
    models = {"rgb-only": build_model(preset)}
    for block in list_fusions():
        models[block] = build_model(preset, fusion=block, fusion_point=point)
    return models


def encoder_models(preset: str, point: str) -> Dict[str, torch.nn.Module]:
    models = {"rgb-only": build_model(preset)}
    half = models["rgb-only"].image_size[1] // 2
    for label, encoder, fields in ENCODERS:
        fields = {k: half if v == "half" else v for k, v in fields.items()}
        models[label] = build_model(preset, fusion="add", fusion_point=point, depth_encoder=encoder, **fields)
        if label == "shared, 1 batch":
            models[label].depth_encoder.batches_with_rgb = True
    return models


def print_table(title: str, models: Dict[str, torch.nn.Module], device: torch.device, runs: int) -> None:
    for model in models.values():
        model.to(device).eval()
    ratios = latency_ratios(models, "rgb-only", runs=runs)
    base_seconds = latency_seconds(models["rgb-only"])
    gmacs = {name: encoder_gmacs(model) for name, model in models.items()}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n{title}, {where}")
    print(f"| {'variant':<28} | {'params (M)':>10} | {'GMACs':>7} | {'GMACs ×':>7} | {'latency ×':>9} |")
    print(f"|{'-' * 30}|{'-' * 11}:|{'-' * 8}:|{'-' * 8}:|{'-' * 10}:|")
    for name, model in models.items():
        print(f"| {name:<28} | {count_parameters(model) / 1e6:>10.2f} | {gmacs[name]:>7.2f} | "
              f"{gmacs[name] / gmacs['rgb-only']:>7.2f} | {ratios[name]:>9.2f} |")
    print(f"(rgb-only: {base_seconds * 1e3:.1f} ms per image with one box prompt; medians of {runs} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", help="model preset(s) (default: l0 and l2)")
    parser.add_argument("--axis", choices=["fusions", "encoders", "both"], default="both")
    parser.add_argument("--fusion-point", default="neck", help="where the fusion blocks sit (fusions table)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--runs", type=int, default=7, help="timed rounds of alternating forwards (at least 7)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for preset in args.preset or ["efficientvit-sam-l0", "efficientvit-sam-l2"]:
        size = build_model(preset).image_size[1]
        if args.axis in ("fusions", "both"):
            print_table(f"{preset} at {size} px: fusion blocks at {args.fusion_point}",
                        fusion_models(preset, args.fusion_point), device, args.runs)
        if args.axis in ("encoders", "both"):
            for point in POINTS:  # one table per point keeps one preset's models in memory at a time
                print_table(f"{preset} at {size} px: depth encoders, add at {point}",
                            encoder_models(preset, point), device, args.runs)


if __name__ == "__main__":
    main()
