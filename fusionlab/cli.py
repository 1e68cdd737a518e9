"""The ``fusionlab`` command line: thin wrappers over the library, with one-line errors.

A :class:`~fusionlab.errors.FusionlabError` (bad input a user can fix) is printed as one
line on stderr with exit code 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from fusionlab.errors import FusionlabError, one_line

EXIT_SOME_FAILED = 3  # fusionlab sweep: some cells (or every search trial) did not complete

EPILOG = """\
typical session:
  fusionlab list                                   what models, fusion blocks, depth encoders, depth sources,
                                                   datasets exist
  fusionlab sweep ablations/fusion.yaml            train + evaluate every variant x seed (resumable)
  fusionlab status results/fusion --watch         which cell runs where, how far, ETA (while it runs)
  fusionlab report results/fusion                  LaTeX / Markdown / CSV tables and plots
  fusionlab train CONFIG.yaml --out results/runs/x one run; fusionlab eval CONFIG.yaml --checkpoint ...
  fusionlab predict --checkpoint ckpt.safetensors --image img.png --depth d.png --box 10,10,80,90 --out m.png

Run 'fusionlab COMMAND --help' for the options of a command.
"""


SWEEP_EPILOG = """\
storage URLs (--storage, or storage: in the YAML):
  sqlite:///results/fusion/study.db        the default: one machine, any number of workers
  postgresql://user:password@host:5432/db  several machines; needs psycopg 3: pip install 'fusionlab[postgres]'
  postgresql+psycopg2://...                the same with psycopg2 (pip install psycopg2-binary)
  journal:/shared/disk/fusion.log          optuna's journal file on a shared disk, no database
  The results folder (results/<name>/) is bound to its study (store.json): a launch with
  another storage or study is refused instead of overwriting its files.

resuming and dead workers:
  Rerun the same command at any time: COMPLETE cells are kept, failed and interrupted ones
  run again. Each worker writes a heartbeat every heartbeat.interval s (default 30); a cell
  whose worker is silent for heartbeat.grace s (default 120) is failed as stale and run
  again by any worker, in the same launch. A worker with nothing left to claim says which
  cells it waits for. So a killed worker's cell restarts after about 2-2.5 minutes by default.

on a SLURM cluster (see docs/slurm.md):
  fusionlab sweep X.yaml --slurm --storage postgresql://...   submit one job array of workers and return;
                                                             it prints the job id and how to watch it
  Each array task is a worker on the shared storage; a task at its time limit or preempted writes
  its cell's resume point, hands the cell back and is requeued, and the cell continues where it stopped.

