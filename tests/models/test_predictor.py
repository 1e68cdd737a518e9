"""The predictor and ``fusionlab predict``: output shapes, depth as the checkpoint says, bad-input errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from fusionlab import FusionlabError, Predictor, build_model, save_checkpoint
from fusionlab.cli import main
from fusionlab.data.io import read_depth
from fusionlab.data.types import Sample
from fusionlab.depth import build_depth_source
from fusionlab.models.checkpoint import DepthPreprocessing, read_depth_preprocessing


@pytest.fixture(scope="module")
def rgbd_predictor():
    return Predictor(build_model("efficientvit-sam-demo", fusion="add").eval())


def test_masks_come_back_at_original_size(rgbd_predictor):
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    rgbd_predictor.set_image(image, depth=np.random.default_rng(1).random((90, 120)).astype(np.float32))
    masks, iou, low_res = rgbd_predictor.predict(box=np.array([10, 10, 60, 50]), multimask_output=True)
    assert masks.shape == (3, 90, 120) and masks.dtype == bool
    assert iou.shape == (3,) and low_res.shape == (3, 64, 64)
    masks, iou, _ = rgbd_predictor.predict(point_coords=np.array([[30, 30], [5, 5]]), point_labels=np.array([1, 0]),
                                           multimask_output=False)
    assert masks.shape == (1, 90, 120)


@pytest.mark.parametrize("image, message", [
    (np.zeros((32, 32), np.uint8), r"H×W×3 uint8 RGB array; got array of shape \(32, 32\)"),
    (np.zeros((32, 32, 3), np.float32), "dtype float32"),
    (np.zeros((32, 32, 4), np.uint8), r"shape \(32, 32, 4\)"),
])
def test_image_must_be_hw3_uint8(rgbd_predictor, image, message):
    with pytest.raises(FusionlabError, match=message):
        rgbd_predictor.set_image(image, depth=np.zeros(image.shape[:2], np.float32))


def test_depth_must_match_image_and_be_one_map(rgbd_predictor):
    image = np.zeros((40, 50, 3), np.uint8)
    with pytest.raises(FusionlabError, match="depth map is 40×40 but the image is 40×50"):
        rgbd_predictor.set_image(image, depth=np.zeros((40, 40), np.float32))
    with pytest.raises(FusionlabError, match="raw_depth map is 40×40 but the image is 40×50"):
        rgbd_predictor.set_image(image, raw_depth=np.ones((40, 40), np.float32))
    with pytest.raises(FusionlabError, match="needs one depth map, got none: pass depth="):
        rgbd_predictor.set_image(image)
    with pytest.raises(FusionlabError, match="needs one depth map, got both depth= and raw_depth="):
        rgbd_predictor.set_image(image, depth=np.zeros((40, 50)), raw_depth=np.ones((40, 50)))


@pytest.mark.parametrize("value", [1500.0, -0.2, np.nan, np.inf])
def test_normalised_depth_outside_0_1_is_refused_with_how_to_pass_raw_depth(rgbd_predictor, value):
    depth = np.full((40, 50), 0.5, np.float32)
    depth[3, 4] = value
    with pytest.raises(FusionlabError) as info:
        rgbd_predictor.set_image(np.zeros((40, 50, 3), np.uint8), depth=depth)
    message = str(info.value)
    assert "depth map has 1 NaN/inf or out-of-range value(s)" in message and "expected values in [0, 1]" in message
    assert "raw_depth=..., depth_kind='depth'" in message and "\n" not in message


def _sample(metres: np.ndarray) -> Sample:
    image = np.random.default_rng(2).integers(0, 255, metres.shape + (3,), dtype=np.uint8)
    return Sample(image_id=1, file_name="scene.png", image=image, instances=[], depth=metres)


def _scene_metres() -> np.ndarray:
    metres = np.linspace(0.5, 4.0, 40 * 50, dtype=np.float32).reshape(40, 50)
    metres[:5, :5] = 0  # no measurement
    return metres


def test_raw_depth_gets_the_preprocessing_the_checkpoint_records(tmp_path, depth_sensitive_model):
    model = depth_sensitive_model
    source = build_depth_source("dataset", output="depth", normalize="median_mad")
    path = save_checkpoint(model, tmp_path / "rgbd.safetensors", depth_source=source)
    sample = _sample(_scene_metres())
    trained_on = Predictor(model)
    trained_on.set_image(sample.image, depth=source(sample, 0))
    from_raw = Predictor(model, read_depth_preprocessing(path))
    from_raw.set_image(sample.image, raw_depth=sample.depth * 1000, depth_kind="depth")  # millimetres
    # median/MAD does not see the unit, but float32 rounds millimetres and metres apart (6e-8 in the map)
    torch.testing.assert_close(from_raw.features, trained_on.features)
    default = Predictor(model)  # a checkpoint that says nothing: a depth source's defaults
    default.set_image(sample.image, raw_depth=sample.depth)
    assert not torch.allclose(default.features, from_raw.features)  # the features show the preprocessing
    trained_on.set_image(sample.image, depth=build_depth_source("dataset")(sample, 0))
    assert torch.equal(default.features, trained_on.features)


def test_raw_depth_errors_name_the_kind_and_the_control(rgbd_predictor):
    image = np.zeros((40, 50, 3), np.uint8)
    with pytest.raises(FusionlabError, match="raw_depth: depth_kind='metres'; expected one of 'depth', 'disparity'"):
        rgbd_predictor.set_image(image, raw_depth=np.ones((40, 50)), depth_kind="metres")
    with pytest.raises(FusionlabError, match="raw_depth: no valid pixel in the depth map"):
        rgbd_predictor.set_image(image, raw_depth=np.zeros((40, 50)))
    noise = Predictor(rgbd_predictor.model, DepthPreprocessing.from_source(build_depth_source("noise")))
    with pytest.raises(FusionlabError, match=r"trained on depth source 'noise' .*a control that makes its maps "
                                             r"without depth, so raw depth cannot become one; pass the map"):
        noise.set_image(image, raw_depth=np.ones((40, 50)))


def test_unnormalised_training_maps_are_accepted_as_they_come(rgbd_predictor):
    unscaled = Predictor(rgbd_predictor.model, DepthPreprocessing(source="dataset", output="depth", normalize="none"))
    unscaled.set_image(np.zeros((40, 50, 3), np.uint8), depth=np.full((40, 50), 3.5, np.float32))
    with pytest.raises(FusionlabError, match="expected finite values"):
        unscaled.set_image(np.zeros((40, 50, 3), np.uint8), depth=np.full((40, 50), np.inf, np.float32))


def test_prompts_outside_the_image_are_rejected(rgbd_predictor):
    rgbd_predictor.set_image(np.zeros((40, 50, 3), np.uint8), depth=np.zeros((40, 50), np.float32))
    with pytest.raises(FusionlabError, match=r"box corner \(60, 30\) is outside the 50×40 image"):
        rgbd_predictor.predict(box=np.array([0, 0, 60, 30]))
    with pytest.raises(FusionlabError, match="x0<=x1"):
        rgbd_predictor.predict(box=np.array([30, 0, 10, 30]))
    with pytest.raises(FusionlabError, match="2 points but 1 labels"):
        rgbd_predictor.predict(point_coords=np.array([[1, 1], [2, 2]]), point_labels=np.array([1]))


@pytest.mark.parametrize("prompt, message", [
    ({"box": np.array([0, np.nan, 20, 20])},
     r"box must be 4 finite numbers x0,y0,x1,y1 .*got \[0\.0, nan, 20\.0, 20\.0\]"),
    ({"box": np.array([0, 0, np.inf, 20])}, "box must be 4 finite numbers"),
    ({"point_coords": np.array([[np.nan, 3]]), "point_labels": np.array([1])}, r"point \[nan, 3\.0\] is not finite"),
    ({"point_coords": np.array([[20, 20]]), "point_labels": np.array([7])},
     r"point \(20, 20\) has label 7; expected 1 \(foreground\) or 0 \(background\)"),
    ({"point_coords": np.array([[20, 20]]), "point_labels": np.array([-1])}, "has label -1"),
    ({"box": np.array([0, 0, 20, 20]), "mask_input": np.zeros((64, 64))},
     r"mask_input has shape \(64, 64\); expected \(1, 64, 64\), the low-res logits of one mask"),
    ({"box": np.array([0, 0, 20, 20]), "mask_input": np.zeros((1, 256, 256))}, r"expected \(1, 64, 64\)"),
    ({"box": np.array([0, 0, 20, 20]), "mask_input": np.full((1, 64, 64), np.nan)}, "mask_input has 4096 NaN/inf"),
])
def test_prompts_torch_cannot_take_are_one_line_errors(rgbd_predictor, prompt, message):
    rgbd_predictor.set_image(np.zeros((40, 50, 3), np.uint8), depth=np.zeros((40, 50), np.float32))
    with pytest.raises(FusionlabError, match=message) as info:
        rgbd_predictor.predict(**prompt)
    assert "\n" not in str(info.value)


def test_a_mask_from_an_earlier_call_refines_the_next(rgbd_predictor):
    rgbd_predictor.set_image(np.zeros((40, 50, 3), np.uint8), depth=np.zeros((40, 50), np.float32))
    click = {"point_coords": np.array([[20, 20]]), "point_labels": np.array([1]), "multimask_output": False,
             "return_logits": True}
    plain, _, low_res = rgbd_predictor.predict(**click)
    refined, _, _ = rgbd_predictor.predict(**click, mask_input=low_res)
    assert refined.shape == (1, 40, 50)
    assert not np.allclose(refined, plain, atol=1e-3)
    # the mask's content is read, not only whether one is given
    square = np.full((1, 64, 64), -10.0, np.float32)
    square[:, 10:30, 10:30] = 10.0
    inside, _, _ = rgbd_predictor.predict(**click, mask_input=square)
    outside, _, _ = rgbd_predictor.predict(**click, mask_input=-square)
    assert not np.allclose(inside, outside, atol=1e-3)


# ---------------------------------------------------------------- fusionlab predict / demo-image
def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
    return path


def _predict(image_file, *extra):
    return main(["predict", "--model", "efficientvit-sam-demo", "--image", str(image_file), *extra])


@pytest.mark.parametrize("prompt, message", [
    (["--point", "20,20,7"], "point (20, 20) has label 7; expected 1 (foreground) or 0 (background)"),
    (["--point", "20,20,0.5"], "point (20, 20) has label 0.5"),
    (["--box", "nan,0,20,20"], "box must be 4 finite numbers"),
])
def test_predict_refuses_labels_and_boxes_the_model_cannot_take(image_file, tmp_path, capsys, prompt, message):
    assert _predict(image_file, *prompt, "--out", str(tmp_path / "mask.png")) == 2
    assert message in _error_line(capsys)
    assert not (tmp_path / "mask.png").exists()


@pytest.mark.parametrize("out, blocker", [("notes.txt/mask.png", "notes.txt"), ("notes.txt/a/b/mask.png", "notes.txt")])
def test_predict_refuses_an_output_under_a_file_and_writes_nothing(image_file, tmp_path, capsys, out, blocker):
    (tmp_path / "notes.txt").write_text("keep me")
    before = sorted(tmp_path.rglob("*"))
    assert _predict(image_file, "--box", "5,5,30,30", "--out", str(tmp_path / out)) == 2
    assert f"--out {tmp_path / out}: {tmp_path / blocker} is a file, not a folder" in _error_line(capsys)
    assert sorted(tmp_path.rglob("*")) == before and (tmp_path / "notes.txt").read_text() == "keep me"
    assert _predict(image_file, "--box", "5,5,30,30", "--out", str(tmp_path)) == 2
    assert f"--out {tmp_path}: {tmp_path} is a folder; expected an image file name" in _error_line(capsys)


def test_predict_turns_a_depth_file_into_what_the_checkpoint_was_trained_on(image_file, tmp_path, monkeypatch):
    source = build_depth_source("dataset", output="depth", normalize="median_mad")
    checkpoint = save_checkpoint(build_model("efficientvit-sam-demo", fusion="add"), tmp_path / "rgbd.safetensors",
                                 depth_source=source)
    Image.fromarray((_scene_metres() * 1000).astype(np.uint16)).save(tmp_path / "depth.png")
    fed, set_image = [], Predictor.set_image

    def spy(self, image, depth=None, **kwargs):
        fed.append(depth)
        return set_image(self, image, depth, **kwargs)

    monkeypatch.setattr(Predictor, "set_image", spy)
    assert main(["predict", "--checkpoint", str(checkpoint), "--image", str(image_file), "--depth",
                 str(tmp_path / "depth.png"), "--box", "5,5,30,30", "--out", str(tmp_path / "out" / "mask.png")]) == 0
    image = np.asarray(Image.open(image_file))
    trained_on = source(Sample(1, "img.png", image, [], read_depth(tmp_path / "depth.png")), 0)
    assert np.array_equal(fed[0], trained_on)
    assert np.asarray(Image.open(tmp_path / "out" / "mask.png")).shape == (40, 50)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mask.png"]  # no temporary left


@pytest.mark.parametrize("index", ["-5", "50", "1000"])
def test_demo_image_refuses_scene_numbers_it_does_not_have(tmp_path, capsys, index):
    assert main(["demo-image", "--index", index, "--out", str(tmp_path / "scene.png")]) == 2
    assert f"--index {index}: expected a scene number from 0 to 49" in _error_line(capsys)
    assert not list(tmp_path.iterdir())


def test_demo_image_writes_a_scene_and_its_depth(tmp_path, capsys):
    assert main(["demo-image", "--index", "1", "--out", str(tmp_path / "demo" / "scene.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "demo" / "scene.png")).ndim == 3
    assert np.asarray(Image.open(tmp_path / "demo" / "scene_depth.png")).dtype == np.uint16
    assert "--box" in capsys.readouterr().out


def test_demo_image_refuses_an_output_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    assert main(["demo-image", "--out", str(tmp_path / "file" / "x.png")]) == 2
    assert f"{tmp_path / 'file'} is a file, not a folder" in _error_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
