"""The overlay ``fusionlab predict --overlay`` writes: mask tinted, box outlined, points told apart."""
import numpy as np

from fusionlab.models.overlay import (BOX_COLOUR, MASK_ALPHA, MASK_COLOUR, NEGATIVE_COLOUR, POSITIVE_COLOUR,
                                      RIM_COLOUR, draw_overlay)


def test_overlay_tints_the_mask_outlines_the_box_and_tells_point_labels_apart():
    image = np.full((48, 64, 3), 100, np.uint8)
    mask = np.zeros((48, 64), bool)
    mask[10:30, 10:40] = True
    picture = np.asarray(draw_overlay(image, mask, box=(5, 5, 50, 40),
                                      point_coords=np.array([[20.0, 20.0], [56.0, 42.0]]),
                                      point_labels=np.array([1, 0])))

    assert picture.shape == image.shape
    blended = np.round((1 - MASK_ALPHA) * 100 + MASK_ALPHA * np.array(MASK_COLOUR)).astype(np.uint8)
    assert (picture[25, 30] == blended).all()                         # inside the mask
    assert (picture[10, 30] == MASK_COLOUR).all()                     # its edge, opaque
    assert (picture[2, 2] == 100).all() and (picture[35, 30] == 100).all()  # outside everything
    for y, x in [(5, 25), (40, 25), (20, 5), (20, 50)]:              # the four sides of the box
        assert (picture[y, x] == BOX_COLOUR).all(), (y, x)
    assert (picture[20, 20] == POSITIVE_COLOUR).all() and (picture[42, 56] == NEGATIVE_COLOUR).all()
    # A positive point is a disc, a negative one a square (black rims): only the square has corners.
    assert (picture[42 + 3, 56 + 3] == RIM_COLOUR).all()
    assert (picture[20 + 3, 20 + 3] == blended).all()
