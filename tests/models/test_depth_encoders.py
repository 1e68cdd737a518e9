"""The RGB-D model: every fusion block at every fusion point, and every depth encoder kind at the
points its strides allow, starts as the RGB model and learns from depth; every kind round-trips
through a checkpoint, takes an RGB checkpoint, and fails on what cannot work with one line."""
import pytest
import torch
from safetensors.torch import save_file

from fusionlab import FusionlabError, build_model, list_depth_encoders, list_fusions, load_checkpoint, save_checkpoint
from fusionlab.config import load_run_config
from fusionlab.models import read_config
from fusionlab.models.cost import encoder_gmacs
from fusionlab.models.parts import part_modules

PRESET = "efficientvit-sam-demo"
# (depth_encoder, extra SamConfig fields): every built-in kind, depth_size included
ENCODERS = {
    "same": {},
    "shared": {},
    "efficientvit": {"depth_encoder_kwargs": {"width_list": [8, 8, 16, 32, 64], "depth_list": [1, 1, 1, 1, 2]}},
    "efficientvit-half": {},
    "efficientvit-quarter": {},
    "timm:resnet18": {},
    "timm:mobilenetv3_small_050": {"depth_input": "stem1"},
    "same@64px": {"depth_size": 64},
}
POINTS = ["neck", "neck_inputs", "stage3"]
BLOCKS = ["add", "concat", "gated", "cross_attention", "se", "rectify"]


def _build(encoder, seed=1, **fields):
    torch.manual_seed(seed)
    return build_model(PRESET, depth_encoder=encoder.split("@")[0], **{**ENCODERS[encoder], **fields})


