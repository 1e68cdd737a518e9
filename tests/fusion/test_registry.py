"""The fusion registry: built-ins, helpful unknown-name errors, plugin modules, entry points."""
import importlib
import sys
import textwrap

import pytest
import torch

from fusionlab.errors import FusionlabError
from fusionlab.fusion import FUSIONS, FusionBlock, build_fusion, list_fusions
from fusionlab.registry import import_plugins

BUILTINS = ["add", "concat", "cross_attention", "gated", "rectify", "se"]

_SCALE_BLOCK = textwrap.dedent('''
    import torch
    from fusionlab.fusion import FusionBlock{extra_import}

    {decorator}
    class ScaleFusion(FusionBlock):
        def __init__(self, channels, scale=0.0):
            super().__init__(channels)
            self.scale = torch.nn.Parameter(torch.tensor(float(scale)))

        def forward(self, rgb_feats, depth_feats):
            return rgb_feats + self.scale * depth_feats
''')


@pytest.fixture
def isolated_registry(monkeypatch):
    """Let a test add entries and rescan entry points without leaking them to other tests."""
    list_fusions()  # import the built-ins before taking the snapshot
    monkeypatch.setattr(FUSIONS, "_entries", dict(FUSIONS._entries))
    monkeypatch.setattr(FUSIONS, "_entry_points_loaded", False)
    yield FUSIONS


def _forget_module(name):
    sys.modules.pop(name, None)


def test_all_builtins_are_listed_and_build():
    assert set(BUILTINS) <= set(list_fusions())
    assert list_fusions("c*") == ["concat", "cross_attention"]
    for name in BUILTINS:
        block = build_fusion(name, 8)
        assert isinstance(block, FusionBlock) and block.channels == 8


def test_unknown_name_says_which_registry_what_was_asked_the_close_match_and_how_to_register():
    with pytest.raises(FusionlabError) as error:
        build_fusion("gatd", 8)
    message = str(error.value)
    assert "fusion block" in message and "'gatd'" in message
    assert "did you mean 'gated'" in message
    assert "@fusionlab.register_fusion" in message and "fusionlab.fusions" in message and "plugins:" in message
    assert "\n" not in message


def test_block_in_a_plugin_module_is_found_by_name(tmp_path, monkeypatch, isolated_registry):
    module = "fusionlab_test_plugin_module"
    (tmp_path / f"{module}.py").write_text(_SCALE_BLOCK.format(
        extra_import=", register_fusion", decorator='@register_fusion("test_scale")'))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import_plugins([module], where="ablations/test.yaml: plugins")
        block = build_fusion("test_scale", 4, scale=2.0)
        assert type(block).__module__ == module
        rgb, depth = torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2)
        assert torch.equal(block(rgb, depth), 2.0 * depth)
        assert "test_scale" in list_fusions()
    finally:
        _forget_module(module)


def test_missing_plugin_module_is_a_user_error():
    with pytest.raises(FusionlabError, match=r"ablations/test.yaml: plugins\[0\].*'no_such_fusion_plugin'"):
        import_plugins(["no_such_fusion_plugin"], where="ablations/test.yaml: plugins")


def test_block_exposed_as_an_entry_point_is_found(tmp_path, monkeypatch, isolated_registry):
    module = "fusionlab_test_entry_point_module"
    (tmp_path / f"{module}.py").write_text(_SCALE_BLOCK.format(extra_import="", decorator=""))
    dist_info = tmp_path / "fusionlab_test_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fusionlab-test-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[fusionlab.fusions]\nep_scale = {module}:ScaleFusion\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        block = build_fusion("ep_scale", 4, scale=1.0)
        assert type(block).__name__ == "ScaleFusion" and block.num_parameters == 1
        assert "ep_scale" in list_fusions()
    finally:
        _forget_module(module)


def test_entry_points_are_not_visible_without_the_distribution(isolated_registry):
    with pytest.raises(FusionlabError, match="unknown fusion block 'ep_scale'"):
        build_fusion("ep_scale", 4)


@pytest.mark.parametrize("name", ["add", "concat", "gated", "cross_attention", "se", "rectify"])
def test_public_contract_check_passes_for_every_builtin(name):
    from fusionlab.fusion import build_fusion, check_fusion_contract

    check_fusion_contract(build_fusion(name, channels=16))


def test_public_contract_check_catches_a_block_that_ignores_the_rgb_start():
    import torch

    from fusionlab.fusion import FusionBlock, check_fusion_contract

    class Average(FusionBlock):
        def forward(self, rgb_feats, depth_feats):
            return (rgb_feats + depth_feats) / 2

    with pytest.raises(AssertionError, match="must equal rgb_feats exactly"):
        check_fusion_contract(Average(4))

    class DoubleZero(FusionBlock):
        def __init__(self, channels):
            super().__init__(channels)
            self.first = torch.nn.Conv2d(channels, channels, 1)
            self.second = torch.nn.Conv2d(channels, channels, 1)
            for layer in (self.first, self.second):
                torch.nn.init.zeros_(layer.weight)
                torch.nn.init.zeros_(layer.bias)

        def forward(self, rgb_feats, depth_feats):
            return rgb_feats + self.second(self.first(depth_feats))

    with pytest.raises(AssertionError, match="no gradient"):
        check_fusion_contract(DoubleZero(4))
