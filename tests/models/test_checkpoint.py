"""Loading official and fusionlab checkpoints, and the errors for the wrong ones."""
import pytest
import torch

from fusionlab import FusionlabError, build_model, load_checkpoint, save_checkpoint
from fusionlab.models import read_config

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
