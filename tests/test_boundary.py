"""Boundary IoU against the reference definition (boundary-iou-api's ``mask_to_boundary``), on
hand-made cases whose numbers are worked out below, and on random masks against a literal
re-statement of that definition (zero padding, then d erosions by a 3 × 3 square)."""
import numpy as np
import pytest

from fusionlab.boundary import band_width, boundary_iou, mask_boundary, resize_nearest


def _mask(shape, *boxes):
    """A bool mask with each ``(row0, row1, col0, col1)`` box (inclusive) set."""
    mask = np.zeros(shape, dtype=bool)
    for r0, r1, c0, c1 in boxes:
        mask[r0:r1 + 1, c0:c1 + 1] = True
    return mask


def _reference_boundary(mask, d):
    """The definition, spelled out: pad one zero pixel, erode d times by a 3 × 3 square, crop."""
    eroded = np.pad(mask, 1)
    for _ in range(d):
        padded = np.pad(eroded, 1)
        eroded = np.all([padded[1 + dr:padded.shape[0] - 1 + dr, 1 + dc:padded.shape[1] - 1 + dc]
                         for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=0)
    return mask & ~eroded[1:-1, 1:-1]


def test_band_width_is_two_percent_of_the_diagonal_rounded_as_python_at_least_one():
    assert band_width(10, 10) == 1      # 0.28 rounds to 0: at least 1
    assert band_width(15, 20) == 1      # diagonal 25: 0.5 rounds (half to even) to 0
    assert band_width(75, 100) == 2     # diagonal 125: 2.5 rounds to 2, as Python's round does
    assert band_width(100, 100) == 3    # 2.83
    assert band_width(128, 128) == 4    # the embedded scenes: 3.62


def test_object_touching_the_border_has_a_boundary_along_it():
    # 10 x 10 image, d = 1. GT: the 4 x 4 square in the corner; its erosion keeps rows/cols 1..2
    # (4 px) because outside the image is background, so its boundary is 12 px (7 if the border
    # were not contour). Pred: 4 x 5 in the corner, erosion keeps rows 1..2 x cols 1..3 (6 px),
    # boundary 14 px. Shared: GT's 12 but (1,3), (2,3), inside the prediction's erosion -> 10.
    # BIoU = 10 / (12 + 14 - 10) = 0.625.
    gt, pred = _mask((10, 10), (0, 3, 0, 3)), _mask((10, 10), (0, 3, 0, 4))
    assert mask_boundary(gt, 1).sum() == 12
    assert boundary_iou(gt, pred) == pytest.approx(0.625, abs=1e-6)


def test_one_pixel_wide_object_is_all_boundary():
    # GT: a 1 x 6 line (all boundary, 6 px); pred: 2 x 6 (erodes to nothing, 12 px). 6 / 12.
    gt, pred = _mask((10, 10), (5, 5, 2, 7)), _mask((10, 10), (5, 6, 2, 7))
    assert np.array_equal(mask_boundary(gt, 1), gt)
    assert boundary_iou(gt, pred) == pytest.approx(0.5, abs=1e-6)


def test_empty_prediction_scores_zero_and_so_does_an_empty_union():
    gt = _mask((10, 10), (0, 3, 0, 3))
    assert boundary_iou(gt, np.zeros_like(gt)) == 0.0
    assert boundary_iou(np.zeros_like(gt), np.zeros_like(gt)) == 0.0


def test_wider_band_on_a_larger_image():
    # 100 x 100, d = 3. GT: rows/cols 10..29 (400 px, erosion 14 x 14, boundary 204); pred: the
    # same square 2 rows lower (boundary 204). In their 18 x 20 overlap, the pixels in neither
    # erosion (GT's rows 13..26, pred's rows 15..28, both cols 13..26: 16 x 14 = 224) are in both
    # boundaries: 360 - 224 = 136. BIoU = 136 / (204 + 204 - 136) = 0.5.
    gt, pred = _mask((100, 100), (10, 29, 10, 29)), _mask((100, 100), (12, 31, 10, 29))
    assert boundary_iou(gt, pred) == pytest.approx(0.5, abs=1e-6)


def test_a_prediction_at_lower_resolution_is_upsampled_before_its_boundary_is_taken():
    # 20 x 20 image (d = 1), GT rows/cols 4..11 (8 x 8, boundary 64 - 36 = 28). Pred at 10 x 10:
    # rows 2..5, cols 2..6, i.e. rows 4..11 x cols 4..13 at full size (boundary 80 - 48 = 32).
    # GT's boundary pixels at col 11, rows 5..10, lie inside the prediction's erosion: 28 - 6 = 22
    # shared. BIoU = 22 / (28 + 32 - 22) = 22 / 38.
    gt, low = _mask((20, 20), (4, 11, 4, 11)), _mask((10, 10), (2, 5, 2, 6))
    assert np.array_equal(resize_nearest(low, (20, 20)), _mask((20, 20), (4, 11, 4, 13)))
    assert boundary_iou(gt, low) == pytest.approx(22 / 38, abs=1e-6)


def test_matches_the_reference_definition_on_random_masks():
    rng = np.random.default_rng(0)
    for height, width in ((10, 10), (37, 53), (128, 128)):
        d = band_width(height, width)
        for _ in range(5):
            gt = rng.random((height, width)) < rng.uniform(0.2, 0.9)
            pred = rng.random((height, width)) < rng.uniform(0.2, 0.9)
            gt_b, pred_b = _reference_boundary(gt, d), _reference_boundary(pred, d)
            expected = (gt_b & pred_b).sum() / (gt_b | pred_b).sum()
            assert np.array_equal(mask_boundary(gt, d), gt_b)
            assert boundary_iou(gt, pred) == pytest.approx(expected, abs=1e-6)
