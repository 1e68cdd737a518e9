"""Fusion blocks: modules that merge a depth feature map into an RGB feature map.

Every block is registered by name::

    @register_fusion("gated")
    class GatedFusion(FusionBlock): ...

and built with ``build_fusion("gated", channels=256)``. Third-party blocks come from the
entry-point group ``fusionlab.fusions`` or from a module listed under ``plugins:`` in a YAML.
"""
from fusionlab.fusion.base import FUSIONS, FusionBlock, build_fusion, list_fusions, register_fusion
from fusionlab.fusion.contract import check_fusion_contract

__all__ = ["FUSIONS", "FusionBlock", "build_fusion", "check_fusion_contract", "list_fusions", "register_fusion"]
