"""CONTRIBUTING.md's walk-through, followed literally: its files, its test, its sweep."""
import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def walkthrough_files() -> dict:
    """Every fenced block of CONTRIBUTING.md whose first line is ``# <relative path>``."""
    text = (REPO / "CONTRIBUTING.md").read_text()
    files = {}
    for body in re.findall(r"```(?:python|yaml)\n(.*?)```", text, flags=re.S):
        first = body.splitlines()[0]
        match = re.fullmatch(r"# ([\w./-]+\.(?:py|yaml))", first)
        if match:
            files[match.group(1)] = body
    return files


@pytest.fixture
def walkthrough(tmp_path, monkeypatch):
    files = walkthrough_files()
    assert {"my_blocks/film.py", "tests/test_film.py", "film.yaml"} <= set(files)
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    (tmp_path / "my_blocks" / "__init__.py").write_text("")
    shutil.copytree(REPO / "ablations" / "weights", tmp_path / "ablations" / "weights")
    env = dict(os.environ, PYTHONPATH="", OMP_NUM_THREADS="1")
    return tmp_path, env


def test_walkthrough_test_passes(walkthrough):
    folder, env = walkthrough
    result = subprocess.run([sys.executable, "-m", "pytest", "tests/test_film.py", "-p", "my_blocks.film", "-q",
                             "-p", "no:cacheprovider"], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_walkthrough_sweep_runs_the_plugin_block(walkthrough):
    folder, env = walkthrough
    fusionlab = Path(sys.executable).with_name("fusionlab")
    tiny = ["seeds=[0]", "latency={enabled: false}", "base.train={epochs: 1, batch_size: 2, max_steps: 1, "
            "masks_per_image: 4}", "base.data={dataset: synthetic, train: {split: train, num_images: 2, "
            "image_size: 64}, val: {split: val, num_images: 2, image_size: 64}}", "base.eval={prompts: [box]}"]
    command = [str(fusionlab), "sweep", "film.yaml"] + [arg for item in tiny for arg in ("--set", item)]
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = list(csv.DictReader((folder / "results" / "film" / "trials.csv").open()))
    states = {row["variant"]: row["state"] for row in rows}
    assert states == {"rgb_only": "COMPLETE", "film": "COMPLETE", "add": "COMPLETE"}

    (folder / "film.yaml").write_text((folder / "film.yaml").read_text().replace("fusion: film", "fusion: flim"))
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert "unknown fusion block 'flim'" in error and "'film'" in error and "Traceback" not in result.stderr
