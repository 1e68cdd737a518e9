"""The predictor's bad-input errors and its output shapes."""
import numpy as np
import pytest

from fusionlab import FusionlabError, Predictor, build_model


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


def test_depth_must_match_image_and_be_finite(rgbd_predictor):
    image = np.zeros((40, 50, 3), np.uint8)
    with pytest.raises(FusionlabError, match="depth map is 40×40 but the image is 40×50"):
        rgbd_predictor.set_image(image, depth=np.zeros((40, 40), np.float32))
    bad = np.zeros((40, 50), np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(FusionlabError, match="1 NaN/inf values"):
        rgbd_predictor.set_image(image, depth=bad)
    with pytest.raises(FusionlabError, match="needs a depth map"):
        rgbd_predictor.set_image(image)


def test_prompts_outside_the_image_are_rejected(rgbd_predictor):
    rgbd_predictor.set_image(np.zeros((40, 50, 3), np.uint8), depth=np.zeros((40, 50), np.float32))
    with pytest.raises(FusionlabError, match=r"box corner \(60, 30\) is outside the 50×40 image"):
        rgbd_predictor.predict(box=np.array([0, 0, 60, 30]))
    with pytest.raises(FusionlabError, match="x0<=x1"):
        rgbd_predictor.predict(box=np.array([30, 0, 10, 30]))
    with pytest.raises(FusionlabError, match="2 points but 1 labels"):
        rgbd_predictor.predict(point_coords=np.array([[1, 1], [2, 2]]), point_labels=np.array([1]))
