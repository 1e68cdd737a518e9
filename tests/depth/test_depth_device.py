"""Depth Anything runs on the run's device, lets its model go after ``prepare``, and never predicts
inside a DataLoader worker."""
import pytest
import torch

from fusionlab.depth import build_depth_source
from fusionlab.errors import FusionlabError

GPU1 = torch.device("cuda", 1)


@pytest.fixture
def moves(monkeypatch):
    """The devices models are moved to; a move to a GPU is recorded and left undone (no GPU here)."""
    seen = []
    original = torch.nn.Module.to

    def to(module, *args, **kwargs):
        device = next((a for a in (*args, kwargs.get("device")) if isinstance(a, (str, torch.device))), None)
        if device is not None and torch.device(device).type == "cuda":
            seen.append(torch.device(device))
            return module
        return original(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    return seen


def source(tiny_depth_anything, tmp_path, **options):
    return build_depth_source("depth_anything", model=str(tiny_depth_anything), cache_dir=str(tmp_path / "cache"),
                              **options)


def test_the_model_runs_on_the_runs_gpu_and_is_let_go_after_prepare(tiny_depth_anything, tmp_path, make_dataset,
                                                                    moves, monkeypatch):
    depth = source(tiny_depth_anything, tmp_path)
    depth.run_on(GPU1)
    assert depth.prepare(make_dataset([(6, 8)] * 3), progress=False)["computed"] == 3
    assert moves == [GPU1]  # not cuda:0, where another worker trains
    assert depth.model is None


@pytest.mark.parametrize("option, run, expected", [
    ("auto", torch.device("cpu"), "cpu"),  # a CPU run keeps its GPUs free, even where one is visible
    ("cpu", GPU1, "cpu"),
    ("cuda", GPU1, "cuda:1"),
    ("auto", GPU1, "cuda:1"),
])
def test_where_the_model_runs(tiny_depth_anything, tmp_path, monkeypatch, option, run, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    depth = source(tiny_depth_anything, tmp_path, device=option)
    depth.run_on(run)
    assert depth.target_device() == torch.device(expected)


def test_a_run_hands_its_device_to_the_depth_source(tmp_path, monkeypatch):
    from fusionlab.config import RunConfig, from_dict
    from fusionlab.depth.base import DepthSource
    from fusionlab.train import train

    devices = []
    monkeypatch.setattr(DepthSource, "run_on", lambda self, device: devices.append(device))
    config = from_dict(RunConfig, {"model": {"fusion": "add"},
                                   "data": {"train": {"split": "train", "num_images": 2, "image_size": 64}},
                                   "train": {"epochs": 1, "batch_size": 2, "max_steps": 1, "masks_per_image": 2,
                                             "device": "cpu", "save_checkpoint": False}}, "test")
    train(config, tmp_path / "run", progress=False)
    assert devices == [torch.device("cpu")]


class Maps(torch.utils.data.Dataset):
    def __init__(self, depth, dataset):
        self.depth, self.dataset = depth, dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.depth(self.dataset[index], index)


def test_a_cache_miss_in_a_dataloader_worker_is_a_clear_error(tiny_depth_anything, tmp_path, make_dataset):
    depth = source(tiny_depth_anything, tmp_path)
    loader = torch.utils.data.DataLoader(Maps(depth, make_dataset([(6, 8)])), num_workers=1)
    with pytest.raises(FusionlabError, match=r"not in the cache .* a DataLoader worker does not predict depth .*; "
                                             r"run `fusionlab depth CONFIG` first, or train with num_workers: 0"):
        next(iter(loader))


def test_the_cli_prints_a_workers_error_as_its_one_line(tiny_depth_anything, tmp_path, make_dataset):
    from fusionlab.errors import one_line

    depth = source(tiny_depth_anything, tmp_path)
    loader = torch.utils.data.DataLoader(Maps(depth, make_dataset([(6, 8)])), num_workers=1)
    with pytest.raises(FusionlabError) as raised:
        next(iter(loader))
    assert "Original Traceback" in str(raised.value)
    assert one_line(raised.value).startswith("depth source 'depth_anything': the map of image ")
    assert "\n" not in one_line(raised.value)
