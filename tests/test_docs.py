"""Every command the docs show works: each ``fusionlab`` command (and each benchmark script) in a fenced
block of README.md, docs/*.md and CONTRIBUTING.md is run here, or listed below with what stands in for it.

A page's commands run in its order, in a fresh folder that holds what a reader would have: the
repository's ``ablations/``, the files the pages' YAML blocks name on their first line
(``# configs/my_rgbd_eval.yaml``), a tiny COCO-format RGB-D set at ``data/my_rgbd/`` (the layout of
docs/your-own-data.md), and empty stand-ins for the paper's checkpoints. Runs are cut down: ``train``
and ``eval`` take the tiny ``--set`` overrides of ``TINY`` for their config, a sweep shown in full runs
with ``--dry-run`` (``SWEPT_ELSEWHERE`` says what runs it in full), and ``report`` (and ``rescore``) reads a fake
results folder written as a sweep writes one (tests/report/conftest.py). A command in neither place fails
``test_every_command_shown_is_run_here_or_accounted_for``.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from fusionlab.cli import main

REPO = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *(f"docs/{page.name}" for page in sorted((REPO / "docs").glob("*.md"))), "CONTRIBUTING.md"]
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
# fusionlab itself (perhaps after VAR=value, or through torchrun), or a benchmark script
SHOWN = re.compile(r"^(?:[A-Z_]+=\S* )*(?:fusionlab |torchrun .*-m fusionlab |python benchmarks/|bash benchmarks/)")
WRITTEN = re.compile(r"^# ([\w./-]+\.yaml)\b")

# Shown, not run here: what shows that each works instead, or why it cannot run here.
NOT_RUN: Dict[str, str] = {
    "fusionlab sweep film.yaml": "tests/test_contributing.py runs CONTRIBUTING.md's walk-through sweep, cut down",
    "fusionlab depth ablations/paper.yaml":
        "the paper's data and Depth Anything's weights; tests/depth/test_depth_command.py runs it on a sweep, tiny",
    "fusionlab depth configs/my_rgbd_eval.yaml --split val":
        "Depth Anything's weights come from the hub; tests/depth/test_depth_anything.py fills a cache with a tiny one",
    "CUDA_VISIBLE_DEVICES=0 fusionlab depth ablations/paper.yaml --shard 0/4":
        "a GPU and the paper's data; tests/depth/test_precompute_shards.py runs shards on the CPU",
    "torchrun --standalone --nproc_per_node 4 -m fusionlab train ablations/pretrain_demo.yaml --out "
    "results/runs/pretrain_ddp": "4 GPUs; tests/test_distributed.py runs torchrun on 2 CPU processes",
    "python benchmarks/latency.py --axis encoders --runs 9": "a benchmark (minutes); its numbers are in docs/models.md",
    "python benchmarks/throughput.py --tiny": "tests/test_benchmarks.py runs it, cut down further",
    "python benchmarks/scoring_cost.py":
        "a benchmark (minutes); tests/test_benchmarks.py runs it on one image; its numbers: docs/benchmarks.md",
    "python benchmarks/resume_cost.py --threads 1":
        "a benchmark (a minute); tests/test_benchmarks.py runs it on the demo; its numbers: docs/resuming.md",
    "python benchmarks/sweep_scaling.py": "a benchmark (9 minutes on 2 CPU cores); its numbers are in docs/benchmarks.md",
    "python benchmarks/logger_overhead.py --threads 1":
        "a benchmark (minutes); its numbers are in docs/watching.md",
    "fusionlab status results/fusion --watch":
        "redraws until Ctrl-C; tests/sweep/test_status.py reads status of a sweep running on two workers",
    "bash benchmarks/gpu_check.sh": "a GPU machine",
    **dict.fromkeys([
        "fusionlab sweep ablations/paper.yaml --slurm --storage postgresql://fusionlab@db.example.org:5432/fusionlab "
        "--partition gpu --time 8:00:00 --cpus-per-task 8 --mem 64G --dry-run",
        "fusionlab sweep ablations/paper.yaml --slurm --storage postgresql://fusionlab@db.example.org:5432/fusionlab "
        "--partition gpu --time 8:00:00 --cpus-per-task 8 --mem 64G",
        "fusionlab sweep ablations/paper.yaml --dry-run --storage postgresql://fusionlab@db.example.org:5432/fusionlab"],
        "a SLURM cluster and its database; tests/cluster/test_slurm.py submits a sweep to a one-node SLURM, "
        "tests/sweep/test_slurm.py checks the slurm: settings, flags and --dry-run"),
}
# Sweeps shown in full: run here with --dry-run (the file's keys, names and paths checked, its cells
# listed); what runs each in full.
SWEPT_ELSEWHERE: Dict[str, str] = {
    "fusionlab sweep ablations/fusion.yaml --workers 2": "README's demo command, which CI runs",
    "fusionlab sweep ablations/depth_encoders.yaml --workers 2": "docs/ablations.md's table (12.3 min, 2 CPU cores)",
    "fusionlab sweep ablations/data_efficiency.yaml --workers 2": "docs/ablations.md's curve; tests/sweep/test_axis.py",
    "fusionlab sweep fusion_small.yaml --workers 2": "the demo's set-up, shorter; tests/sweep/test_workers.py",
    "fusionlab sweep ablations/fusion.yaml --workers 2 --set heartbeat.grace=60 --set 'seeds=[0]'":
        "tests/sweep/test_workers.py: a killed worker's cell is rerun in the same launch",
    "fusionlab sweep ablations/paper.yaml": "a GPU and the paper's data, stood in for here by empty files",
    "fusionlab sweep ablations/fusion.yaml --workers 2 --set 'base.train.loggers=[tensorboard,wandb,mlflow]'":
        "tests/sweep/test_status.py: a tiny sweep with the three loggers on two workers, read back from each",
    "fusionlab sweep ablations/paper.yaml --devices cuda:0,cuda:2":
        "3 GPUs; tests/sweep/test_workers.py pins workers to GPUs",
    "fusionlab sweep ablations/fusion.yaml --slurm --storage journal:results/fusion-slurm.log --set "
    "results_dir=results/slurm --workers 2 --gpus-per-task 0 --cpus-per-task 1":
        "a SLURM cluster; tests/cluster/test_slurm.py submits a sweep to the one-node SLURM of start_slurm.sh",
}
_TINY_SYNTHETIC = ["train.steps=1", "train.batch_size=2", "train.masks_per_image=2", "data.train.num_images=2",
                   "data.val.num_images=2", "eval.prompts=[box]"]
_TINY_OWN = ["model.preset=efficientvit-sam-demo", "train.steps=1", "train.batch_size=2", "train.masks_per_image=2",
             "train.num_workers=0", "eval.prompts=[box]"]
# The overrides that make a shown run config tiny, by config (the architecture of the user's L0 is the demo's).
TINY: Dict[str, List[str]] = {
    "ablations/pretrain_demo.yaml": _TINY_SYNTHETIC,
    "ablations/interactive.yaml": _TINY_SYNTHETIC,
    "configs/my_rgbd_finetune.yaml": [*_TINY_OWN, "model.checkpoint=null"],
    "configs/my_rgbd_eval.yaml": _TINY_OWN,
}
REPORT_ARGS = ["--n-boot", "100"]


def shown_commands(page: str) -> List[str]:
    """The commands in the page's fenced blocks, in order, whitespace collapsed, comments dropped."""
    commands = []
    for block in FENCED.findall((REPO / page).read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line)
            commands += [" ".join(part.split()) for part in line.split("&&") if SHOWN.match(part.strip())]
    return commands