exit codes: 0 every cell complete (--slurm: submitted), 2 bad input, 3 some cells did not complete (see
trials.csv).
Watch a running sweep: fusionlab status results/fusion --watch; its study: optuna-dashboard
sqlite:///results/fusion/study.db; each cell's curves: train.loggers (see docs/watching.md)
"""


def check_writable_path(path: Path, flag: str) -> None:
    """Refuse, before any work, an output path that a file stands in the way of (``x.txt/out/...``)."""
    above = next((p for p in (path, *path.parents) if p.exists()), None)  # the nearest thing there is
    if above is not None and above != path and not above.is_dir():
        raise FusionlabError(f"{flag} {path}: {above} is a file, not a folder; expected a path inside a folder")


def _image_out(out: Path, path: Path, example: str, flag: str = "--out") -> str:
    """Check, before any work, that ``path`` (written for ``flag out``) can be an image file; its PIL format."""
    from PIL import Image

    if path.is_dir():
        raise FusionlabError(f"{flag} {out}: {path} is a folder; expected an image file name such as {path / example}")
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise FusionlabError(f"{flag} {out}: unknown image extension {path.suffix!r}; expected e.g. {example}")
    check_writable_path(path, flag)
    return image_format


def _parse_floats(text: str, count: Sequence[int], what: str) -> List[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise FusionlabError(f"{what} {text!r}: expected comma-separated numbers") from None
    if len(values) not in count:
        raise FusionlabError(f"{what} {text!r}: expected {' or '.join(str(c) for c in count)} numbers")
    return values


def cmd_list(args: argparse.Namespace) -> int:
    from fusionlab.data import list_datasets
    from fusionlab.depth import list_depth_sources
    from fusionlab.fusion import list_fusions
    from fusionlab.models import list_depth_encoders, list_models
    from fusionlab.config_docs import configuration_docs, entry_docs
    from fusionlab.registry import import_plugins

    import_plugins(args.plugin, "--plugin")
    if args.reference:  # the flag's old name, which the README and users' scripts used
        print("fusionlab list: --reference is deprecated; use --config-docs", file=sys.stderr)
    if args.config_docs or args.reference:
        print(configuration_docs(), end="")
        return 0
    if args.options:
        print(entry_docs(*args.options))
        return 0
    from fusionlab.models.depth_encoders import DEPTH_ENCODERS

    def depth_encoders() -> List[str]:  # a kind named with a suffix shows how: timm:<model_name>
        return [f"{n}:<{DEPTH_ENCODERS.get(n).suffix_option}>" if hasattr(DEPTH_ENCODERS.get(n), "suffix_option")
                else n for n in list_depth_encoders()]

    tables = {"models": list_models, "fusions": list_fusions, "depth_encoders": depth_encoders,
              "depth sources": list_depth_sources, "datasets": list_datasets}
    for title, lister in tables.items():
        if args.what in (None, title.split()[0]):
            print(f"{title}: {', '.join(lister())}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from fusionlab.atomic import atomic_write
    from fusionlab.data.io import read_depth, read_image
    from fusionlab.models import Predictor, build_model, load_checkpoint, read_config
    from fusionlab.models.checkpoint import read_depth_preprocessing
    from fusionlab.models.overlay import draw_overlay
    from fusionlab.registry import import_plugins

    import_plugins(args.plugin, "--plugin")
    if not args.box and not args.point:
        raise FusionlabError("predict needs a prompt: --box x0,y0,x1,y1 or one or more --point x,y[,label]")
    out = Path(args.out)
    image_format = _image_out(out, out, "mask.png")
    overlay = Path(args.overlay) if args.overlay else None
    if overlay is not None:
        overlay_format = _image_out(overlay, overlay, "overlay.png", "--overlay")
        if overlay.resolve() == out.resolve():
            raise FusionlabError(f"--overlay {overlay}: the same file as --out; give the overlay its own name, "
                                 f"e.g. {out.with_name(out.stem + '_overlay.png')}")
    config = read_config(args.checkpoint) if args.checkpoint else None
    if config is not None and args.model is None:
        model = build_model(config)
    else:
        overrides = {} if args.fusion_point is None else {"fusion_point": args.fusion_point}
        model = build_model(args.model or "efficientvit-sam-nano", fusion=args.fusion, **overrides)
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint)
    else:
        logging.getLogger("fusionlab").warning("no --checkpoint: the model has random weights, the mask is noise")
    model.eval()
    image = read_image(Path(args.image))
    predictor = Predictor(model, read_depth_preprocessing(args.checkpoint) if args.checkpoint else None)
    depth = None
    if model.has_depth:
        if not args.depth:
            raise FusionlabError("this RGB-D model needs --depth FILE (16-bit PNG in mm, .npy or .tif in metres)")
        raw = read_depth(Path(args.depth), expected_hw=image.shape[:2])
        depth = predictor.depth_preprocessing.apply(raw, args.depth_kind, args.depth)  # as the checkpoint says
    with torch.no_grad():
        predictor.set_image(image, depth)
        coords = labels = None
        if args.point:
            parsed = [_parse_floats(p, (2, 3), "--point") for p in args.point]
            coords = np.array([p[:2] for p in parsed])
            labels = np.array([p[2] if len(p) == 3 else 1 for p in parsed])
        box = np.array(_parse_floats(args.box, (4,), "--box")) if args.box else None
        masks, iou, _ = predictor.predict(point_coords=coords, point_labels=labels, box=box,
                                          multimask_output=box is None)
    best = int(np.argmax(iou))
    picture = Image.fromarray((masks[best] * 255).astype(np.uint8))
    atomic_write(out, lambda tmp: picture.save(tmp, format=image_format))
    print(f"wrote {out}: {masks[best].shape[1]}x{masks[best].shape[0]} mask, {int(masks[best].sum())} pixels, "
          f"predicted IoU {float(iou[best]):.3f}")
    if overlay is not None:
        drawn = draw_overlay(image, masks[best], box, coords, labels)
        atomic_write(overlay, lambda tmp: drawn.save(tmp, format=overlay_format))
        print(f"wrote {overlay}: the image with the mask and the prompts drawn on it")
    return 0


def cmd_demo_image(args: argparse.Namespace) -> int:
    import numpy as np

    from fusionlab.data import build_dataset
    from fusionlab.data.io import write_depth_png, write_rgb_png
    from fusionlab.data.synthetic import DEFAULT_NUM_IMAGES

    scenes = DEFAULT_NUM_IMAGES["val"]
    if not 0 <= args.index < scenes:
        raise FusionlabError(f"--index {args.index}: expected a scene number from 0 to {scenes - 1} "
                             f"(the embedded validation set has {scenes} scenes)")
    out = Path(args.out)
    depth_path = out.with_name(out.stem + "_depth.png")
    for path in (out, depth_path):
        _image_out(out, path, "scene.png")
    dataset = build_dataset("synthetic", split="val", num_images=max(args.index + 1, 4))
    sample = dataset[args.index]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_depth_png(depth_path, sample.depth)
    write_rgb_png(out, sample.image)
    largest = max(sample.instances, key=lambda inst: inst.area, default=None)
    box = largest.bbox_xyxy if largest is not None else np.array([0, 0, 1, 1])
    print(f"wrote {out} and {depth_path}; a box around its largest object: --box {','.join(f'{v:g}' for v in box)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from fusionlab.atomic import staging_folder, swap_in
    from fusionlab.config import load_run_config
    from fusionlab.distributed import is_main_process
    from fusionlab.evaluate import evaluate, write_result
    from fusionlab.loggers import log_results, result_scalars
    from fusionlab.train import DONE_FILE, StopRequested, train

    config = load_run_config(args.config, args.set or [])
    folder = Path(args.out) if args.out else _default_run_dir(args.config)
    check_writable_path(folder, "--out")
    finished = (folder / DONE_FILE).exists()
    if finished and not args.overwrite:
        raise FusionlabError(f"--out {folder}: holds a finished run ({DONE_FILE}); choose another folder, "
                             "or pass --overwrite to replace it")
    # a finished run stays as it is until its replacement, trained and evaluated beside it, is complete
    # (other torchrun processes write nothing)
    work = staging_folder(folder) if finished and is_main_process() else folder
    try:
        result = train(config, work)
    except StopRequested as stop:
        if is_main_process():
            point = f"its resume point is {stop.resume_point}" if stop.resume_point else "no step was taken"
            print(f"fusionlab train: stopped at step {stop.step}; {point}; run the same command to continue",
                  file=sys.stderr)
        return 130
    resumed = f" (resumed from step {result.resumed_from_step})" if result.resumed_from_step else ""
    summary = (f"trained {result.steps} steps{resumed} in {result.wall_s:.1f} s, "
               f"final loss {result.final_loss:.4f}")
    evaluation = evaluate(result.model, config)
    write_result(work, evaluation)
    if is_main_process():
        log_results(config, work, result.steps, result_scalars(evaluation.metrics))
    if finished and is_main_process():
        swap_in(work, folder)
    scores = ", ".join(f"{k} {v:.2f}" for k, v in evaluation.metrics.items() if k.endswith("_miou"))
    summary += f"; {scores}" if scores else ""
    if is_main_process():  # under torchrun, one summary, from the process that wrote the files
        print(f"{summary}; run folder {folder}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import yaml

    from fusionlab.atomic import atomic_write_text
    from fusionlab.config import load_run_config
    from fusionlab.distributed import is_main_process
    from fusionlab.evaluate import evaluate, format_metrics, write_result

    config = load_run_config(args.config, args.set or [], training=False)
    if not (args.checkpoint or config.model.checkpoint):
        logging.getLogger("fusionlab").warning("no --checkpoint and no model.checkpoint: evaluating random weights")
    out = Path(args.out) if args.out else _default_run_dir(args.config)
    check_writable_path(out, "--out")
    if out.exists() and not out.is_dir():
        raise FusionlabError(f"--out {out} is a file; expected a folder for config.yaml, metrics.json, instances.csv")
    model = config.model.build(args.checkpoint)
    result = evaluate(model, config)
    if not is_main_process():  # under torchrun, rank 0 writes and prints
        return 0
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    write_result(out, result)
    print(format_metrics(result.metrics, config.eval.prompts))
    kept = " and the predictions (predictions_<prompt>.json, images.json, depth/)" if result.predictions else ""
    print(f"wrote {out / 'config.yaml'}, {out / 'metrics.json'}, {out / 'instances.csv'}{kept}")
    return 0


def _default_run_dir(config_path: str) -> Path:
    """``results/runs/<config stem>-<YYYYmmdd-HHMMSS>``."""
    return Path("results") / "runs" / f"{Path(config_path).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_depth(args: argparse.Namespace) -> int:
    from fusionlab.depth.precompute import plan_depth, precompute

    shard = (0, 1) if args.shard is None else _parse_shard(args.shard)
    if args.quiet:
        _quiet_hub_bars()
    jobs = plan_depth(_run_configs(args.config, args.set or []), args.split)
    if not jobs:
        print(f"{args.config}: nothing to precompute: no run in it feeds depth to a model (RGB-only, or depth "
              f"dropped at evaluation)")
        return 0
    for job in jobs:
        source, dataset = job.build()
        counts = precompute(source, dataset, progress=not args.quiet, shard=shard)
        split, images = job.split, f"{counts['images']} images"
        if args.shard is not None:
            split, images = f"{split} (shard {counts['shard']})", f"{images} of {len(dataset)}"
        print(f"{split}: {dataset.describe()}: {images}, {counts['computed']} computed, {counts['cached']} already "
              f"cached in {counts['seconds']:.1f} s ({counts['images_per_s']:.2f} images/s computed) by "
              f"{counts['source']}")
    return 0


def _parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` of ``--shard`` as ``(i, n)``; a one-line error unless ``0 <= i < n``."""
    index, _, count = text.partition("/")
    if not (index.isdecimal() and count.isdecimal() and int(index) < int(count)):
        raise FusionlabError(f"--shard {text}: expected i/n with 0 <= i < n")
    return int(index), int(count)


