"""``benchmarks/throughput.py --tiny`` (cut down further) prints its four tables with their columns;
``benchmarks/resume_cost.py`` and ``benchmarks/scoring_cost.py`` theirs."""
import importlib.util
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module (the folder is no package)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_throughput_prints_the_training_depth_precompute_and_data_tables(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FUSIONLAB_CACHE", str(tmp_path / "cache"))
    throughput = load_benchmark("throughput")

    throughput.main(["--tiny", "--device", "cpu", "--threads", str(torch.get_num_threads()), "--variants", "rgb",
                     "--steps", "1", "--da-size", "28", "--da-images", "2", "--data-steps", "3"])

    lines = capsys.readouterr().out.splitlines()
    cells = [[cell.strip() for cell in line.strip("|").split("|")] if line.startswith("|") else None for line in lines]
    for columns, rows in ((throughput.TRAIN_COLUMNS, 1), (throughput.DEPTH_COLUMNS, 1),
                          (throughput.PRECOMPUTE_COLUMNS, 1), (throughput.DATA_COLUMNS, 1)):
        header = cells.index(list(columns))
        body = cells[header + 2:header + 2 + rows]
        assert all(row is not None and len(row) == len(columns) and all(row) for row in body), body
        assert cells[header + 2 + rows:header + 3 + rows] in ([], [None])  # and the table ends there
    precompute = cells[cells.index(list(throughput.PRECOMPUTE_COLUMNS)) + 2]
    assert precompute[1] == "2" and float(precompute[-1]) > 0  # two maps computed, at some share of the forward


def test_resume_cost_prints_the_demo_s_write_against_its_training_between_two_points(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FUSIONLAB_CACHE", str(tmp_path / "cache"))
    resume_cost = load_benchmark("resume_cost")

    resume_cost.main(["--steps", "2", "--writes", "1", "--presets", "--every", "0.5", "--folder", str(tmp_path)])

    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()
            if line.startswith("|")]
    assert rows[0][:4] == ["model", "params (M)", "point (MB)", "write (s)"] and len(rows) == 3
    demo = dict(zip(rows[0], rows[2]))
    assert demo["model"].startswith("demo") and float(demo["point (MB)"]) > 1
    # the cost is the write over half a minute of training
    assert float(demo["cost"].rstrip(" %")) == pytest.approx(100 * float(demo["write (s)"]) / 30, rel=0.02, abs=2e-3)
    assert demo["training between points"].startswith("0.5 min (") and "steps)" in demo["training between points"]
    assert list(tmp_path.iterdir()) == [tmp_path / "cache"]  # its points are written in a folder it removes


def test_the_batch_search_tries_multimask_and_the_timing_steps_down_on_out_of_memory(monkeypatch, capsys):
    throughput = load_benchmark("throughput")
    model = throughput.build_model("efficientvit-sam-demo")
    optimizer = torch.optim.AdamW(model.parameters())
    tried = []

    def step(model, optimizer, images, depths, targets, multimask, *rest):
        tried.append((len(images), multimask))
        if len(images) * (2 if multimask else 1) > 4:  # multimask output needs twice the memory here
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return {}

    monkeypatch.setattr(throughput, "train_step", step)
    assert throughput.largest_batch(model, optimizer, 2, torch.device("cpu"), 1, 8) == 2
    assert {multimask for _, multimask in tried} == {True}
    batch, images_s = throughput.fitting_images_per_second(model, optimizer, 8, 2, 2, torch.device("cpu"))
    assert batch == 2 and images_s > 0
    assert "batch 8 ran out of memory while timed; timing 4" in capsys.readouterr().err


@pytest.mark.parametrize("gpus", [1, 2])
def test_gpu_check_trains_on_two_processes_where_two_gpus_are_visible(tmp_path, gpus):
    """The script's logic, with every program it starts replaced by a stub that records its arguments."""
    import os
    import subprocess

    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "calls.txt"
    for name in ("python", "torchrun", "fusionlab", "nvidia-smi"):
        stub = stubs / name
        stub.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "{calls}"\n'
                        f'[[ "$*" == *device_count* ]] && echo {gpus}\nexit 0\n')
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "OUT": str(tmp_path / "out"),
           "FUSIONLAB_CACHE": str(tmp_path / "cache")}

    done = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=60)

    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "out" / "summary.txt").read_text()
    torchruns = [line for line in calls.read_text().splitlines() if line.startswith("torchrun ")]
    if gpus == 2:
        assert "torchrun_2gpu rc=0" in summary
        assert [line.split("--nproc_per_node ")[1].split()[0] for line in torchruns] == ["2"]
    else:
        assert ("torchrun_2gpu not run: 1 GPU visible; the two-process path (NCCL, DDP, SyncBatchNorm) "
                "needs 2") in summary
        assert [line.split("--nproc_per_node ")[1].split()[0] for line in torchruns] == ["1"]


def test_scoring_cost_prints_the_demo_s_evaluation_with_and_without_boundary_iou(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FUSIONLAB_CACHE", str(tmp_path / "cache"))
    scoring_cost = load_benchmark("scoring_cost")

    scoring_cost.main(["--images", "1", "--rounds", "1"])

    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()
            if line.startswith("|")]
    assert rows[0] == list(scoring_cost.COLUMNS) and len(rows) == 5
    without, with_them, alone = rows[2:]
    assert without[1::2] == ["1", "1.000", "1.000"] and float(with_them[2]) > 0 and 0 < float(alone[3]) < 1
