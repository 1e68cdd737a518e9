"""Depth sources: what goes into the depth branch for each image.

Every source is registered by name::

    @register_depth_source("dataset")
    class DatasetDepth(DepthSource): ...

and built with ``build_depth_source("depth_anything", model="...", normalize="minmax")``.
Built-ins: ``dataset`` (the dataset's own depth), ``depth_anything`` (predicted, cached on
disk), ``file`` (a folder of maps), and the controls ``constant``, ``noise``, ``shuffled``,
``rgb``. Third-party sources come from the entry-point group ``fusionlab.depth_sources`` or
from a module listed under ``plugins:`` in a YAML.
"""
from fusionlab.depth.base import (DEPTH_SOURCES, DepthSource, build_depth_source, list_depth_sources,
                                  register_depth_source)
from fusionlab.depth.precompute import precompute

__all__ = ["DEPTH_SOURCES", "DepthSource", "build_depth_source", "list_depth_sources", "precompute",
           "register_depth_source"]
