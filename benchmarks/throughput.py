"""Training throughput of (RGB-D) EfficientViT-SAM: images/s, peak memory, MFU and the projected
wall time of the paper's fine-tuning; Depth Anything V2-Small's images/s; and the share of a
training step spent waiting for data.

    python benchmarks/throughput.py                  # GPU: L0 and L2 at 512 px, RGB-only / add+same / add+quarter
    python benchmarks/throughput.py --tiny           # the demo preset at 128 px, batch 2 (the default on a CPU)
    python benchmarks/throughput.py --presets efficientvit-sam-l0 --variants rgb --batch 64 --compile --channels-last

Training: the recipe's step (:func:`fusionlab.train.train_step`: bf16 autocast on a GPU, fp32 on
the CPU, ``--masks`` box prompts per image, multimask output every other step) on one random batch
kept on the device, so that no data loading is in it: the batch over the median step of ``--steps``
timed steps after two untimed ones. On a GPU the batch doubles from
``--min-batch`` until it runs out of memory or passes ``--max-batch``; the largest that fits is
timed. MFU = forward GMACs per image × 2 FLOP/MAC × 3 (forward + backward) × images/s over the
device's peak FLOP/s, measured here by a large matmul (bf16 on a GPU, fp32 on the CPU). The GMACs
are counted by torch's FlopCounterMode: the encoder(s) and fusion
(:func:`fusionlab.models.cost.encoder_gmacs`) plus the mask decoder on ``--masks`` prompts.
Peak memory: ``torch.cuda.max_memory_allocated`` on a GPU; on the CPU the process's maximum
resident set size so far (``resource.getrusage``), which can only grow from row to row. The wall
time is the paper's fine-tuning, 11.2k SA-1B images × 4 epochs, at the row's images/s.

Depth Anything: ``transformers``' DepthAnythingForDepthEstimation with V2-Small's sizes and random
weights (nothing is downloaded), in fp32 inference as the ``depth_anything`` source runs it, on
``--da-size`` px square inputs; MFU over the fp32 matmul peak, forward only; its wall time is the
11.2k images once (maps are cached on disk). Then the ``depth_anything`` source fills a fresh
cache for ``--da-images`` synthetic scenes (at most 256 px, resized by the processor to the same
input) with the same model and batch, as ``fusionlab
depth`` does (decode, preprocess, predict, resize to the image, encode and write, the three stages
overlapping), after an untimed batch; its images/s over the forward's is the share of the model's
throughput that the precompute keeps. Target: ≥ 0.90.

Data share: short runs of the real loop (:func:`fusionlab.train.train`) of an RGB-D model on
``--data-batch`` × ``--data-steps`` embedded synthetic scenes with their own depth (one epoch; the
images at ``--data-size``, by default the model's input size; they are rendered once into the
cache, ~2 images/s at 512 px on one core): time spent waiting for the next batch over the whole
step, from the second batch on (the first one starts the workers). The loader's workers prefetch
two batches each, so the runs need several times more steps than that. On a GPU the device is
synchronised before each batch is asked for, so the share is an upper bound: data loading does not
overlap the step's last kernels. Target: a share ≤ 10 % on a GPU.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import resource
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from unittest import mock

import torch
from torch.utils.flop_counter import FlopCounterMode

import fusionlab.train
from fusionlab.config import RunConfig, TrainSection, from_dict
from fusionlab.data.training import Targets
from fusionlab.models import build_model
from fusionlab.models.cost import count_parameters, device_name, encoder_gmacs
from fusionlab.models.sam import EfficientViTSam
from fusionlab.models.speed import apply_speed_options
from fusionlab.train import param_groups, train_step

PAPER_IMAGES, PAPER_EPOCHS = 11_200, 4
# variant -> (label, SamConfig fields)
VARIANTS: Dict[str, Tuple[str, dict]] = {
    "rgb": ("RGB-only", {}),
    "same": ("add, same", {"fusion": "add", "depth_encoder": "same"}),
    "quarter": ("add, efficientvit-quarter", {"fusion": "add", "depth_encoder": "efficientvit-quarter"}),
}
# defaults on a GPU, and on the CPU (or with --tiny); an option given on the command line wins
FULL = dict(presets=["efficientvit-sam-l0", "efficientvit-sam-l2"], variants=list(VARIANTS), batch=None,
            masks=64, steps=5, da_size=518, da_batch=32, da_images=256, data_batch=8, data_steps=32, data_workers=[0, 2])
TINY = dict(presets=["efficientvit-sam-demo"], variants=list(VARIANTS), batch=2, masks=8, steps=3, da_size=196,
            da_batch=1, da_images=8, data_batch=2, data_steps=4, data_workers=[0])
TRAIN_COLUMNS = ("model", "variant", "batch", "img/s", "peak mem (GiB)", "GMACs/img", "TFLOP/s", "MFU",
                 f"{PAPER_IMAGES / 1000:g}k × {PAPER_EPOCHS} epochs")
DEPTH_COLUMNS = ("model", "params (M)", "input", "batch", "img/s", "peak mem (GiB)", "GMACs/img", "TFLOP/s",
                 "MFU (fp32)", f"{PAPER_IMAGES / 1000:g}k images")
DEPTH_ANYTHING = "Depth Anything V2-Small (random)"
PRECOMPUTE_COLUMNS = ("what", "images", "input", "batch", "img/s", "× forward")
DATA_COLUMNS = ("model", "variant", "batch", "workers", "steps", "step (ms)", "waiting for data (ms)", "data share")


# ------------------------------------------------------------------------------ measuring
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_flops(device: torch.device, dtype: torch.dtype, size: int, repeats: int) -> float:
    """FLOP/s of a ``size × size`` matmul in ``dtype``, the best of ``repeats`` (after one untimed): the
    device's practical peak, which outside load only lowers."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty_like(a)
    seconds = [step_seconds(lambda: torch.mm(a, b, out=out), device) for _ in range(repeats + 1)][1:]
    return 2 * size ** 3 / min(seconds)