def _run_configs(path: str, overrides: List[str]) -> list:
    """The run config of a run YAML, or every variant's of a sweep YAML (told apart by their keys)."""
    from fusionlab.config import load_run_config, read_yaml
    from fusionlab.sweep.config import is_sweep_file

    if is_sweep_file(read_yaml(path)):
        from fusionlab.sweep import load_sweep

        return [variant.config for variant in load_sweep(path, overrides).variants]
    return [load_run_config(path, overrides, training=False)]


def _quiet_hub_bars() -> None:
    """Silence transformers' and the hub's own progress bars (model loading) for ``--quiet``."""
    import os

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # transformers is a dependency; without it there is nothing to silence
        return
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def cmd_sweep(args: argparse.Namespace) -> int:
    from fusionlab.sweep import load_sweep

    given = [flag for flag, value in _slurm_flags(args).items() if value not in (None, [])]
    if given and not args.slurm:
        raise FusionlabError(f"--{given[0].replace('_', '-')} is a setting of the SLURM job array; add --slurm")
    sweep = load_sweep(args.config, args.set or [], args.storage)
    if args.slurm:
        return _slurm(sweep, args)
    if sweep.search is not None:
        return _search(sweep, args)
    if args.dry_run:
        _dry_run(sweep)
        return 0
    from fusionlab.sweep import run_sweep

    from fusionlab.train import StopRequested, clear_stop, stop_requested

    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    try:
        outcome = run_sweep(sweep, workers=args.workers, devices=devices, per_device=args.workers_per_device)
    except StopRequested as stop:
        print(f"fusionlab sweep: stopped; the cell in training was handed back at step {stop.step} with its resume "
              f"point; run the same command to continue", file=sys.stderr)
        return 130
    if stop_requested():  # asked outside training: the cell in hand was finished, no other claimed
        clear_stop()
        print("fusionlab sweep: stopped; run the same command to continue", file=sys.stderr)
        return 130
    if outcome.incomplete:
        print(f"{len(outcome.incomplete)} of {outcome.total} cells did not complete; their errors are in "
              f"{outcome.results / 'trials.csv'}; run the same command again to retry them", file=sys.stderr)
        return EXIT_SOME_FAILED
    print(f"{outcome.total} of {outcome.total} cells complete in {outcome.results}; "
          f"next: fusionlab report {outcome.results}")
    return 0


