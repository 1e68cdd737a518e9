"""``fusionlab depth --shard i/n``: n processes fill one cache together, each image once; a rerun resumes."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from fusionlab.cli import main
from fusionlab.data import build_dataset
from fusionlab.depth import build_depth_source, precompute
from fusionlab.depth.precompute import DatasetShard, innermost_source

TRAIN = {"split": "train", "num_images": 5, "image_size": 48}
SIZES = [(20, 30)] * 4


def depth_anything(model: Path, cache: Path, **options):
    return build_depth_source("depth_anything", model=str(model), cache_dir=str(cache), device="cpu", **options)


@pytest.mark.parametrize("total", [0, 1, 5, 7])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_the_shards_of_n_processes_are_disjoint_and_together_hold_every_image(make_dataset, total, count):
    dataset = make_dataset([(2, 2)] * total)
    shards = [[shard[i].image_id for i in range(len(shard))]
              for shard in (DatasetShard(dataset, index, count) for index in range(count))]
    held = [image_id for shard in shards for image_id in shard]
    assert sorted(held) == dataset.image_ids  # every image, none twice
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1  # balanced


def test_two_shards_run_one_after_the_other_fill_the_cache_and_a_full_run_computes_nothing(
        tiny_depth_anything, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FUSIONLAB_CACHE", str(tmp_path / "cache"))
    options = {"model": str(tiny_depth_anything), "device": "cpu"}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": TRAIN}, "model": {"fusion": "add"},
                                      "depth": {"source": "depth_anything", "options": options}}))
    run = ["depth", str(config), "--split", "train", "--quiet"]

    assert main(run + ["--shard", "0/2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("train (shard 0/2): ")
    assert "3 images of 5, 3 computed, 0 already cached in " in line and " images/s computed) by " in line
    source, dataset = build_depth_source("depth_anything", **options), build_dataset("synthetic", **TRAIN)
    assert [source.cache.path(dataset[i]).is_file() for i in range(5)] == [True, False, True, False, True]

    assert main(run + ["--shard", "1/2"]) == 0
    assert "2 images of 5, 2 computed, 0 already cached" in capsys.readouterr().out
    assert all(source.cache.path(dataset[i]).is_file() for i in range(5))

    assert main(run) == 0
    assert "5 images, 0 computed, 5 already cached" in capsys.readouterr().out


@pytest.mark.parametrize("spec", ["5/4", "4/4", "-1/4", "1/0", "a/2", "1", "1/2/3", ""])
def test_a_bad_shard_spec_is_a_one_line_error(spec, tmp_path, capsys):
    assert main(["depth", str(tmp_path / "not_read.yaml"), f"--shard={spec}"]) == 2
    assert capsys.readouterr().err == f"fusionlab depth: error: --shard {spec}: expected i/n with 0 <= i < n\n"


@pytest.mark.parametrize("overlap", [False, True])  # the stages in turn (CPU) or in threads (GPU)
def test_a_write_cut_halfway_leaves_no_entry_and_the_next_run_computes_the_rest(
        tiny_depth_anything, tmp_path, make_dataset, monkeypatch, overlap):
    split = make_dataset(SIZES)
    write_bytes, maps_written = Path.write_bytes, []

    def cut_second_map(path: Path, data: bytes) -> int:
        if ".npz." in path.name:  # a map's temporary sibling (key.json is written whole)
            maps_written.append(path)
            if len(maps_written) == 2:
                write_bytes(path, data[:len(data) // 2])
                raise KeyboardInterrupt
        return write_bytes(path, data)

    monkeypatch.setattr(Path, "write_bytes", cut_second_map)
    interrupted = depth_anything(tiny_depth_anything, tmp_path, batch_size=1)
    interrupted.overlap = overlap
    with pytest.raises(KeyboardInterrupt):
        precompute(interrupted, split, progress=False)
    monkeypatch.undo()

    source = depth_anything(tiny_depth_anything, tmp_path, batch_size=1)
    present = [source.cache.path(split[i]).is_file() for i in range(4)]
    # the cut map is not there; maps predicted before the interruption were written whole by the writer thread
    assert present[0] and not present[1]
    assert not list(source.cache.folder.rglob("*.tmp"))
    report = precompute(source, split, progress=False)
    assert (report["computed"], report["cached"]) == (present.count(False), present.count(True))
    assert all(source.cache.path(split[i]).is_file() for i in range(4))


def test_a_run_that_computes_missing_maps_says_once_that_fusionlab_depth_fills_the_cache_first(
        tiny_depth_anything, tmp_path, make_dataset, caplog):
    caplog.set_level(logging.INFO, logger="fusionlab.depth")
    filled, missing = make_dataset(SIZES[:2]), make_dataset(SIZES[:2], seed=1)
    depth_anything(tiny_depth_anything, tmp_path).fill(filled, progress=False)  # fusionlab depth: no note
    source = depth_anything(tiny_depth_anything, tmp_path)
    assert source.prepare(filled, progress=False)["computed"] == 0  # all cached: no note
    assert source.prepare(missing, progress=False)["computed"] == 2
    source(make_dataset(SIZES[:1], seed=2)[0], 0)  # not prepared: predicted inline, not said again
    notes = [r.getMessage() for r in caplog.records if r.name == "fusionlab.depth"]
    assert len(notes) == 1 and "`fusionlab depth CONFIG` fills the cache first" in notes[0]


def test_the_progress_bar_shows_images_per_second(tiny_depth_anything, tmp_path, make_dataset, capsys):
    precompute(depth_anything(tiny_depth_anything, tmp_path, batch_size=2), make_dataset(SIZES), progress=True)
    bar = capsys.readouterr().err
    assert "4 computed at " in bar and " images/s, 0 cached" in bar


def test_filling_a_shuffled_control_fills_its_inner_cache_without_the_inline_note(
        tiny_depth_anything, tmp_path, make_dataset, caplog):
    caplog.set_level(logging.INFO, logger="fusionlab.depth")
    split = make_dataset(SIZES[:3])
    shuffled = build_depth_source("shuffled", source="depth_anything", model=str(tiny_depth_anything),
                                  cache_dir=str(tmp_path), device="cpu")
    report = precompute(shuffled, split, progress=False)
    assert (report["computed"], report["cached"]) == (3, 0)
    assert not [r for r in caplog.records if "predicted now, during the run" in r.getMessage()]
    assert depth_anything(tiny_depth_anything, tmp_path).fill(split, progress=False)["cached"] == 3


def test_a_shuffled_control_is_planned_as_its_inner_source():
    # so a sweep's add and shuffled variants share one job, and a shard too small to shuffle is no error
    assert innermost_source("shuffled", {"source": "depth_anything", "seed": 3, "model": "m"}) == (
        "depth_anything", {"model": "m"})
    assert innermost_source("shuffled", {"seed": 3}) == ("dataset", {})
    assert innermost_source("noise", {"seed": 3}) == ("noise", {"seed": 3})