def step_seconds(work: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of ``work()``, from an idle device to its last kernel done."""
    synchronize(device)
    start = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - start


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float:
    """GPU: the peak allocated since the last reset; CPU: the process's maximum RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2 ** 30 if sys.platform == "darwin" else rss / 2 ** 20  # bytes on macOS, KiB on Linux


@torch.no_grad()
def decoder_gmacs(model: EfficientViTSam, masks: int) -> float:
    """Multiply-accumulates (10⁹) of the prompt encoder and mask decoder on ``masks`` box prompts of one
    image, counted on the meta device as :func:`~fusionlab.models.cost.encoder_gmacs` counts the encoder."""
    config = model.config
    with torch.device("meta"):
        # no parameter may require grad: SAM's dense prompt embedding is a view of one, which the counter trips on
        meta_model = type(model)(config).eval().requires_grad_(False)
        embedding = torch.zeros(1, config.embed_dim, config.grid, config.grid)
        counter = FlopCounterMode(display=False)
        with counter:
            meta_model.decode(embedding, boxes=torch.zeros(masks, 4), multimask_output=True)
    return counter.get_total_flops() / 2 / 1e9


def random_batch(model: EfficientViTSam, batch: int, masks: int, device: torch.device
                 ) -> Tuple[torch.Tensor, Optional[torch.Tensor], List[Targets]]:
    """Images ``(B, 3, S, S)``, depths ``(B, 1, S, S)`` (RGB-D only) and per image ``masks`` random boxes
    (in the prompt frame) with their box-shaped masks ``(masks, S, S)``, all on ``device``."""
    frame, size = model.image_size
    random = dict(generator=torch.Generator(device).manual_seed(0), device=device)
    images = torch.randn(batch, 3, size, size, **random)
    depths = torch.rand(batch, 1, size, size, **random) if model.has_depth else None
    corner = torch.rand(batch, masks, 2, **random) * 0.5
    boxes = torch.cat([corner, corner + 0.1 + 0.4 * torch.rand(batch, masks, 2, **random)], -1) * frame
    centres = (torch.arange(size, device=device) + 0.5) * (frame / size)  # pixel centres in the prompt frame
    inside_x = (centres >= boxes[..., 0:1]) & (centres < boxes[..., 2:3])
    inside_y = (centres >= boxes[..., 1:2]) & (centres < boxes[..., 3:4])
    box_masks = inside_y[..., :, None] & inside_x[..., None, :]
    return images, depths, [Targets(box_masks[i], boxes[i], None, (size, size)) for i in range(batch)]


def train_images_per_second(model: EfficientViTSam, optimizer: torch.optim.Optimizer, batch: int, masks: int,
                            steps: int, device: torch.device, warmup: int = 2) -> float:
    """Images per second of :func:`fusionlab.train.train_step` on one random batch: ``batch`` over the median
    seconds of ``steps`` timed steps after ``warmup`` untimed ones (the median drops steps that outside load
    hit; on the CPU the first steps of a process are several times slower)."""
    train = TrainSection(masks_per_image=masks)
    images, depths, targets = random_batch(model, batch, masks, device)
    seconds = [step_seconds(lambda: train_step(model, optimizer, images, depths, targets, bool(step % 2), train,
                                               device, None), device)
               for step in range(warmup + steps)]
    return batch / statistics.median(seconds[warmup:])


def largest_batch(model: EfficientViTSam, optimizer: torch.optim.Optimizer, masks: int, device: torch.device,
                  start: int, cap: int) -> int:
    """The largest of ``start, 2·start, …`` up to ``cap`` whose training step fits in the GPU's memory, tried
    with multimask output, the timed steps' larger case (``start`` when even that does not fit: the timing
    then steps down, see :func:`fitting_images_per_second`)."""
    fits, batch = 0, start
    while batch <= cap:
        try:
            train_step(model, optimizer, *random_batch(model, batch, masks, device), True,
                       TrainSection(masks_per_image=masks), device, None)
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
        fits, batch = batch, batch * 2
    return fits or start


def fitting_images_per_second(model: EfficientViTSam, optimizer: torch.optim.Optimizer, batch: int, masks: int,
                              steps: int, device: torch.device) -> Tuple[int, float]:
    """``(batch, images/s)`` of :func:`train_images_per_second`, the batch halved while its steps run out of
    memory (a row, not the whole script, pays for a search that fit with less)."""
    while True:
        try:
            return batch, train_images_per_second(model, optimizer, batch, masks, steps, device)
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            print(f"batch {batch} ran out of memory while timed; timing {batch // 2}", file=sys.stderr)
            batch //= 2


# ------------------------------------------------------------------------------ rows
def training_row(preset: str, variant: str, args: argparse.Namespace, device: torch.device,
                 peak: float) -> List[str]:
    """One row of the training table."""
    label, fields = VARIANTS[variant]
    model = build_model(preset, **fields).to(device)
    apply_speed_options(model, channels_last=args.channels_last, compiled=args.compile)
    optimizer = torch.optim.AdamW(param_groups(model, TrainSection()), lr=1e-4)
    batch = args.batch or largest_batch(model, optimizer, args.masks, device, args.min_batch, args.max_batch)
    reset_peak_memory(device)
    batch, images_s = fitting_images_per_second(model, optimizer, batch, args.masks, args.steps, device)
    memory = peak_memory_gib(device)
    gmacs = encoder_gmacs(model) + decoder_gmacs(model, args.masks)
    flops = gmacs * 1e9 * 2 * 3 * images_s
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return [preset, label, str(batch), f"{images_s:.1f}", f"{memory:.2f}", f"{gmacs:.2f}", f"{flops / 1e12:.2f}",
            f"{100 * flops / peak:.1f} %", duration(PAPER_IMAGES * PAPER_EPOCHS / images_s)]


def depth_anything_v2_small() -> torch.nn.Module:
    """Depth Anything V2-Small's architecture (DINOv2-S/14 + DPT head, 24.8 M parameters), random weights."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation

    config = DepthAnythingConfig(
        backbone_config={"model_type": "dinov2", "image_size": 518, "patch_size": 14, "hidden_size": 384,
                         "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4,
                         "out_indices": [3, 6, 9, 12], "reshape_hidden_states": False},
        patch_size=14, reassemble_hidden_size=384, reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, head_hidden_size=32,
        depth_estimation_type="relative")
    return DepthAnythingForDepthEstimation(config).eval()


@torch.inference_mode()
def depth_anything_row(args: argparse.Namespace, device: torch.device, peak_fp32: float) -> List[str]:
    """The Depth Anything V2-Small row: fp32 inference images/s at ``--da-size`` px, batch ``--da-batch``,
    the median of ``--steps`` forwards after an untimed one."""
    model = depth_anything_v2_small().to(device)
    pixels = torch.randn(args.da_batch, 3, args.da_size, args.da_size, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(pixel_values=pixels[:1])
    gmacs = counter.get_total_flops() / 2 / 1e9
    reset_peak_memory(device)
    seconds = [step_seconds(lambda: model(pixel_values=pixels), device) for _ in range(1 + args.steps)]
    images_s = args.da_batch / statistics.median(seconds[1:])
    flops = gmacs * 1e9 * 2 * images_s
    return [DEPTH_ANYTHING, f"{count_parameters(model) / 1e6:.1f}", f"{args.da_size} px",
            str(args.da_batch), f"{images_s:.1f}", f"{peak_memory_gib(device):.2f}", f"{gmacs:.2f}",
            f"{flops / 1e12:.2f}", f"{100 * flops / peak_fp32:.1f} %", duration(PAPER_IMAGES / images_s)]


def precompute_row(args: argparse.Namespace, device: torch.device, forward_images_s: float) -> List[str]:
    """``fusionlab depth``'s images/s (the ``depth_anything`` source's ``fill``: decode, preprocess,
    predict, resize, encode and write) on ``--da-images`` synthetic scenes, with the same model, batch
    and input size as the forward row, and its ratio to that row's images/s."""
    from transformers import DPTImageProcessor
    from transformers.utils import logging as hf_logging

    from fusionlab.data import build_dataset
    from fusionlab.depth import build_depth_source

    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stderr(io.StringIO()):  # the set-up's bars
        folder = f"{scratch}/model"
        depth_anything_v2_small().save_pretrained(folder)
        DPTImageProcessor(size={"height": args.da_size, "width": args.da_size}, keep_aspect_ratio=True,
                          ensure_multiple_of=14, resample=3, do_pad=False).save_pretrained(folder)
        source = build_depth_source("depth_anything", model=folder, device=device.type, batch_size=args.da_batch,
                                    cache_dir=f"{scratch}/depth")
        source.run_on(device)  # --device cuda:1 fills on cuda:1
        side = max(32, min(args.da_size, 256))  # rendering is slow (~8 images/s at 256 px per core); resized up
        scenes = {split: build_dataset("synthetic", split=split, num_images=count, image_size=side,
                                       root=f"{scratch}/scenes")
                  for split, count in (("val", args.da_batch), ("train", args.da_images))}
        source.fill(scenes["val"], progress=False)  # untimed: loads the model, warms the device up
        synchronize(device)
        start = time.perf_counter()
        counts = source.fill(scenes["train"], progress=False)
        synchronize(device)
        images_s = counts["computed"] / (time.perf_counter() - start)
    return ["fusionlab depth (fill the cache)", str(counts["computed"]), f"{args.da_size} px", str(args.da_batch),
            f"{images_s:.1f}", f"{images_s / forward_images_s:.2f}"]