def _slurm_flags(args: argparse.Namespace) -> dict:
    """The ``slurm:`` keys given on the command line (None: not given); ``--sbatch``/``--setup`` add lines."""
    keys = ("partition", "account", "qos", "time", "max_running", "gpus_per_task", "cpus_per_task", "mem",
            "signal_delay", "sbatch", "setup")
    return {key: getattr(args, key) for key in keys}


def _slurm(sweep, args: argparse.Namespace) -> int:
    """``--slurm``: submit one job array of workers (or, with ``--dry-run``, say what it would submit)."""
    from fusionlab.sweep.slurm import check_submittable, describe, submit, task_gpus
    from fusionlab.sweep.store import redact

    if args.devices or args.workers_per_device != 1:
        raise FusionlabError("--devices and --workers-per-device place local workers; with --slurm each task gets "
                             "its GPUs from SLURM (slurm.gpus_per_task, --gpus-per-task)")
    flags = {**_slurm_flags(args), "workers": args.workers}
    for key in ("sbatch", "setup"):
        flags[key] = getattr(sweep.slurm, key) + flags[key] if flags[key] else None
    section = sweep.slurm.with_flags(flags)
    if args.dry_run:
        check_submittable(sweep, on_cluster=False)
        pending = sum(row.state != "COMPLETE" for row in _dry_run(sweep))
        tasks = section.workers or pending
        print(f"--slurm would submit one job array: {describe(section, task_gpus(sweep, section), tasks)}")
        return 0
    submission = submit(sweep, section)
    if submission.job_id is None:
        print(f"all {submission.total} cells of {sweep.name} are complete: nothing to submit; "
              f"next: fusionlab report {sweep.results}")
        return 0
    watch = " ".join(["fusionlab sweep", args.config, *(f"--set {item}" for item in args.set or []), "--dry-run",
                      "--storage", redact(sweep.storage)])
    print(f"submitted SLURM job {submission.job_id}: {submission.settings}; sweep workers for {submission.pending} "
          f"of {submission.total} cells\n"
          f"  the tasks:     squeue -j {submission.job_id}\n"
          f"  the cells:     {watch}\n"
          f"  task logs:     {submission.logs}/{submission.job_id}_*_log.out (the sweep's: {sweep.results}/sweep.log)\n"
          f"  cancel it:     scancel {submission.job_id}")
    return 0


