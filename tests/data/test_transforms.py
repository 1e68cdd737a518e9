"""The input and output frames: one copy, used alike by the model's loader and the predictor."""
import numpy as np
import pytest
import torch

from fusionlab import FusionlabError
from fusionlab.data import transforms


def test_resized_shape_scales_the_long_side_rounding_half_up():
    assert transforms.resized_shape(375, 500, 1024) == (768, 1024)
    assert transforms.resized_shape(500, 375, 1024) == (1024, 768)
    assert transforms.resized_shape(4, 1, 2) == (2, 1)  # 0.5 rounds up, not to the even 0


def test_image_is_resized_normalised_with_sam_statistics_and_padded_with_zero():
    image = np.full((100, 50, 3), 255, np.uint8)
    tensor = transforms.preprocess_image(image, 64)
    assert tensor.shape == (3, 64, 64) and tensor.dtype == torch.float32
    white = (255 - torch.tensor(transforms.PIXEL_MEAN)) / torch.tensor(transforms.PIXEL_STD)
    torch.testing.assert_close(tensor[:, :64, :32], white.view(3, 1, 1).expand(3, 64, 32))
    assert not tensor[:, :, 32:].any()


def test_depth_is_resized_like_the_image_and_padded_with_zero():
    tensor = transforms.preprocess_depth(np.ones((100, 50), np.float32), 64, image_shape=(100, 50))
    assert tensor.shape == (1, 64, 64)
    torch.testing.assert_close(tensor[:, :, :32], torch.ones(1, 64, 32))
    assert not tensor[:, :, 32:].any()
    with pytest.raises(FusionlabError, match="depth map is 100×50 but the image is 100×60; expected the same size"):
        transforms.preprocess_depth(np.ones((100, 50), np.float32), 64, image_shape=(100, 60))


def test_masks_go_to_the_input_frame_and_back_to_the_original_size():
    masks = np.zeros((2, 90, 120), bool)
    masks[0, 10:60, 20:100] = True
    masks[1, 50:90, 0:40] = True
    frame = transforms.preprocess_masks(masks, 64)
    assert frame.shape == (2, 64, 64) and frame.dtype == torch.bool
    assert not frame[:, 48:].any()  # 90x120 -> 48x64, then padding
    logits = (frame.float() * 20 - 10)[None]  # as mask logits in a 64-pixel prompt frame
    back = transforms.postprocess_masks(logits, 64, transforms.resized_shape(90, 120, 64), (90, 120))[0] > 0
    assert back.shape == (2, 90, 120)
    for mask, again in zip(masks, back.numpy()):
        assert (mask & again).sum() / (mask | again).sum() > 0.95


def test_prompt_coordinates_scale_with_the_resized_image():
    corner = transforms.apply_coords(np.array([[120.0, 90.0]]), (90, 120), 1024)
    np.testing.assert_allclose(corner, [[1024, 768]])
    boxes = transforms.apply_boxes(np.array([0, 0, 60, 45]), (90, 120), 1024)
    np.testing.assert_allclose(boxes, [[0, 0, 512, 384]])


@pytest.mark.parametrize("image, message", [
    (np.zeros((32, 32), np.uint8), r"H×W×3 uint8 RGB array; got array of shape \(32, 32\)"),
    (np.zeros((32, 32, 3), np.float32), "dtype float32"),
    ([[1, 2, 3]], "got list"),
    (np.zeros((0, 32, 3), np.uint8), "image is empty"),
])
def test_images_that_are_not_hw3_uint8_are_refused(image, message):
    with pytest.raises(FusionlabError, match=message):
        transforms.preprocess_image(image, 64)