class TimedBatches:
    """A loader that records, for each batch, when the loop asked for it and when it came; its order
    (``generator``, ``batch_sampler``) is the loader's, which the loop sets at each epoch."""

    def __init__(self, loader: torch.utils.data.DataLoader, device: torch.device):
        self.loader, self.device = loader, device
        self.generator, self.batch_sampler = loader.generator, loader.batch_sampler
        self.asked: List[float] = []
        self.got: List[float] = []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        batches = iter(self.loader)
        while True:
            synchronize(self.device)
            self.asked.append(time.perf_counter())
            try:
                batch = next(batches)
            except StopIteration:
                return
            self.got.append(time.perf_counter())
            yield batch

    def step_and_wait(self) -> Tuple[float, float]:
        """Mean seconds per step and waiting for data per step, from the second batch to the last but one."""
        spans = range(1, len(self.got) - 1)
        if not spans:
            raise SystemExit("the data-share run needs at least 3 steps (--data-steps)")
        step = sum(self.asked[i + 1] - self.asked[i] for i in spans) / len(spans)
        return step, sum(self.got[i] - self.asked[i] for i in spans) / len(spans)


def data_share_row(preset: str, variant: str, workers: int, args: argparse.Namespace,
                   device: torch.device) -> List[str]:
    """One row of the data-share table: a short :func:`fusionlab.train.train` run on synthetic RGB-D scenes."""
    label, fields = VARIANTS[variant]
    size = args.data_size or build_model(preset).image_size[1]
    config = from_dict(RunConfig, {
        "model": {"preset": preset, **fields},
        "data": {"train": {"split": "train", "num_images": args.data_batch * args.data_steps, "image_size": size}},
        "train": {"steps": args.data_steps, "batch_size": args.data_batch, "masks_per_image": args.masks,
                  "num_workers": workers, "device": str(device), "save_checkpoint": False,
                  "log_every": args.data_steps, "channels_last": args.channels_last, "compile": args.compile}},
        "throughput")
    timed: List[TimedBatches] = []
    make_loader = fusionlab.train.make_loader

    def timed_loader(*loader_args, **loader_kwargs):
        items, loader = make_loader(*loader_args, **loader_kwargs)
        timed.append(TimedBatches(loader, device))
        return items, timed[-1]

    with tempfile.TemporaryDirectory() as run_dir, mock.patch.object(fusionlab.train, "make_loader", timed_loader):
        fusionlab.train.train(config, run_dir, progress=False)
    step, wait = timed[0].step_and_wait()
    return [preset, label, str(args.data_batch), str(workers), str(args.data_steps), f"{step * 1e3:.1f}",
            f"{wait * 1e3:.1f}", f"{100 * wait / step:.1f} %"]


