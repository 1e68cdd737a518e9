from typing import Any, Dict, Tuple

import numpy as np
import pytest

from fusionlab.data.types import Sample
from fusionlab.depth import DepthSource, build_depth_source, list_depth_sources, precompute, register_depth_source
from fusionlab.errors import FusionlabError


def test_builtin_sources_are_listed():
    assert list_depth_sources() == ["constant", "dataset", "depth_anything", "file", "noise", "rgb", "shuffled"]
    assert list_depth_sources("d*") == ["dataset", "depth_anything"]


def test_unknown_source_names_close_matches():
    with pytest.raises(FusionlabError, match=r"unknown depth source 'nosie': did you mean 'noise'") as info:
        build_depth_source("nosie")
    assert "register_depth_source" in str(info.value) and "\n" not in str(info.value)


def test_unknown_option_lists_the_known_ones():
    with pytest.raises(FusionlabError, match=r"^sed: unknown option of depth source 'noise'; did you mean 'seed'\? "
                                             r"allowed: distribution, seed, normalize$"):
        build_depth_source("noise", sed=1)


@pytest.mark.parametrize("name, options, message", [
    ("dataset", {"normalize": "zscore"}, r"normalize: 'zscore' is not allowed \(option of depth source 'dataset'\); expected one of minmax, median_mad, none"),
    ("dataset", {"output": "inverse"}, r"output: 'inverse' is not allowed \(option of depth source 'dataset'\); expected one of depth, disparity"),
    ("noise", {"distribution": "poisson"}, r"distribution: 'poisson' is not allowed \(option of depth source 'noise'\); expected one of uniform, gaussian"),
    ("noise", {"seed": -1}, r"option seed=-1 must be an integer >= 0"),
    ("constant", {"value": 1.5}, r"option value=1.5 must be a finite number in \[0.0, 1.0\]"),
    ("shuffled", {"seed": 0.5}, r"^seed: expected an integer \(option of depth source 'shuffled'\), got a number 0.5$"),
    ("shuffled", {"source": "shuffled"}, r"would shuffle twice"),
])
def test_bad_option_values_are_one_line_errors(name, options, message):
    with pytest.raises(FusionlabError, match=message) as info:
        build_depth_source(name, **options)
    assert "\n" not in str(info.value)


def test_a_plugin_source_registers_and_builds(dataset):
    @register_depth_source("test_row_index")
    class RowIndex(DepthSource):
        """Depth = row index, a stand-in for a user's own source."""

        def __init__(self, normalize: str = "minmax"):
            super().__init__(raw="depth", normalize=normalize)

        def raw_map(self, sample: Sample, index: int) -> Tuple[np.ndarray, str]:
            height, width = sample.image.shape[:2]
            rows = np.repeat(np.arange(1, height + 1, dtype=np.float32)[:, None], width, axis=1)
            return rows, "rows"

        def options(self) -> Dict[str, Any]:
            return {"normalize": self.normalize}

    source = build_depth_source("test_row_index", normalize="minmax")
    out = source(dataset[0], 0)
    assert "test_row_index" in list_depth_sources()
    assert source.config() == {"name": "test_row_index", "normalize": "minmax"}
    assert out[0, 0] == 1 and out[-1, 0] == 0  # top row nearest -> brightest disparity
    report = precompute(source, dataset, progress=False)
    assert (report["images"], report["computed"], report["cached"], report["dataset"]) == (4, 0, 0, "tiny")
