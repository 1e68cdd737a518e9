"""Loading official and fusionlab checkpoints, what they record, and the errors for the wrong ones."""
import os
import stat
import struct

import pytest
import torch
from safetensors.torch import save_file

from fusionlab import FusionlabError, build_model, load_checkpoint, save_checkpoint
from fusionlab.depth import build_depth_source
from fusionlab.models import read_config
from fusionlab.models.checkpoint import DepthPreprocessing, read_depth_preprocessing

PRESET = "efficientvit-sam-demo"


def test_rgb_checkpoint_fills_rgb_branch_of_rgbd_model(tmp_path):
    rgb = build_model(PRESET)
    torch.save(rgb.state_dict(), tmp_path / "rgb.pt")
    rgbd = build_model(PRESET, fusion="gated")
    fusion_before = {k: v.clone() for k, v in rgbd.fusions.state_dict().items()}
    depth_before = {k: v.clone() for k, v in rgbd.depth_encoder.state_dict().items()}
    load_checkpoint(rgbd, tmp_path / "rgb.pt")
    for key, value in rgb.image_encoder.state_dict().items():
        assert torch.equal(rgbd.image_encoder.state_dict()[key], value)
    assert all(torch.equal(rgbd.fusions.state_dict()[k], v) for k, v in fusion_before.items())
    assert all(torch.equal(rgbd.depth_encoder.state_dict()[k], v) for k, v in depth_before.items())


def test_rgb_checkpoint_can_initialise_depth_encoder(tmp_path):
    rgb = build_model(PRESET)
    torch.save(rgb.state_dict(), tmp_path / "rgb.pth")
    rgbd = load_checkpoint(build_model(PRESET, fusion="add"), tmp_path / "rgb.pth", init_depth_from_rgb=True)
    for key, value in rgbd.depth_encoder.state_dict().items():
        assert torch.equal(value, rgb.image_encoder.state_dict()[key])


def test_stem1_depth_encoder_starts_from_summed_rgb_stem(tmp_path):
    rgb = build_model(PRESET)
    torch.save(rgb.state_dict(), tmp_path / "rgb.pt")
    rgbd = load_checkpoint(build_model(PRESET, fusion="add", depth_input="stem1"), tmp_path / "rgb.pt",
                           init_depth_from_rgb=True)
    key = "backbone.stages.0.op_list.0.conv.weight"
    assert torch.allclose(rgbd.depth_encoder.state_dict()[key], rgb.image_encoder.state_dict()[key].sum(1, keepdim=True))


def test_fusionlab_checkpoint_round_trips_with_its_config(tmp_path):
    model = build_model(PRESET, fusion="concat", fusion_point="stage3")
    path = save_checkpoint(model, tmp_path / "run" / "model.safetensors")
    assert not list(path.parent.glob("*.tmp"))
    config = read_config(path)
    assert config == model.config
    again = load_checkpoint(build_model(config), path)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)


def test_checkpoint_of_another_preset_names_keys_and_the_fitting_preset(tmp_path):
    torch.save(build_model("efficientvit-sam-nano").state_dict(), tmp_path / "nano.pt")
    with pytest.raises(FusionlabError) as info:
        load_checkpoint(build_model(PRESET), tmp_path / "nano.pt")
    message = str(info.value)
    assert "\n" not in message
    assert "nano.pt does not fit this model" in message
    assert "of another shape" in message
    assert "it fits preset efficientvit-sam-nano" in message


def test_rgbd_checkpoint_into_other_block_lists_unexpected_keys(tmp_path):
    path = save_checkpoint(build_model(PRESET, fusion="gated"), tmp_path / "gated.safetensors")
    with pytest.raises(FusionlabError, match=r"unexpected \(e\.g\. fusions\.neck\.") as info:
        load_checkpoint(build_model(PRESET, fusion="add"), path)
    assert "missing (e.g. fusions.neck.alpha)" in str(info.value)


def test_missing_and_corrupt_checkpoints_are_one_line_errors(tmp_path):
    model = build_model(PRESET)
    with pytest.raises(FusionlabError, match="does not exist"):
        load_checkpoint(model, tmp_path / "absent.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FusionlabError, match="could not be read"):
        load_checkpoint(model, tmp_path / "bad.pt")


def test_unknown_preset_block_and_option_errors():
    with pytest.raises(FusionlabError, match="unknown model preset 'efficientvit-sam-l3'.*did you mean"):
        build_model("efficientvit-sam-l3")
    with pytest.raises(FusionlabError, match="unknown fusion block 'gate'.*'gated'"):
        build_model(PRESET, fusion="gate")
    with pytest.raises(FusionlabError, match="fusion_point 'stage1' is not a point of this model"):
        build_model(PRESET, fusion="add", fusion_point="stage1")
    with pytest.raises(FusionlabError, match=r"unknown model option\(s\) \['gird'\]"):
        build_model(PRESET, gird=8)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")
def test_saved_checkpoint_gets_the_umask_permissions_of_any_new_file(tmp_path, umask_027):
    path = save_checkpoint(build_model(PRESET), tmp_path / "model.safetensors")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask_027  # 0640: the group can read it


def test_checkpoint_records_the_depth_preprocessing_it_was_trained_with(tmp_path):
    model = build_model(PRESET, fusion="add")
    path = save_checkpoint(model, tmp_path / "rgbd.safetensors",
                           depth_source=build_depth_source("dataset", output="depth", normalize="median_mad"))
    assert read_depth_preprocessing(path) == DepthPreprocessing(
        source="dataset", raw="depth", output="depth", normalize="median_mad",
        options={"output": "depth", "normalize": "median_mad"})
    assert read_config(path) == model.config
    assert read_depth_preprocessing(save_checkpoint(model, tmp_path / "unsaid.safetensors")) is None


def _safetensors_with_header(path, header: bytes):
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


def test_corrupt_safetensors_header_is_a_one_line_error_naming_the_file(tmp_path):
    bad = _safetensors_with_header(tmp_path / "bad.safetensors", b"{not json at all")
    for read in (read_config, read_depth_preprocessing, lambda p: load_checkpoint(build_model(PRESET), p)):
        with pytest.raises(FusionlabError, match=r"checkpoint .*bad\.safetensors could not be read") as info:
            read(bad)
        assert "\n" not in str(info.value)


def test_malformed_fusionlab_metadata_is_a_one_line_error_naming_the_key(tmp_path):
    path = tmp_path / "meta.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"fusionlab_config": "{\"width_list\": ",
                                                           "fusionlab_depth": "{\"normalize\": \"zscore\"}"})
    with pytest.raises(FusionlabError, match=r"meta\.safetensors: metadata 'fusionlab_config' is not a model config"):
        read_config(path)
    with pytest.raises(FusionlabError, match=r"meta\.safetensors: metadata fusionlab_depth\.normalize='zscore'; "
                                             r"expected one of 'minmax', 'median_mad', 'none'"):
        read_depth_preprocessing(path)
