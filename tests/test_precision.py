"""``precision: auto`` picks bf16 only where a GPU computes it natively; ``train.deterministic``
sets torch's reproducibility flags; ``train.compile`` is refused with several processes."""
import logging

import pytest
import torch

from fusionlab.config import RunConfig, from_dict, validate
from fusionlab.distributed import World
from fusionlab.errors import FusionlabError
from fusionlab.precision import autocast, resolve_precision, set_deterministic
from fusionlab.train import train

CUDA = torch.device("cuda", 0)


def fake_gpu(monkeypatch, native: bool, name: str) -> None:
    """A GPU that computes bf16 natively or only emulates it (V100, T4), as torch reports them."""
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return native or including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)


@pytest.mark.parametrize("native, chosen", [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_only_on_a_gpu_with_native_bf16(monkeypatch, native, chosen):
    fake_gpu(monkeypatch, native, "NVIDIA A100" if native else "Tesla V100-SXM2-16GB")
    assert resolve_precision("auto", CUDA) == chosen
    assert resolve_precision("bf16", CUDA) == "bf16" and resolve_precision("fp32", CUDA) == "fp32"


def test_auto_is_fp32_on_the_cpu_and_bf16_is_honoured_there():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    with autocast(cpu, "auto"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_the_run_logs_the_precision_it_trains_in(tmp_path, caplog):
    config = tiny_config()
    with caplog.at_level(logging.INFO, logger="fusionlab.train"):
        train(config, tmp_path / "run", progress=False)
    assert "in fp32 (precision auto on cpu)" in caplog.text


def test_deterministic_sets_and_resets_torch_flags():
    try:
        set_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    finally:
        set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.allow_tf32


def test_a_deterministic_run_trains_the_same_losses_twice(tmp_path):
    import csv

    def losses(folder):
        train(tiny_config(deterministic=True), folder, progress=False)
        with open(folder / "train_log.csv") as handle:
            return [row["loss"] for row in csv.DictReader(handle)]

    try:
        assert losses(tmp_path / "a") == losses(tmp_path / "b")
    finally:
        set_deterministic(False)


def tiny_config(**train_options) -> RunConfig:
    options = {"epochs": 1, "batch_size": 2, "max_steps": 2, "masks_per_image": 4, "max_points": 3,
               "device": "cpu", **train_options}
    return from_dict(RunConfig, {"model": {"fusion": "add"},
                                 "data": {"train": {"split": "train", "num_images": 4, "image_size": 64}},
                                 "train": options}, "test")


def test_compile_with_several_processes_is_refused_at_load():
    with pytest.raises(FusionlabError, match=r"^test.yaml: train.compile: true with devices_per_cell: 2 is "
                                             r"refused: .*SyncBatchNorm.*set compile: false$"):
        validate(tiny_config(compile=True, devices_per_cell=2), "test.yaml")


def test_compile_under_torchrun_is_refused_before_the_folder_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr("fusionlab.train.join", lambda device: World(rank=0, local_rank=0, size=2))
    with pytest.raises(FusionlabError, match=r"^train.compile: true with 2 processes is refused"):
        train(tiny_config(compile=True), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