def _dry_run(sweep) -> list:
    from fusionlab.sweep import describe_cells
    from fusionlab.sweep.store import redact

    rows = describe_cells(sweep)
    print(f"sweep {sweep.name}: {len(sweep.variants)} variants x {len(sweep.seeds)} seeds = {len(rows)} cells; "
          f"storage {redact(sweep.storage)}")
    for row in rows:
        trial = f"trial {row.trial}" if row.trial is not None else ""
        print(f"  {row.variant:<24} {row.group:<9} seed {row.seed:<4} {row.state:<9} {trial}")
    print(f"{sum(r.state == 'COMPLETE' for r in rows)}/{len(rows)} cells complete")
    return rows


def cmd_status(args: argparse.Namespace) -> int:
    from fusionlab.sweep.status import folder_status, render, sweep_status

    def read():
        if Path(args.target).is_dir():
            return folder_status(Path(args.target), args.storage)
        from fusionlab.sweep import load_sweep

        return sweep_status(load_sweep(args.target, args.set or [], args.storage))

    if args.watch is None:
        print(render(read()))
        return 0
    while True:  # until Ctrl-C, or every cell is complete
        status = read()
        print("\033[H\033[2J" + render(status) + f"\n(every {args.watch:g} s; Ctrl-C to stop)", flush=True)
        if status.counts().get("COMPLETE", 0) == sum(status.counts().values()):
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def _search(sweep, args: argparse.Namespace) -> int:
    from fusionlab.sweep.search import run_search
    from fusionlab.sweep.store import redact

    variant = sweep.search_variant()
    if args.dry_run:
        print(f"search {sweep.name}-search: {sweep.search.n_trials} TPE trials of variant {variant.name} over "
              f"{', '.join(sweep.search.params)}; storage {redact(sweep.storage)}")
        return 0
    from fusionlab.train import StopRequested

    try:
        outcome = run_search(sweep, workers=args.workers or 1)
    except StopRequested:
        print("fusionlab sweep: search stopped on request; run the same command to run the remaining trials",
              file=sys.stderr)
        return 130
    if outcome.best_trial is None:
        print(f"no search trial completed; see {outcome.csv}", file=sys.stderr)
        return EXIT_SOME_FAILED
    print(f"best trial {outcome.best_trial}: box mIoU {outcome.best_value:.2f} with {outcome.best_params}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from fusionlab.report import make_report

    if args.out:
        check_writable_path(Path(args.out), "--out")
    try:
        rows = tuple(int(n) for n in args.qualitative_rows.split(","))
    except ValueError:
        raise FusionlabError(f"--qualitative-rows {args.qualitative_rows!r}: expected GAINS,LOSSES,RANDOM, three "
                             f"integers such as 3,3,2") from None
    report = make_report(Path(args.results), out_dir=Path(args.out) if args.out else None, n_boot=args.n_boot,
                         holm=args.holm, qualitative_variant=args.qualitative_variant,
                         qualitative_prompt=args.qualitative_prompt, qualitative_rows=rows, ci=args.ci,
                         where_variants=args.where_variant)
    if not args.quiet:
        print(report.markdown)
    print(f"wrote {', '.join(sorted(report.paths))} to {next(iter(report.paths.values())).parent}")
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from fusionlab.rescore import rescore_folder, rescore_sweep
    from fusionlab.results import INSTANCES_FILE, TRIALS_FILE

    folder = Path(args.results)
    if (folder / TRIALS_FILE).is_file():
        for trial, what in rescore_sweep(folder):
            print(f"trial {trial}: {what}")
    elif (folder / INSTANCES_FILE).is_file():
        print(f"{folder}: {rescore_folder(folder)}")
    else:
        raise FusionlabError(f"{folder}: neither {TRIALS_FILE} nor {INSTANCES_FILE}; expected a sweep's results "
                             f"folder (results/<name>) or a fusionlab eval --out folder")
    return 0


def _add_predict_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment one object of one image from a box or points",
                       description="Predict a mask with a (RGB-D) EfficientViT-SAM, as the official predictor "
                                   "does: the image is resized for the encoder, prompts are in original pixels, "
                                   "the mask comes back at the original size.")
    p.add_argument("--model", help="preset name (default: from the checkpoint, else efficientvit-sam-nano)")
    p.add_argument("--fusion", help="fusion block for an RGB-D model (default: RGB-only)")
    p.add_argument("--fusion-point", help="where the block sits: neck, neck_inputs, stageN")
    p.add_argument("--checkpoint", help="official .pt/.pth or fusionlab .safetensors weights")
    p.add_argument("--image", required=True, help="RGB image file (PNG/JPEG)")
    p.add_argument("--depth", help="depth file of the image's size (16-bit PNG mm, .npy/.tif metres)")
    p.add_argument("--depth-kind", choices=["depth", "disparity"], default="depth",
                   help="what --depth holds (default: depth, larger = farther)")
    p.add_argument("--box", metavar="X0,Y0,X1,Y1", help="box prompt in pixels")
    p.add_argument("--point", action="append", metavar="X,Y[,LABEL]",
                   help="point prompt in pixels, label 1 foreground (default) or 0 background; repeatable")
    p.add_argument("--out", required=True, help="output mask PNG (0/255)")
    p.add_argument("--overlay", metavar="FILE",
                   help="also write the image with the mask tinted and the prompts drawn (box in cyan; points: "
                        "green discs positive, red squares negative), e.g. overlay.png")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE", help="module registering blocks")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo-image", help="write one embedded RGB-D scene (image + depth PNG) to try predict on")
    p.add_argument("--out", required=True, help="image PNG; the depth goes beside it as *_depth.png")
    p.add_argument("--index", type=int, default=0, help="which scene of the embedded validation set")
    p.set_defaults(func=cmd_demo_image)


