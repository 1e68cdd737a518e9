"""Datasets: images, instance masks and (when they have it) depth, behind one registry.

Every dataset is registered by name::

    @register_dataset("coco")
    class CocoDataset(InstanceDataset): ...

and built with ``build_dataset("synthetic", split="val")``. Built-ins: ``coco`` (any COCO or
LVIS instances JSON), ``sa1b`` (the SA-1B folder layout) and ``synthetic`` (the embedded
RGB-D scenes, generated on first use). Third-party datasets come from the entry-point group
``fusionlab.datasets`` or from a module listed under ``plugins:`` in a YAML.
"""
from typing import List

from fusionlab.data.base import InstanceDataset
from fusionlab.data.types import Instance, Sample
from fusionlab.registry import Registry

DATASETS = Registry(
    kind="dataset",
    builtin_modules=["fusionlab.data.coco", "fusionlab.data.sa1b", "fusionlab.data.synthetic"],
    entry_point_group="fusionlab.datasets",
    register_hint=("decorate an InstanceDataset subclass with @fusionlab.data.register_dataset('name') in a "
                   "module listed under 'plugins:' in the YAML, or expose it in the 'fusionlab.datasets' "
                   "entry-point group"),
)


def register_dataset(name: str):
    """Register an :class:`InstanceDataset` subclass (or factory) under ``name``."""
    return DATASETS.register(name)


def list_datasets(pattern: str = "*") -> List[str]:
    """Names of the registered datasets matching a glob, sorted."""
    return DATASETS.names(pattern)


def build_dataset(name: str, **kwargs) -> InstanceDataset:
    """Build the dataset ``name`` with its keyword options (see each class's docstring).

    An unknown or missing option is a one-line error listing the dataset's options.
    """
    return DATASETS.build_checked(name, **kwargs)


__all__ = ["DATASETS", "Instance", "InstanceDataset", "Sample", "build_dataset", "list_datasets",
           "register_dataset"]
