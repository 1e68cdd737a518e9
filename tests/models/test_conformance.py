"""The RGB path is the official EfficientViT-SAM: outputs and checkpoint layouts."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fusionlab.models import Predictor, build_model, load_checkpoint, model_config
from fusionlab.models.sam import EfficientViTSam

# Relative (‖a−b‖/‖b‖), the bound the README promises. Measured at most 6.1e-7 on every output (float32
# on the CPU, 1 or 2 threads); norm eps 1e-5 instead of 1e-6 gives ~1e-4.
TOLERANCE = 1e-6


def rel_err(actual, expected) -> float:
    actual = torch.as_tensor(np.asarray(actual), dtype=torch.float64)
    expected = expected.to(torch.float64)
    return (torch.linalg.norm(actual - expected) / torch.linalg.norm(expected)).item()


@pytest.fixture(scope="module")
def nano(reference_dir):
    model = build_model("efficientvit-sam-nano").eval()
    return load_checkpoint(model, reference_dir / "tiny_l_sam.safetensors")


@pytest.fixture(scope="module")
def cases(reference_dir):
    return load_file(str(reference_dir / "tiny_l_sam_cases.safetensors"))


def test_nano_has_the_reference_parameter_count():
    model = build_model("efficientvit-sam-nano")
    assert sum(p.numel() for p in model.parameters()) == 4_913_592


def test_encoder_embedding_matches_official(nano, cases):
    with torch.no_grad():
        embedding = nano.image_encoder(cases["encoder.input"])
    assert embedding.shape == (1, 256, 64, 64)
    assert rel_err(embedding, cases["encoder.embedding"]) <= TOLERANCE


@pytest.fixture(scope="module")
def predictor(nano, cases):
    predictor = Predictor(nano)
    predictor.set_image(cases["predictor.image_uint8_hwc"].numpy())
    return predictor


def test_predictor_features_match_official(predictor, cases):
    assert rel_err(predictor.features, cases["predictor.features"]) <= TOLERANCE


def test_box_prompt_matches_official(predictor, cases):
    masks, iou, low_res = predictor.predict(box=cases["box.box_xyxy"].numpy(), multimask_output=False,
                                            return_logits=True)
    assert masks.shape == (1, 375, 500) and low_res.shape == (1, 256, 256)
    assert rel_err(masks, cases["box.mask_logits"]) <= TOLERANCE
    assert rel_err(iou, cases["box.iou"]) <= TOLERANCE
    assert rel_err(low_res, cases["box.low_res_logits"]) <= TOLERANCE


def test_point_prompts_match_official(predictor, cases):
    masks, iou, low_res = predictor.predict(point_coords=cases["points.coords_xy"].numpy(),
                                            point_labels=cases["points.labels"].numpy(), multimask_output=True,
                                            return_logits=True)
    assert masks.shape == (3, 375, 500)
    assert rel_err(masks, cases["points.mask_logits"]) <= TOLERANCE
    assert rel_err(iou, cases["points.iou"]) <= TOLERANCE
    assert rel_err(low_res, cases["points.low_res_logits"]) <= TOLERANCE


def test_bool_masks_are_thresholded_logits(predictor, cases):
    masks, _, _ = predictor.predict(box=cases["box.box_xyxy"].numpy(), multimask_output=False)
    assert masks.dtype == bool
    np.testing.assert_array_equal(masks, cases["box.mask_logits"].numpy() > 0)


def _read_layout(path):
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()[1:]]
    shapes = {key: () if shape == "scalar" else tuple(int(s) for s in shape.split("x")) for key, shape, _ in rows}
    dtypes = {key: dtype for key, _, dtype in rows}
    return shapes, dtypes


@pytest.mark.parametrize("size", ["l0", "l1", "l2", "xl0", "xl1"])
def test_released_key_layout_loads_into_preset(reference_dir, size, tmp_path):
    shapes, dtypes = _read_layout(reference_dir / f"efficientvit_sam_{size}.keys.tsv")
    with torch.device("meta"):
        model = EfficientViTSam(model_config(f"efficientvit-sam-{size}"))
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert own == shapes, f"missing {sorted(set(shapes) - set(own))[:3]}, unexpected {sorted(set(own) - set(shapes))[:3]}"


def test_l0_checkpoint_file_with_released_keys_loads(reference_dir, tmp_path):
    shapes, dtypes = _read_layout(reference_dir / "efficientvit_sam_l0.keys.tsv")
    state = {k: torch.zeros(s, dtype=getattr(torch, dtypes[k])) for k, s in shapes.items()}
    torch.save(state, tmp_path / "efficientvit_sam_l0.pt")
    model = build_model("efficientvit-sam-l0")
    load_checkpoint(model, tmp_path / "efficientvit_sam_l0.pt")
    assert torch.count_nonzero(model.image_encoder.norm.weight) == 0


@pytest.mark.parametrize("size, gmacs", [("l0", 34.8), ("l1", 49.0), ("l2", 68.6), ("xl0", 184.8)])
def test_encoder_gmacs_match_the_published_costs(size, gmacs):
    from fusionlab.models.cost import encoder_gmacs

    with torch.device("meta"):
        model = build_model(f"efficientvit-sam-{size}")
    assert encoder_gmacs(model) == pytest.approx(gmacs, abs=0.05)


def test_a_missing_reference_skips_but_fails_in_ci(require_reference, tmp_path, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="conformance references not found at .*absent"):
        require_reference(tmp_path / "absent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the conformance tests"):
        require_reference(tmp_path / "absent")
    assert require_reference(tmp_path) == tmp_path