def _add_depth_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("depth", help="precompute depth (e.g. Depth Anything) for a run's or a sweep's data",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Fill the disk cache of the depth source(s) a config uses, on its train and "
                                   "val data, so that training and evaluation only read it. Given a sweep YAML, "
                                   "every variant's depth is precomputed once (RGB-only variants need none). "
                                   "Cached maps are kept: run it again to finish an interrupted precompute.",
                       epilog="examples:\n  fusionlab depth ablations/paper.yaml           every depth the "
                              "paper's sweep needs\n  fusionlab depth run.yaml --split val --quiet  one run's "
                              "validation split, no progress bars\n  CUDA_VISIBLE_DEVICES=1 fusionlab depth "
                              "ablations/paper.yaml --shard 1/4\n" + " " * 49 + "the second of 4 processes (one per "
                              "GPU) that fill one cache together")
    p.add_argument("config", help="run config YAML or sweep YAML")
    p.add_argument("--split", action="append", choices=["train", "val"], default=None,
                   help="which split (default: both)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (a sweep's: base.x.y=v)")
    p.add_argument("--shard", metavar="i/n",
                   help="only images i, i+n, i+2n, ... of each split: n processes given 0/n ... n-1/n (one per "
                        "GPU or machine, one cache folder) fill the cache together (default: every image)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (also none from transformers)")
    p.set_defaults(func=cmd_depth)


