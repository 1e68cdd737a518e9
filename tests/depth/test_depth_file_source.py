import numpy as np
import pytest
import tifffile
from PIL import Image

from fusionlab.depth import build_depth_source
from fusionlab.errors import FusionlabError

MILLIMETRES = np.array([[1000, 2000], [4000, 0]], dtype=np.uint16)


def sample_2x2(dataset):
    sample = dataset[0]
    sample.image = sample.image[:2, :2]
    return sample


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        Image.fromarray(array).save(path)
    elif path.suffix == ".npy":
        np.save(path, array)
    else:
        tifffile.imwrite(path, array)


@pytest.mark.parametrize("extension", [".png", ".npy", ".tif", ".tiff"])
def test_reads_each_format_with_scale(tmp_path, dataset, extension):
    write(tmp_path / "sub" / f"img_0{extension}", MILLIMETRES)
    source = build_depth_source("file", folder=str(tmp_path), scale=0.001, output="depth", normalize="none")
    out = source(sample_2x2(dataset), 0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[1, 2], [4, 4]])  # metres; the 0 hole is the farthest


def test_normalised_disparity_from_png(tmp_path, dataset):
    write(tmp_path / "sub" / "img_0.png", MILLIMETRES)
    out = build_depth_source("file", folder=str(tmp_path))(sample_2x2(dataset), 0)
    np.testing.assert_allclose(out, [[1, 1 / 3], [0, 0]], rtol=1e-6)


def test_disparity_files(tmp_path, dataset):
    write(tmp_path / "sub" / "img_0.npy", np.array([[4, 2], [1, 0]], dtype=np.float32))
    out = build_depth_source("file", folder=str(tmp_path), raw="disparity")(sample_2x2(dataset), 0)
    np.testing.assert_allclose(out, [[1, 0.5], [0.25, 0]])


def test_missing_file_names_the_expected_path(tmp_path, dataset):
    source = build_depth_source("file", folder=str(tmp_path))
    with pytest.raises(FusionlabError, match=rf"depth file missing for image 'sub/img_0.jpg': expected "
                                             rf"{tmp_path}/sub/img_0.png \(or .npy, .tif, .tiff\)"):
        source(dataset[0], 0)


def test_map_of_another_size_names_both_sizes(tmp_path, dataset):
    write(tmp_path / "sub" / "img_0.png", MILLIMETRES)
    with pytest.raises(FusionlabError, match=r"img_0.png: depth map is 2x2 \(HxW\) but image 'sub/img_0.jpg' is 6x8"):
        build_depth_source("file", folder=str(tmp_path))(dataset[0], 0)


def test_nan_in_a_file_is_an_error(tmp_path, dataset):
    write(tmp_path / "sub" / "img_0.npy", np.array([[1, np.nan], [np.inf, 2]], dtype=np.float32))
    with pytest.raises(FusionlabError, match=r"img_0.npy: 2 NaN/inf values; depth files must be finite"):
        build_depth_source("file", folder=str(tmp_path))(sample_2x2(dataset), 0)


def test_all_invalid_file_is_an_error(tmp_path, dataset):
    write(tmp_path / "sub" / "img_0.png", np.zeros((2, 2), dtype=np.uint16))
    with pytest.raises(FusionlabError, match=r"img_0.png: no valid pixel in the depth map"):
        build_depth_source("file", folder=str(tmp_path))(sample_2x2(dataset), 0)


def test_colour_png_is_refused(tmp_path, dataset):
    write(tmp_path / "sub" / "img_0.png", np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(FusionlabError, match=r"img_0.png: PNG mode RGB; expected a single-channel"):
        build_depth_source("file", folder=str(tmp_path))(sample_2x2(dataset), 0)


def test_bad_folder_and_scale(tmp_path):
    with pytest.raises(FusionlabError, match=r"folder '.*nowhere' does not exist"):
        build_depth_source("file", folder=str(tmp_path / "nowhere"))
    with pytest.raises(FusionlabError, match=r"option scale=0 must be a finite number in \(0.0, inf\]"):
        build_depth_source("file", folder=str(tmp_path), scale=0)
