"""The configuration docs are generated from the code, and docs/configuration.md is that output."""
from __future__ import annotations

from pathlib import Path

from fusionlab.cli import main
from fusionlab.config_docs import REGENERATE, configuration_docs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_docs_configuration_md_is_in_sync_with_the_code():
    assert DOCS.read_text() == configuration_docs(), f"docs/configuration.md is stale: run `{REGENERATE}`"


def test_the_docs_list_every_dataset_and_depth_option_with_defaults_and_an_example():
    text = configuration_docs()
    for heading in ("### `coco`", "### `sa1b`", "### `synthetic`", "### `depth_anything`", "### `file`",
                    "### `shuffled`", "### `add`", "### `efficientvit-sam-l2`", "### `train:`", "### `heartbeat:`"):
        assert heading in text
    coco = text[text.index("### `coco`"):text.index("### `sa1b`")]
    assert "| `annotations` | a path | (required) |" in coco and "| `min_area` | a number | `1.0` |" in coco
    assert "| `filter` | one of official, clean | `official` |" in coco
    assert "Example: `data: {dataset: coco, val: {annotations: <annotations>, images: <images>}}`" in coco
    assert "| `grid` | an integer or null | the preset's (demo: `16`) |" in text
    assert "| `precision` | one of auto, fp32, bf16 | `auto` |" in text
    assert ("| `freeze` | a list of values, each one of rgb_encoder, depth_encoder, fusion, neck, prompt_encoder, "
            "decoder | `[]` |") in text


def test_list_options_prints_one_entry_and_refuses_an_unknown_kind(capsys):
    assert main(["list", "--options", "depth", "file"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### `file`") and "| `folder` | a path | (required) |" in out
    assert main(["list", "--options", "blocks", "add"]) == 2
    assert "--options 'blocks': expected one of models, fusions, depth_encoders, depth, datasets" in capsys.readouterr().err


def test_list_config_docs_prints_them_and_the_old_flag_still_does_with_a_note(capsys):
    assert main(["list", "--config-docs"]) == 0
    printed = capsys.readouterr()
    assert printed.out == configuration_docs() and printed.err == ""
    assert main(["list", "--reference"]) == 0
    printed = capsys.readouterr()
    assert printed.out == configuration_docs()
    assert printed.err == "fusionlab list: --reference is deprecated; use --config-docs\n"