def _add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run an ablation: every variant x seed, trained and evaluated, resumable",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SWEEP_EPILOG,
                       description="Run every (variant, seed) cell of an ablation YAML into an optuna study. "
                                   "Rerunning skips completed cells and retries failed or stale ones; several "
                                   "workers (or machines) can share one storage.")
    p.add_argument("config", help="sweep YAML, e.g. ablations/fusion.yaml")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes on the same study (default: one per visible GPU, else 1); "
                        "CPU workers split --threads. With --slurm: the job array's tasks, each one worker "
                        "(default: slurm.workers, else one per cell not complete)")
    p.add_argument("--devices", metavar="LIST",
                   help="devices the workers are pinned to, taken in turn, e.g. cuda:0,cuda:1 (default: every "
                        "visible GPU; on a CPU machine the config's train/eval.device)")
    p.add_argument("--workers-per-device", type=int, default=1, metavar="K",
                   help="workers allowed on one GPU (default 1: cells never share a GPU)")
    p.add_argument("--storage", metavar="URL",
                   help="optuna storage (default: sqlite:///<results>/<name>/study.db); see below")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a sweep key, e.g. seeds=[0]")
    p.add_argument("--dry-run", action="store_true", help="list the cells and their state, run nothing")
    p.add_argument("--slurm", action="store_true",
                   help="submit the sweep to SLURM as one job array of workers (the slurm: section, or the flags "
                        "below) and return; --workers is then the number of array tasks")
    group = p.add_argument_group("SLURM (with --slurm; each flag wins over its key in the slurm: section)")
    group.add_argument("--partition", help="partition to run in (default: the cluster's)")
    group.add_argument("--account", help="account to charge (default: yours)")
    group.add_argument("--qos", help="quality of service (default: the cluster's)")
    group.add_argument("--time", metavar="LIMIT",
                       help="each task's time limit, e.g. 4:00:00 or 1-12:00:00 (default 4:00:00); a task that "
                            "reaches it hands its cell back at a resume point and is requeued")
    group.add_argument("--max-running", type=int, metavar="N", help="array tasks running at once (default: all)")
    group.add_argument("--gpus-per-task", type=int, metavar="N",
                       help="GPUs of each task (default: train.devices_per_cell, or 0 when every cell trains on "
                            "the CPU; 0 runs train.device: auto on the CPU)")
    group.add_argument("--cpus-per-task", type=int, metavar="N", help="CPU cores of each task (default: the cluster's)")
    group.add_argument("--mem", help="memory of each task, e.g. 64G (default: the cluster's)")
    group.add_argument("--signal-delay", type=int, metavar="S",
                       help="seconds before the time limit at which SLURM asks a task to stop (default 120)")
    group.add_argument("--sbatch", action="append", metavar="OPTION",
                       help="another sbatch option, e.g. --sbatch=--constraint=a100 (repeatable; added to "
                            "slurm.sbatch)")
    group.add_argument("--setup", action="append", metavar="COMMAND",
                       help="a shell line run before each task's worker, e.g. --setup 'module load cuda' "
                            "(repeatable; added to slurm.setup)")
    p.set_defaults(func=cmd_sweep)


