"""A fusion block from a module named under ``plugins:`` is usable by name in a sweep."""
from __future__ import annotations

import json
import textwrap

import pandas as pd

PLUGIN = '''
import torch
from fusionlab import FusionBlock, register_fusion


@register_fusion("sweep_test_scaled_add")
class ScaledAdd(FusionBlock):
    """rgb + s * depth, with s a learned scalar starting at 0."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.scale = torch.nn.Parameter(torch.zeros(1))

    def forward(self, rgb_feats, depth_feats):
        return rgb_feats + self.scale * depth_feats
'''


def test_plugin_fusion_block_runs_in_a_sweep(sweep, make_sweep, workdir):
    (workdir / "sweep_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    config = make_sweep(seeds=[0], plugins=["sweep_test_plugin"],
                        variants=[{"name": "scaled", "model": {"fusion": "sweep_test_scaled_add"}}])
    assert sweep(config) == 0
    trials = pd.read_csv(workdir / "results" / "tiny" / "trials.csv").set_index("variant")
    assert trials.loc["scaled", "state"] == "COMPLETE"
    sweep = json.loads((workdir / "results" / "tiny" / "sweep.json").read_text())
    assert sweep["variants"][1]["fusion"] == "sweep_test_scaled_add"