# ------------------------------------------------------------------------------ output
def duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


class Table:
    """A Markdown table printed row by row, so that a run cut short keeps the rows it finished: the
    first columns, labels, left-aligned to ``label_widths``; the others right-aligned, at least 7 wide."""

    def __init__(self, columns: Sequence[str], label_widths: Sequence[int]):
        self.labels = len(label_widths)
        self.widths = [max(len(c), label_widths[i] if i < self.labels else 7) for i, c in enumerate(columns)]
        rule = "|".join("-" * (w + 2) if i < self.labels else "-" * (w + 1) + ":" for i, w in enumerate(self.widths))
        print(self.line(columns) + "\n|" + rule + "|", flush=True)

    def line(self, values: Sequence[str]) -> str:
        cells = [v.ljust(w) if i < self.labels else v.rjust(w) for i, (v, w) in enumerate(zip(values, self.widths))]
        return "| " + " | ".join(cells) + " |"

    def row(self, values: Sequence[str]) -> None:
        print(self.line(values), flush=True)


def parse_args(argv: Optional[Sequence[str]]) -> Tuple[argparse.Namespace, torch.device]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the CPU defaults, also on a GPU (a smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", nargs="+", help="model presets (GPU default: l0 and l2; CPU: demo)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: all")
    parser.add_argument("--batch", type=int, help="training batch (GPU default: the largest that fits)")
    parser.add_argument("--min-batch", type=int, default=8, help="where the batch search starts")
    parser.add_argument("--max-batch", type=int, default=512, help="where the batch search stops")
    parser.add_argument("--masks", type=int, help="prompts (masks) per image (GPU default: 64, the recipe's)")
    parser.add_argument("--steps", type=int, help="timed steps (forwards) per row; the median counts")
    parser.add_argument("--channels-last", action="store_true", help="train.channels_last")
    parser.add_argument("--compile", action="store_true", help="train.compile (use with --batch: each size compiles)")
    parser.add_argument("--da-size", type=int, help="Depth Anything input side, a multiple of 14 (GPU: 518)")
    parser.add_argument("--da-batch", type=int, help="Depth Anything images per forward")
    parser.add_argument("--da-images", type=int, help="images of the `fusionlab depth` run (GPU: 256)")
    parser.add_argument("--data-batch", type=int, help="batch of the data-share runs")
    parser.add_argument("--data-size", type=int, help="side of the synthetic images (default: the model's input)")
    parser.add_argument("--data-steps", type=int, help="steps of each data-share run (at least 3)")
    parser.add_argument("--data-workers", type=int, nargs="+", help="DataLoader workers, one run each")
    parser.add_argument("--skip", nargs="+", default=[], choices=["train", "depth", "data"], help="tables to leave out")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    for key, value in (TINY if args.tiny or device.type != "cuda" else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args, device


def main(argv: Optional[Sequence[str]] = None) -> None:
    args, device = parse_args(argv)
    cuda = device.type == "cuda"
    size, repeats = (8192, 20) if cuda else (1024, 5)
    peak_fp32 = peak_flops(device, torch.float32, size, repeats)
    peak = peak_flops(device, torch.bfloat16, size, repeats) if cuda else peak_fp32
    where = device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    bf16 = f"bf16 {peak / 1e12:.1f} TFLOP/s, " if cuda else ""
    print(f"{where}; peak by a {size}² matmul: {bf16}fp32 {peak_fp32 / 1e12:.2f} TFLOP/s")
    options = ", ".join(name for name, on in (("channels_last", args.channels_last), ("compile", args.compile))
                        if on) or "no speed options"
    preset_width = max(len(preset) for preset in args.presets)
    if "train" not in args.skip:
        print(f"\nTraining ({'bf16' if cuda else 'fp32'}, {args.masks} box prompts per image, {options}); "
              f"MFU over the {'bf16' if cuda else 'fp32'} peak; peak mem: "
              f"{'max allocated' if cuda else 'process max RSS so far'}")
        table = Table(TRAIN_COLUMNS, [preset_width, max(len(VARIANTS[v][0]) for v in args.variants)])
        for preset in args.presets:
            for variant in args.variants:
                table.row(training_row(preset, variant, args, device, peak))
    if "depth" not in args.skip:
        print("\nDepth Anything V2-Small sizes, random weights, fp32 inference")
        forward = depth_anything_row(args, device, peak_fp32)
        Table(DEPTH_COLUMNS, [len(DEPTH_ANYTHING)]).row(forward)
        print("\nThe depth cache filled by `fusionlab depth` with that model, against its forward alone; "
              "target: a ratio ≥ 0.90")
        Table(PRECOMPUTE_COLUMNS, [len("fusionlab depth (fill the cache)")]).row(
            precompute_row(args, device, float(forward[4])))
    if "data" not in args.skip:
        synchronised = ", the GPU synchronised before each batch" if cuda else ""
        print(f"\nData share of a training step (fusionlab.train on synthetic RGB-D scenes{synchronised}); "
              "target ≤ 10 % on a GPU")
        table = Table(DATA_COLUMNS, [preset_width, len(VARIANTS["same"][0])])
        for workers in args.data_workers:
            table.row(data_share_row(args.presets[0], "same", workers, args, device))


if __name__ == "__main__":
    main()