def _subcommand(argv: List[str]) -> str:
    return next(word for word in argv[1:] if not word.startswith("-") and not word.isdigit())


def plan(command: str) -> Tuple[str, List[str]]:
    """``("skip", [])``, or ``("run", argv)`` for main(); raises AssertionError for an unaccounted command."""
    if command in NOT_RUN:
        return "skip", []
    argv = shlex.split(command)
    assert argv[0] == "fusionlab", f"{command!r} cannot run in-process here: add it to NOT_RUN with what shows it"
    subcommand = _subcommand(argv)
    if "--help" in argv:
        return "run", argv[1:]
    if subcommand == "sweep" and "--dry-run" not in argv:
        assert command in SWEPT_ELSEWHERE, (f"{command!r} runs a whole sweep: add it to SWEPT_ELSEWHERE with what "
                                            f"runs it in full (here it runs with --dry-run)")
        return "run", argv[1:] + ["--dry-run"]
    if subcommand in ("train", "eval"):
        config = argv[argv.index(subcommand) + 1]
        assert config in TINY, f"{command!r}: add the --set overrides that make {config} tiny to TINY"
        return "run", argv[1:] + [arg for item in TINY[config] for arg in ("--set", item)]
    if subcommand == "report":
        return "run", argv[1:] + REPORT_ARGS
    return "run", argv[1:]


def test_every_command_shown_is_run_here_or_accounted_for():
    commands = [command for page in PAGES for command in shown_commands(page)]
    assert "fusionlab sweep ablations/fusion.yaml --workers 2" in commands  # the demo, README's first command
    for command in commands:
        plan(command)