def _add_status_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="one table of a sweep's cells while it runs: state, worker, step, loss, "
                                      "img/s, ETA",
                       description="Read a sweep's study (read-only, safe while its workers run; sqlite, PostgreSQL "
                                   "or journal storage) and print one line per cell: state, worker host:pid and "
                                   "device, step/steps, last loss, images/s, elapsed, ETA, the step it resumed "
                                   "from, its error; then the totals and the sweep's ETA.")
    p.add_argument("target", help="the sweep's results folder (results/<name>) or its YAML")
    p.add_argument("--storage", metavar="URL", help="optuna storage (default: the YAML's, or the folder's store.json)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a sweep key (with a YAML)")
    p.add_argument("--watch", type=float, nargs="?", const=5.0, metavar="SECONDS",
                   help="refresh the table in place every SECONDS (default 5) until Ctrl-C or every cell is complete")
    p.set_defaults(func=cmd_status)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusionlab", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Ablation studies of RGB-D fusion in EfficientViT-SAM: which way of fusing a depth map "
                    "into an efficient SAM works best, with numbers you can put in a paper.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--threads", metavar="N|auto", default=None,
                        help="CPU threads for torch (default: $FUSIONLAB_THREADS, else auto = the cores not busy "
                             "with other processes); a sweep's workers split them")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="list registered models, fusion blocks, depth encoders, depth sources and "
                                    "datasets")
    p.add_argument("what", nargs="?", choices=["models", "fusions", "depth_encoders", "depth", "datasets"],
                   help="only this registry (default: all)")
    p.add_argument("--options", nargs=2, metavar=("KIND", "NAME"),
                   help="the options of one entry with their defaults and an example, e.g. --options datasets coco "
                        "(KIND: models, fusions, depth_encoders, depth, datasets)")
    p.add_argument("--config-docs", action="store_true",
                   help="print the configuration docs (Markdown, generated from the code: it is docs/configuration.md)")
    p.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import a module that registers more entries first (repeatable)")
    p.set_defaults(func=cmd_list)

    _add_predict_parsers(sub)

    for name, func, text in [("train", cmd_train, "train one model from a run config (then evaluate it)"),
                             ("eval", cmd_eval, "evaluate a checkpoint with the zero-shot protocol")]:
        p = sub.add_parser(name, help=text, description=text + ". The config is a YAML with sections model, "
                           "data, depth, train, eval, plugins; every key has a default for the embedded data.")
        p.add_argument("config", help="run config YAML (see ablations/ for examples)")
        if name == "eval":
            p.add_argument("--checkpoint", help="weights to evaluate (default: model.checkpoint of the config)")
        if name == "train":
            p.add_argument("--overwrite", action="store_true",
                           help="replace a finished run in --out (default: refuse a folder holding train_done.json)")
        p.add_argument("--out", help="output folder (default: results/runs/<config>-<time>)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. train.lr=3e-4")
        p.set_defaults(func=func)

    _add_depth_parser(sub)

    _add_sweep_parser(sub)
    _add_status_parser(sub)

    p = sub.add_parser("report", help="tables (LaTeX, Markdown, CSV) and plots of a sweep's results",
                       description="Read results/<name>/ (sweep.json, trials.csv, per-instance IoUs) and write "
                                   "the report next to it: table.tex, report.md, report.csv, miou, frontier and "
                                   "qualitative figures (PDF and PNG), and curve (mIoU against the axis) for a "
                                   "sweep with a numeric grid key; works on a sweep still running.")
    p.add_argument("results", nargs="?", default="results/fusion", help="results folder (default: results/fusion)")
    p.add_argument("--out", help="output folder (default: <results>/report)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for the Δ intervals")
    p.add_argument("--no-holm", dest="holm", action="store_false",
                   help="mark a Δ where its 95%% CI excludes 0 (default: where its p-value, Holm-adjusted over "
                        "the variants compared with the baseline, is below 0.05)")
    p.add_argument("--qualitative-variant", metavar="NAME",
                   help="variant of qualitative.png, the instances where it gains and loses most against RGB only "
                        "(default: the fusion variant with the best Δ box mIoU)")
    p.add_argument("--qualitative-prompt", default="box", metavar="PROMPT",
                   help="prompt kind of qualitative.png: box (default), click1, click3 ...")
    p.add_argument("--qualitative-rows", default="3,3,2", metavar="GAINS,LOSSES,RANDOM",
                   help="rows of qualitative.png: largest gains, largest losses, random instances (default 3,3,2)")
    p.add_argument("--ci", choices=["instances", "seeds+instances"], default="instances",
                   help="how the Δ intervals resample: instances, seeds averaged (default: how sure we are on these "
                        "trained models), or seeds then instances (two levels: whether the gain survives retraining)")
    p.add_argument("--where-variant", action="append", default=[], metavar="NAME",
                   help="a row of where.png and of the depth-edge tercile table (repeatable; default: the fusion "
                        "variant with the best Δ box mIoU, and the controls)")
    p.add_argument("--quiet", action="store_true", help="do not print the Markdown table")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("rescore", help="add Boundary IoU and instance attributes to finished evaluations, from "
                                       "their saved predictions (no model, no retraining)",
                       description="For each COMPLETE trial of results/<name>/ (or one fusionlab eval --out "
                                   "folder), decode the saved predictions, score their Boundary IoU and the "
                                   "instances' attributes on the dataset of its config.yaml, and add them to "
                                   "instances.csv, metrics.json and trials.csv; nothing recorded changes.")
    p.add_argument("results", help="a sweep's results folder (results/<name>) or a fusionlab eval --out folder")
    p.set_defaults(func=cmd_rescore)
    return parser


def _use_threads(requested: Optional[str]) -> None:
    import torch

    from fusionlab.config import cpu_threads

    threads, why = cpu_threads(requested)
    torch.set_num_threads(threads)
    logging.getLogger("fusionlab").info("using %d CPU thread(s) for torch (%s)", threads, why)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "depth" and args.split is None:
        args.split = ["train", "val"]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        from fusionlab.config import cpu_threads

        cpu_threads(args.threads)  # a bad --threads or FUSIONLAB_THREADS is refused by every command
        if args.command == "sweep" and (args.workers or 1) > 1 and not (args.dry_run or args.slurm):
            from fusionlab import processes

            processes.start_early()  # the workers' imports overlap this process's own
        if args.command not in ("list", "report", "status"):  # the commands that run torch
            _use_threads(args.threads)
        return int(args.func(args) or 0)
    except FusionlabError as exc:
        print(f"fusionlab {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fusionlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
