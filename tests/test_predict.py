"""``fusionlab demo-image`` and ``fusionlab predict`` with the shipped demo weights: the box demo-image
prints segments its object, and ``--overlay`` shows the mask and the prompts on the image."""
import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fusionlab.cli import main
from fusionlab.models.overlay import BOX_COLOUR, MASK_COLOUR, NEGATIVE_COLOUR, POSITIVE_COLOUR

CHECKPOINT = str(Path(__file__).resolve().parents[1] / "ablations" / "weights" / "demo_rgb.safetensors")
pytestmark = pytest.mark.usefixtures("small_world")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Embedded scene 4 (a sphere in front of a zig-zag wall), and the box demo-image prints for it."""
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo-image", "--out", str(path), "--index", "4"]) == 0
    box = re.search(r"--box (\S+)", printed.getvalue()).group(1)
    return path, box


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_the_printed_box_segments_the_object_and_the_overlay_shows_mask_and_box(scene, tmp_path):
    image_path, box = scene
    assert box == "41,60,83,102"  # README.md shows this box: change both together
    out, overlay = tmp_path / "mask.png", tmp_path / "overlay.png"
    assert main(["predict", "--checkpoint", CHECKPOINT, "--image", str(image_path), "--box", box,
                 "--out", str(out), "--overlay", str(overlay)]) == 0

    image = np.asarray(Image.open(image_path).convert("RGB"))
    mask = np.asarray(Image.open(out)) > 0
    picture = np.asarray(Image.open(overlay))
    assert picture.shape == image.shape
    x0, y0, x1, y1 = (int(v) for v in box.split(","))
    inside = np.zeros_like(mask)
    inside[y0:y1, x0:x1] = True
    assert 0.6 * inside.sum() < mask.sum() < 0.9 * inside.sum()  # a sphere fills pi/4 of its box
    assert (mask & inside).sum() / mask.sum() > 0.95              # and the mask stays in it

    changed = (picture != image).any(axis=2)
    assert changed[mask].all()                                    # every mask pixel is tinted ...
    towards = np.abs(picture[mask].astype(int) - MASK_COLOUR) < np.abs(image[mask].astype(int) - MASK_COLOUR)
    assert towards.any(axis=1).all()                              # ... towards the mask colour
    untouched = ~mask
    untouched[y0:y1 + 1, x0:x1 + 1] = False                       # the box and its outline
    assert not changed[untouched].any()                           # and nothing else changes
    for y, x in [(y0, (x0 + x1) // 2), (y1, (x0 + x1) // 2), ((y0 + y1) // 2, x0), ((y0 + y1) // 2, x1)]:
        assert (picture[y, x] == BOX_COLOUR).all(), (y, x)       # the box's four sides


def test_the_overlay_marks_positive_and_negative_points_apart(scene, tmp_path):
    overlay = tmp_path / "overlay.png"
    assert main(["predict", "--checkpoint", CHECKPOINT, "--image", str(scene[0]), "--point", "62,80",
                 "--point", "20,20,0", "--out", str(tmp_path / "mask.png"), "--overlay", str(overlay)]) == 0
    picture = np.asarray(Image.open(overlay))
    assert (picture[80, 62] == POSITIVE_COLOUR).all() and (picture[20, 20] == NEGATIVE_COLOUR).all()


@pytest.mark.parametrize("bad, expected", [
    ("file.txt/overlay.png", "--overlay {tmp}/file.txt/overlay.png: {tmp}/file.txt is a file, not a folder"),
    ("overlay.xyz", "--overlay {tmp}/overlay.xyz: unknown image extension '.xyz'; expected e.g. overlay.png"),
    ("sub", "--overlay {tmp}/sub: {tmp}/sub is a folder; expected an image file name such as {tmp}/sub/overlay.png"),
    ("mask.png", "--overlay {tmp}/mask.png: the same file as --out"),
])
def test_a_bad_overlay_path_is_a_one_line_error_before_any_work(scene, tmp_path, capsys, bad, expected):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    (tmp_path / "sub").mkdir()
    # The checkpoint does not exist: an error about it would mean the overlay was checked too late.
    argv = ["predict", "--checkpoint", str(tmp_path / "missing.safetensors"), "--image", str(scene[0]),
            "--box", scene[1], "--out", str(tmp_path / "mask.png"), "--overlay", f"{tmp_path}/{bad}"]
    assert main(argv) == 2
    assert expected.format(tmp=tmp_path) in _error_line(capsys)
    assert not (tmp_path / "mask.png").exists()