def test_the_tables_list_only_commands_the_docs_still_show():
    commands = {command for page in PAGES for command in shown_commands(page)}
    assert set(NOT_RUN) <= commands, set(NOT_RUN) - commands
    assert set(SWEPT_ELSEWHERE) <= commands, set(SWEPT_ELSEWHERE) - commands
    configs = {shlex.split(c)[2] for c in commands if re.match(r"fusionlab (train|eval) ", c)}
    assert set(TINY) == configs, set(TINY) ^ configs


def _written_files() -> Dict[str, str]:
    """The files the pages' YAML blocks name on their first line (``# configs/x.yaml``), by path."""
    files: Dict[str, str] = {}
    for page in PAGES:
        for block in FENCED.findall((REPO / page).read_text()):
            match = WRITTEN.match(block)
            if match:
                assert files.setdefault(match.group(1), block) == block, f"{match.group(1)}: two different pages"
    return files


def _own_rgbd_set(root: Path, size: int = 48) -> None:
    """docs/your-own-data.md's layout: annotations/{train,val}.json, images/<split>/, depth/<split>/ (mm PNGs)."""
    rng = np.random.default_rng(0)
    for split, first in (("train", 1), ("val", 101)):
        for folder in ("images", "depth"):
            (root / folder / split).mkdir(parents=True)
        images, annotations = [], []
        for image_id in range(first, first + 2):
            name = f"{split}/{image_id:04d}"
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"{name}.jpg")
            Image.fromarray(rng.integers(500, 5000, (size, size), dtype=np.uint16)).save(root / "depth" / f"{name}.png")
            images.append({"id": image_id, "file_name": f"{name}.jpg", "height": size, "width": size})
            mask = np.zeros((size, size), np.uint8)
            mask[8:30, 10:40] = 1
            rle = mask_utils.encode(np.asfortranarray(mask))
            annotations.append({"id": image_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "area": int(mask.sum()), "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                                "segmentation": {"size": [size, size], "counts": rle["counts"].decode("ascii")}})
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"{split}.json").write_text(json.dumps(
            {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}))


def _reader_folder(folder: Path) -> None:
    (folder / "ablations").mkdir()
    for sweep in (REPO / "ablations").glob("*.yaml"):  # copied, so that ../data is the reader's folder's
        shutil.copy(sweep, folder / "ablations" / sweep.name)
    (folder / "ablations" / "weights").symlink_to(REPO / "ablations" / "weights")
    for name, text in _written_files().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    _own_rgbd_set(folder / "data" / "my_rgbd")
    (folder / "data" / "weights").mkdir(parents=True)
    for checkpoint in ("efficientvit_sam_l2.pt", "sam_vit_h_4b8939.pth"):  # a sweep's dry run only hashes them
        (folder / "data" / "weights" / checkpoint).write_bytes(b"")
    for data_folder in ("sa1b", "coco/val2017", "coco/annotations"):  # the paper's data: checked to exist, not read
        (folder / "data" / data_folder).mkdir(parents=True)
    for data_file in ("sa1b/train_11k.txt", "coco/annotations/instances_val2017.json"):
        (folder / "data" / data_file).write_text("")


def _fake_results(folder: Path) -> None:
    """A finished sweep's result files, written by the report tests' writer."""
    fixtures = sys.modules.get("report_fixtures")
    if fixtures is None:
        spec = importlib.util.spec_from_file_location("report_fixtures", REPO / "tests" / "report" / "conftest.py")
        fixtures = sys.modules["report_fixtures"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
        spec.loader.exec_module(fixtures)
    fixtures.write_sweep(folder)


def _run(argv: List[str], capsys) -> Tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # --help
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


pytestmark = pytest.mark.usefixtures("small_world")


@pytest.mark.parametrize("page", [page for page in PAGES if shown_commands(page)])
def test_the_commands_of_a_page_run_in_its_order(page, tmp_path, monkeypatch, capsys):
    _reader_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FUSIONLAB_THREADS", "1")
    for command in shown_commands(page):
        how, argv = plan(command)
        if how == "skip":
            continue
        if argv[0] in ("report", "rescore") and not (tmp_path / argv[1] / "trials.csv").exists():
            _fake_results(tmp_path / argv[1])
        code, out, err = _run(argv, capsys)
        assert code == 0, f"{page}: {command}\n{err[-3000:]}"
        assert out.strip(), f"{page}: {command} printed nothing"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_stay_in_the_repository_and_reach_a_file_and_heading():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", (REPO / page).read_text()):
            assert not re.match(r"\w+://", target), f"{page}: {target}: a link out of the repository"
            path, _, anchor = target.partition("#")
            file = ((REPO / page).parent / path).resolve() if path else REPO / page
            assert file.is_relative_to(REPO) and file.exists(), f"{page}: {target}: no such file in the repository"
            if anchor:
                headings = re.findall(r"^#+ (.*)$", file.read_text(), flags=re.M)
                assert anchor in {_anchor(h) for h in headings}, f"{page}: {target}: no such heading"