def _batch(model, batch=2, masks=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    size, frame = model.image_size[1], model.image_size[0]
    images = torch.randn(batch, 3, size, size, generator=generator)
    depths = torch.rand(batch, 1, size, size, generator=generator)
    corners = torch.rand(batch, masks, 2, 2, generator=generator).sort(dim=2).values * frame
    return images, depths, [{"boxes": corners[i].reshape(masks, 4)} for i in range(batch)]


@pytest.fixture(scope="module")
def rgb_model():
    torch.manual_seed(0)
    return build_model(PRESET).eval()


def _assert_starts_as_rgb(rgbd, rgb_model, tolerance=1e-5):
    rgbd.load_state_dict(rgb_model.state_dict(), strict=False)
    rgbd.eval()
    images, depths, prompts = _batch(rgbd)
    with torch.no_grad():
        expected = rgb_model(images, None, prompts, multimask_output=True)
        got = rgbd(images, depths, prompts, multimask_output=True)
        got_other_depth = rgbd(images, torch.rand_like(depths), prompts, multimask_output=True)
    for (exp_logits, exp_iou), (logits, iou), (logits2, _) in zip(expected, got, got_other_depth):
        assert (logits - exp_logits).abs().max() <= tolerance and (iou - exp_iou).abs().max() <= tolerance
        assert (logits2 - exp_logits).abs().max() <= tolerance
    return images, depths, prompts, got


def _train_steps(rgbd, images, depths, prompts, outputs, steps=2):
    rgbd.train()
    optimizer = torch.optim.AdamW(rgbd.parameters(), lr=1e-3, weight_decay=0.0)
    targets = [torch.rand_like(logits) for logits, _ in outputs]
    for _ in range(steps):
        optimizer.zero_grad()
        out = rgbd(images, depths, prompts, multimask_output=True)
        loss = sum(torch.nn.functional.binary_cross_entropy_with_logits(lr, t) for (lr, _), t in zip(out, targets))
        loss.backward()
        optimizer.step()


def test_every_builtin_kind_and_block_is_registered():
    assert {"same", "shared", "efficientvit", "efficientvit-half", "efficientvit-quarter",
            "timm"} <= set(list_depth_encoders())
    assert set(BLOCKS) <= set(list_fusions())


@pytest.mark.parametrize("point", POINTS + ["stage2", "stage4"])
@pytest.mark.parametrize("block", BLOCKS)
def test_each_block_at_each_point_starts_exactly_as_rgb_and_learns_depth(rgb_model, block, point):
    rgbd = _build("same", fusion=block, fusion_point=point)
    images, depths, prompts, outputs = _assert_starts_as_rgb(rgbd, rgb_model, tolerance=0.0)
    _train_steps(rgbd, images, depths, prompts, outputs)
    grad = sum(p.grad.abs().sum().item() for p in rgbd.depth_encoder.parameters() if p.grad is not None)
    assert grad > 0, f"{block} at {point}: the depth encoder received no gradient"


def test_rgb_only_model_has_no_depth_branch():
    model = build_model(PRESET)
    assert model.depth_encoder is None and len(model.fusions) == 0
    assert not any(k.startswith(("depth_encoder.", "fusions.")) for k in model.state_dict())


def test_stage_fusion_builds_only_the_depth_stages_it_needs():
    model = build_model(PRESET, fusion="add", fusion_point="stage2")
    assert len(model.depth_encoder.backbone.stages) == 3
    assert not hasattr(model.depth_encoder, "neck")
    assert list(model.fusions) == ["stage2"]


def test_one_channel_stem_takes_one_channel_depth():
    model = build_model(PRESET, fusion="add", depth_input="stem1")
    assert model.depth_encoder.backbone.stages[0].op_list[0].conv.in_channels == 1
    images, depths, prompts = _batch(model, batch=1)
    (logits, iou), = model.eval()(images, depths, prompts)
    assert logits.shape == (3, 1, 64, 64) and iou.shape == (3, 1)


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_each_encoder_starts_as_rgb_and_its_depth_path_learns(rgb_model, encoder, point):
    rgbd = _build(encoder, fusion="add", fusion_point=point)
    images, depths, prompts, outputs = _assert_starts_as_rgb(rgbd, rgb_model)
    _train_steps(rgbd, images, depths, prompts, outputs)
    # shared has no weights of its own: its depth path is the RGB encoder, reached through the fusion block
    depth_path = [rgbd.fusions] if encoder == "shared" else [rgbd.depth_encoder]
    grad = sum(p.grad.abs().sum().item() for m in depth_path for p in m.parameters() if p.grad is not None)
    assert grad > 0, f"{encoder} at {point}: no gradient reached the depth path"


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("encoder", ["shared", "efficientvit-quarter", "timm:resnet18", "same@64px"])
def test_every_fusion_block_works_with_each_light_encoder(rgb_model, encoder, block):
    _assert_starts_as_rgb(_build(encoder, fusion=block, fusion_point="neck_inputs"), rgb_model)


def test_depth_size_is_what_the_depth_encoder_sees():
    model = _build("same@64px", fusion="add", fusion_point="neck_inputs").eval()
    seen = []
    model.depth_encoder.backbone.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    images, depths, prompts = _batch(model, batch=1)
    (logits, _), = model(images, depths, prompts)
    assert seen == [torch.Size([1, 3, 64, 64])] and logits.shape == (3, 1, 64, 64)
    assert encoder_gmacs(model) < encoder_gmacs(_build("same", fusion="add", fusion_point="neck_inputs"))


def test_light_encoders_cost_less_than_same_and_shared_adds_no_parameters():
    def depth_params(model):
        return sum(p.numel() for p in model.depth_encoder.parameters())

    same = _build("same", fusion="add")
    quarter, shared = _build("efficientvit-quarter", fusion="add"), _build("shared", fusion="add")
    assert depth_params(shared) == 0 and part_modules(shared, "depth_encoder") == []
    assert depth_params(quarter) < depth_params(same) / 4
    rgb_gmacs = encoder_gmacs(build_model(PRESET))
    assert encoder_gmacs(quarter) < encoder_gmacs(same) and encoder_gmacs(shared) == pytest.approx(2 * rgb_gmacs,
                                                                                                  rel=0.05)


def test_shared_batched_inference_equals_two_passes():
    model = _build("shared", fusion="concat", fusion_point="neck_inputs").eval()
    for parameter in model.fusions.parameters():  # leave the zero start: depth must change the embedding
        parameter.data.add_(0.1 * torch.randn_like(parameter))
    images, depths, _ = _batch(model)
    with torch.no_grad():
        model.depth_encoder.batches_with_rgb = True  # by default only on a GPU
        batched = model.encode(images, depths)
        model.depth_encoder.batches_with_rgb = False
        apart = model.encode(images, depths)
    assert torch.allclose(batched, apart, atol=1e-5)


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_checkpoint_round_trips_for_each_kind(tmp_path, encoder):
    model = _build(encoder, fusion="concat", fusion_point="neck_inputs")
    for parameter in model.parameters():  # leave the zero start, so that a lost weight would show
        parameter.data.add_(0.01 * torch.randn_like(parameter))
    path = save_checkpoint(model, tmp_path / "model.safetensors")
    again = load_checkpoint(build_model(read_config(path)), path).eval()
    images, depths, prompts = _batch(model, batch=1)
    with torch.no_grad():
        assert torch.equal(model.eval()(images, depths, prompts)[0][0], again(images, depths, prompts)[0][0])


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_an_rgb_checkpoint_loads_into_each_kind(tmp_path, rgb_model, encoder):
    torch.save(rgb_model.state_dict(), tmp_path / "rgb.pt")
    rgbd = load_checkpoint(_build(encoder, fusion="add"), tmp_path / "rgb.pt", init_depth_from_rgb=True).eval()
    images, depths, prompts = _batch(rgbd, batch=1)
    with torch.no_grad():
        expected = rgb_model(images, None, prompts)[0][0]
        assert (rgbd(images, depths, prompts)[0][0] - expected).abs().max() <= 1e-5


def test_l0_with_a_timm_encoder_loads_rgb_weights_starts_exactly_and_trains(tmp_path):
    torch.manual_seed(0)
    rgb = build_model("efficientvit-sam-l0").eval()
    save_file({k: v.contiguous() for k, v in rgb.state_dict().items()}, tmp_path / "l0.safetensors")
    rgbd = load_checkpoint(build_model("efficientvit-sam-l0", fusion="add", depth_encoder="timm:resnet18"),
                           tmp_path / "l0.safetensors", init_depth_from_rgb=True).eval()
    images, depths, prompts = _batch(rgbd, batch=1, masks=2)
    with torch.no_grad():
        expected = rgb(images, None, prompts, multimask_output=True)
        got = rgbd(images, depths, prompts, multimask_output=True)
    assert (got[0][0] - expected[0][0]).abs().max() <= 1e-5
    before = rgbd.depth_encoder.body.conv1.weight.clone()
    _train_steps(rgbd, images, depths, prompts, got, steps=2)
    assert not torch.equal(before, rgbd.depth_encoder.body.conv1.weight)


def test_timm_weights_load_from_a_local_file(tmp_path):
    import timm

    reference = timm.create_model("mobilenetv3_small_050", pretrained=False)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, tmp_path / "weights.safetensors")
    model = build_model(PRESET, fusion="add", depth_input="stem1", depth_encoder="timm:mobilenetv3_small_050",
                        depth_encoder_kwargs={"pretrained": str(tmp_path / "weights.safetensors")})
    stem = model.depth_encoder.body.conv_stem.weight
    assert torch.allclose(stem, reference.conv_stem.weight.sum(dim=1, keepdim=True))  # one channel: summed
    # a checkpoint holds the weights: rebuilding it does not read the pretrained file again
    path = save_checkpoint(model, tmp_path / "model.safetensors")
    (tmp_path / "weights.safetensors").unlink()
    assert read_config(path).depth_encoder_kwargs["pretrained"] is False


