"""The ``data:`` section: an eval-only config needs no ``data.train``; training without it is a clear error."""
from __future__ import annotations

import pytest

from fusionlab.config import DataSection, RunConfig, from_dict
from fusionlab.data import build_dataset
from fusionlab.errors import FusionlabError


def test_eval_only_coco_config_leaves_train_unset():
    config = from_dict(RunConfig, {"data": {"dataset": "coco", "val": {"annotations": "v.json", "images": "v/"}}},
                       "eval.yaml")
    assert config.data.train is None and config.data.val == {"annotations": "v.json", "images": "v/"}


def test_training_without_train_options_names_what_the_dataset_needs():
    with pytest.raises(FusionlabError) as info:
        DataSection(dataset="coco").train_options()
    assert str(info.value) == ("data.train: missing; training needs the training split's options, e.g. "
                               "data.train: {annotations: ..., images: ...} for dataset 'coco'")
    with pytest.raises(FusionlabError, match=r"e\.g\. data\.train: \{root: \.\.\.\} for dataset 'sa1b'"):
        DataSection(dataset="sa1b").train_options()


def test_synthetic_trains_on_its_train_split_without_train_options(tmp_path):
    options = DataSection().train_options()
    assert options == {}
    assert build_dataset("synthetic", root=tmp_path, num_images=2, image_size=32, **options).split == "train"


def test_given_train_options_are_used_as_written():
    section = DataSection(dataset="coco", train={"annotations": "t.json", "images": "t/"})
    assert section.train_options() == {"annotations": "t.json", "images": "t/"}