@pytest.mark.parametrize("fields, message", [
    ({"depth_encoder": "timm:efficientvit_m0", "fusion_point": "stage2"},
     "depth encoder 'timm:efficientvit_m0' has features at strides [16, 32, 64]; fusion point 'stage2' needs "
     "stride 8; with this encoder use fusion_point neck or stage3 or stage4"),
    ({"depth_encoder": "timm:no_such_net"}, "timm has no model 'no_such_net'"),
    ({"depth_encoder": "shared", "depth_input": "stem1"}, "it needs depth_input: replicate"),
    ({"depth_encoder": "timm:resnet18", "depth_encoder_kwargs": {"pretrained": "/nowhere/r18.pth"}},
     "pretrained weights file /nowhere/r18.pth does not exist"),
    ({"depth_encoder": "same:resnet18"}, "'same' takes no ':<name>' suffix"),
    ({"depth_encoder": "sahred"}, "unknown depth encoder 'sahred': did you mean 'shared'"),
    ({"depth_encoder": "efficientvit-quarter", "depth_encoder_kwargs": {"width": 3}},
     "unknown option of depth encoder 'efficientvit-quarter'"),
    ({"depth_encoder": "efficientvit", "depth_encoder_kwargs": {"width_list": [8, 16]}},
     "width_list and depth_list need 5 entries"),
    ({"depth_size": 100}, "depth_size 100: expected a positive multiple of 32"),
])
def test_what_cannot_work_is_one_line_naming_what_would(fields, message):
    with pytest.raises(FusionlabError) as error:
        build_model(PRESET, fusion="add", **fields)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_pretrained_true_offline_says_how_to_get_weights():
    with pytest.raises(FusionlabError, match="cannot get timm's pretrained weights .*set pretrained: <file>, or "
                                             "pretrained: false"):
        build_model(PRESET, fusion="add", depth_encoder="timm:mobilenetv3_small_050",
                    depth_encoder_kwargs={"pretrained": True})


def test_a_config_file_names_its_key_for_an_encoder_that_cannot_serve_the_point(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: {fusion: add, fusion_point: stage2, depth_encoder: 'timm:efficientvit_m0'}\n")
    with pytest.raises(FusionlabError, match=rf"^{path}: model: depth encoder 'timm:efficientvit_m0' has features"):
        load_run_config(path)
    path.write_text("model: {fusion: add, depth_encoder: 'timm:resnet18', depth_encoder_kwargs: {pretrain: true}}\n")
    with pytest.raises(FusionlabError, match=rf"^{path}: model.depth_encoder_kwargs.pretrain: unknown option of "
                                             r"depth encoder 'timm'; did you mean 'pretrained'\?"):
        load_run_config(path)
