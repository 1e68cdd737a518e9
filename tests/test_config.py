"""The one config check: each class of bad value is refused when a file loads — by ``sweep --dry-run``, by
``train`` before any step (nothing written), by ``build_model`` for the model's own fields — and every
shipped or documented YAML passes it. Cell keys of finished demo cells do not move."""
from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from fusionlab.cli import main
from fusionlab.config import RunConfig, cpu_threads, from_dict, load_run_config, path_slots, resolve_paths, validate
from fusionlab.errors import FusionlabError
from fusionlab.models import build_model
from fusionlab.sweep import load_sweep
from fusionlab.sweep.config import is_sweep_file

ROOT = Path(__file__).resolve().parents[1]
TINY = {"data": {"train": {"split": "train", "num_images": 4, "image_size": 64},
                 "val": {"split": "val", "num_images": 2, "image_size": 64}},
        "train": {"epochs": 1, "batch_size": 2, "max_steps": 1, "masks_per_image": 4, "device": "cpu"},
        "eval": {"prompts": ["box"], "device": "cpu"}}

# (class of error, the patch of a tiny run config that makes it, what the one-line error says after the YAML path)
VALUE_ERRORS = [
    ("prompt", {"eval": {"prompts": ["box", "bx"]}},
     "eval.prompts[1]: 'bx' is not a prompt; expected box or clickN"),
    ("freeze part", {"train": {"freeze": ["bakbone"]}},
     "train.freeze[0]: 'bakbone' is not allowed; expected one of rgb_encoder, depth_encoder, fusion, neck, "
     "prompt_encoder, decoder"),
    ("lr-multiplier part", {"train": {"lr_multipliers": {"fusoin": 20}}},
     "train.lr_multipliers.fusoin: 'fusoin' is not allowed; did you mean 'fusion'?"),
    ("fusion point for the encoder",
     {"model": {"fusion": "add", "fusion_point": "stage2", "depth_encoder": "timm:efficientvit_m0"}},
     "model: depth encoder 'timm:efficientvit_m0' has features at strides [16, 32, 64]; fusion point 'stage2' "
     "needs stride 8"),
    ("fusion point of the model", {"model": {"fusion": "add", "fusion_point": "stage9"}},
     "model: fusion_point 'stage9' is not a point of this model"),
    ("precision", {"train": {"precision": "fp16"}},
     "train.precision: 'fp16' is not allowed; did you mean 'bf16'? expected one of auto, fp32, bf16"),
    ("device", {"train": {"device": "gpu"}}, "train.device: 'gpu' is not a device; expected auto, cpu, mps, cuda"),
    ("eval device", {"eval": {"device": "cuda0"}}, "eval.device: 'cuda0' is not a device"),
    ("path", {"model": {"checkpoint": "weights/missing.safetensors"}},
     "model.checkpoint: {folder}/weights/missing.safetensors does not exist (a relative path is read from the "
     "folder of the YAML file that names it)"),
    ("option value", {"model": {"fusion": "add", "fusion_kwargs": {"alpha": "chanel"}}},
     "model.fusion_kwargs.alpha: 'chanel' is not allowed (option of fusion block 'add'); did you mean 'channel'?"),
]
IDS = [case[0] for case in VALUE_ERRORS]


def merged(base: Dict[str, Any], patch: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) and key in out else value
    return out


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("kind, patch, message", VALUE_ERRORS, ids=IDS)
def test_a_bad_value_is_refused_by_sweep_dry_run_with_its_yaml_path(tmp_path, monkeypatch, capsys, kind, patch,
                                                                     message):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"seeds": [0], "base": merged(TINY, patch),
                                    "variants": [{"name": "add", "model": {"fusion": "add"}}]}))

    assert main(["sweep", str(path), "--dry-run"]) == 2

    assert f"{path}: base.{message.format(folder=tmp_path)}" in one_line_error(capsys)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("kind, patch, message", VALUE_ERRORS, ids=IDS)
def test_a_bad_value_is_refused_by_train_before_anything_is_written(tmp_path, capsys, kind, patch, message):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(merged(TINY, patch)))
    out = tmp_path / "run"

    assert main(["train", str(path), "--out", str(out)]) == 2
    assert f"{path}: {message.format(folder=tmp_path)}" in one_line_error(capsys)
    assert not out.exists()

    # the library's train() runs the same check first, on a config changed in Python after it was built
    from fusionlab.train import train

    config = from_dict(RunConfig, TINY, "test")
    for section, fields in patch.items():
        for name, value in fields.items():
            setattr(getattr(config, section), name, value)
    resolve_paths(config, tmp_path)
    with pytest.raises(FusionlabError, match=re.escape(message.format(folder=tmp_path))):
        train(config, out, progress=False)
    assert not out.exists()


@pytest.mark.parametrize("fields, message", [
    ({"fusion": "add", "fusion_point": "stage2", "depth_encoder": "timm:efficientvit_m0"},
     "depth encoder 'timm:efficientvit_m0' has features at strides [16, 32, 64]; fusion point 'stage2' needs stride 8"),
    ({"fusion": "add", "fusion_point": "stage9"}, "fusion_point 'stage9' is not a point of this model"),
    ({"grid": "big"}, "grid: expected an integer, got a string 'big'"),
    ({"image_size": [128]}, "image_size: expected a list of 2 values, got a list [128]"),
    ({"fusion": "add", "depth_input": "stem3"}, "depth_input: 'stem3' is not allowed; did you mean 'stem1'?"),
])
def test_build_model_refuses_a_bad_field_in_one_line_as_yaml_does(fields, message):
    with pytest.raises(FusionlabError, match=re.escape(message)) as caught:
        build_model("efficientvit-sam-demo", **fields)
    assert "\n" not in str(caught.value)


def _placeholders(config: RunConfig) -> None:
    """Create the files and folders a documented config reads (a name with a suffix: a file)."""
    for _, role, holder, name in path_slots(config):
        value = holder[name] if isinstance(holder, dict) else getattr(holder, name)
        if role.reads and isinstance(value, str):
            path = Path(value)
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            else:
                path.mkdir(parents=True, exist_ok=True)


def check_run_config(data: Dict[str, Any], folder: Path, where: str) -> None:
    """Validate a run config (or a fragment of its sections) as ``fusionlab eval`` loads one, with the
    files it names made first."""
    config = from_dict(RunConfig, data, where)
    resolve_paths(config, folder)
    _placeholders(config)
    validate(config, where, training=False)


def check_sweep_file(data: Dict[str, Any], folder: Path, name: str) -> None:
    """``load_sweep`` of a sweep file (a fragment gets a base, with a checkpoint as a released model's variants
    need, and a variant), with the files it names made first."""
    data = {"base": {"model": {"checkpoint": "weights/base.safetensors"}},
            "variants": [{"name": "add", "model": {"fusion": "add"}}], **data}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for section in [data["base"]] + [v for v in data.get("variants", []) if isinstance(v, dict)]:
        config = from_dict(RunConfig, {k: v for k, v in section.items() if k in RunConfig.__dataclass_fields__},
                           name)
        resolve_paths(config, folder)
        _placeholders(config)
    load_sweep(path)


def yaml_blocks(markdown: Path) -> List[str]:
    return re.findall(r"^```yaml\n(.*?)^```", markdown.read_text(), flags=re.S | re.M)


DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
# CONTRIBUTING.md's walk-through files (a block opening with ``# <path>``) need its plugin package:
# tests/test_contributing.py writes them out and runs the sweep they make.
EXAMPLES = [(doc, i, block) for doc in DOCS for i, block in enumerate(yaml_blocks(doc))
            if not (doc.name == "CONTRIBUTING.md" and re.match(r"# [\w./-]+\.yaml\n", block))]


@pytest.mark.parametrize("doc, index, block", EXAMPLES,
                         ids=[f"{doc.relative_to(ROOT)}[{i}]" for doc, i, _ in EXAMPLES])
def test_every_yaml_example_in_the_docs_passes_the_config_check(tmp_path, monkeypatch, doc, index, block):
    monkeypatch.chdir(tmp_path)
    data = yaml.safe_load(block)
    assert isinstance(data, dict), f"{doc.name} block {index} is not a YAML mapping"
    where = f"{doc.name} block {index}"
    if is_sweep_file(data):
        check_sweep_file(data, tmp_path, "example")
    else:
        check_run_config(data, tmp_path, where)


SHIPPED = sorted((ROOT / "ablations").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_yaml_passes_the_check_and_each_sweep_its_dry_run(tmp_path, monkeypatch, capsys, path):
    monkeypatch.chdir(tmp_path)
    copy_dir = tmp_path / "ablations"
    shutil.copytree(path.parent, copy_dir)
    data = yaml.safe_load(path.read_text())
    if not is_sweep_file(data):
        assert isinstance(load_run_config(copy_dir / path.name), RunConfig)
        return
    # the paper's data and released weights are placeholders a user brings: made empty here
    for section in [data["base"]] + data.get("variants", []):
        config = from_dict(RunConfig, {k: v for k, v in section.items() if k in RunConfig.__dataclass_fields__},
                           path.name)
        resolve_paths(config, copy_dir)
        _placeholders(config)
    assert main(["sweep", str(copy_dir / path.name), "--dry-run"]) == 0
    assert re.search(r"\n0/\d+ cells complete\n$", capsys.readouterr().out)


# The cell keys of the shipped sweeps' cells as fusionlab 0.5.0 made them: a results folder made before is
# reused, not rerun, only while these stay as they are (a change of the config's shape or of the key's recipe
# moves them).
CELL_KEYS = {
    "fusion.yaml": {"rgb_only": "83add977", "add": "f4179658", "concat": "ffb0bc48", "gated": "ff9cf385",
                    "cross_attention": "ef4b218c", "shuffled": "beab2c3d"},
    "depth_encoders.yaml": {"rgb_only": "a95cc182", "same": "7b6909e5", "shared": "842eca8c",
                            "effvit_quarter": "efa3cd6f", "mobilenetv3": "4373b017", "efficientvit_b0": "634d6261",
                            "same_half_depth": "d29dd955", "same_random_init": "2b8205f1"},
    "data_efficiency.yaml": {"rgb_only@num_images=25": "a19adc8a", "add@num_images=25": "ff154bb3",
                             "gated@num_images=25": "d5c4a2d3", "rgb_only@num_images=50": "8fd147bd",
                             "add@num_images=50": "91088418", "gated@num_images=50": "d09bc789",
                             "rgb_only@num_images=100": "97b9d689", "add@num_images=100": "61150319",
                             "gated@num_images=100": "b9dd227c", "rgb_only@num_images=200": "e9bb2345",
                             "add@num_images=200": "3646183c", "gated@num_images=200": "4daed5bc"},
}


@pytest.mark.parametrize("name", sorted(CELL_KEYS))
def test_cell_keys_of_the_shipped_sweeps_are_those_their_finished_results_carry(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    sweep = load_sweep(ROOT / "ablations" / name)
    keys = {cell.variant.name: cell.key.rsplit("/", 1)[1] for cell in sweep.cells()}
    assert keys == CELL_KEYS[name]
    assert len(sweep.cells()) == len(keys) * len(sweep.seeds)


def test_relative_paths_are_read_from_the_folder_of_the_file_that_names_them(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    (folder / "coco" / "images").mkdir(parents=True)
    (folder / "coco" / "val.json").write_text("{}")
    (folder / "dets.json").write_text("[]")
    (folder / "run.yaml").write_text(yaml.safe_dump({
        "data": {"dataset": "coco", "val": {"annotations": "coco/val.json", "images": "coco/images"}},
        "eval": {"detections": "dets.json"}}))
    monkeypatch.chdir(tmp_path)  # not the config's folder

    config = load_run_config(folder / "run.yaml", training=False)

    assert config.data.val == {"annotations": str(folder / "coco" / "val.json"), "images": str(folder / "coco" / "images")}
    assert config.eval.detections == str(folder / "dets.json")
    # a sweep reads its variants' paths the same way
    (folder / "sweep.yaml").write_text(yaml.safe_dump({
        "seeds": [0], "base": {"data": {"dataset": "coco", "train": {"annotations": "coco/val.json",
                                                                      "images": "coco/images"},
                                        "val": {"annotations": "coco/val.json", "images": "coco/images"}}},
        "variants": [{"name": "add", "model": {"fusion": "add"}, "eval": {"detections": "dets.json"}}]}))
    variant = load_sweep(folder / "sweep.yaml").variants[1]
    assert variant.config.eval.detections == str(folder / "dets.json")
    assert variant.config.data.train["images"] == str(folder / "coco" / "images")


def test_a_hub_id_stays_a_hub_id_and_a_local_model_folder_is_read_from_the_config_folder(tmp_path):
    config = from_dict(RunConfig, {"depth": {"source": "depth_anything",
                                             "options": {"model": "depth-anything/Depth-Anything-V2-Small-hf"}}}, "t")
    resolve_paths(config, tmp_path)
    assert config.depth.options["model"] == "depth-anything/Depth-Anything-V2-Small-hf"
    (tmp_path / "my_depth_model").mkdir()
    config.depth.options["model"] = "my_depth_model"
    resolve_paths(config, tmp_path)
    assert config.depth.options["model"] == str(tmp_path / "my_depth_model")


@pytest.mark.parametrize("argv", [["--threads", "-3", "list"], ["--threads", "0", "report", "x"],
                                  ["--threads", "two", "list"]])
def test_a_bad_thread_count_is_refused_by_every_command(capsys, argv):
    assert main(argv) == 2
    assert f"--threads={argv[1]!r}: expected a positive number of threads or 'auto'" in one_line_error(capsys)


def test_cpu_threads_reads_the_environment_when_no_flag_is_given(monkeypatch):
    monkeypatch.setenv("FUSIONLAB_THREADS", "3")
    assert cpu_threads() == (3, "FUSIONLAB_THREADS")
    monkeypatch.setenv("FUSIONLAB_THREADS", "-1")
    with pytest.raises(FusionlabError, match=r"FUSIONLAB_THREADS='-1'"):
        cpu_threads()


def test_sweep_sections_check_their_own_values(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cases = [({"seeds": [0, 0]}, "seeds=[0, 0]: a seed is repeated"),
             ({"latency": {"runs": 0}}, "latency.runs: 0 must be an integer >= 1"),
             ({"heartbeat": {"interval": 5, "grace": 5}}, "heartbeat: expected interval >= 1 s and grace > interval"),
             ({"search": {"params": {"train.lr": {"low": 1e-3, "high": 1e-5}}}},
              "search.params.train.lr: expected low < high"),
             ({"search": {"pruner": "hyperband", "params": {"train.lr": {"low": 1e-5, "high": 1e-3}}}},
              "search.pruner: 'hyperband' is not allowed; expected one of median, none"),
             ({"search": {"params": {"train.max_points": {"low": 0.5, "high": 4}}}},
              "search.params.train.max_points (at 0.5): train.max_points: expected an integer, got a number 0.5")]
    for keys, message in cases:
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump({"seeds": [0], "base": TINY,
                                        "variants": [{"name": "add", "model": {"fusion": "add"}}], **keys}))
        assert main(["sweep", str(path), "--dry-run"]) == 2
        assert message in one_line_error(capsys), keys


def test_the_search_knobs_ends_are_checked_as_a_cell_would_check_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"seeds": [0], "base": TINY, "variants": [{"name": "add", "model": {"fusion": "add"}}],
                                    "search": {"params": {"train.box_prob": {"low": 0.5, "high": 1.5}}}}))
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "search.params.train.box_prob (at 1.5): train.box_prob: 1.5 must be a number in [0, 1]" in \
        one_line_error(capsys)


def test_a_sweep_file_is_told_from_a_run_config_by_the_sweeps_own_keys():
    assert is_sweep_file({"name": "x", "base": {}}) and is_sweep_file({"results_dir": "r"})
    assert not is_sweep_file({"model": {}, "train": {}, "plugins": []})


def test_a_number_written_3e_4_is_a_number_in_a_file_and_in_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train: {lr: 3e-4, weight_decay: 1E-2}\n")
    config = load_run_config(path, ["train.grad_clip=5e0"])
    assert (config.train.lr, config.train.weight_decay, config.train.grad_clip) == (3e-4, 1e-2, 5.0)
    assert yaml.safe_load("lr: 3e-4") == {"lr": "3e-4"}  # PyYAML's own loader is left as it is


def test_a_time_written_4_00_00_is_that_string_in_a_file_and_in_set(tmp_path):
    from fusionlab.config import apply_override, parse_yaml

    data = parse_yaml("slurm: {time: 4:00:00, signal_delay: 90, other: 1:30.5}\n")
    apply_override(data, "slurm.mem_time=0:30")
    assert data == {"slurm": {"time": "4:00:00", "signal_delay": 90, "other": "1:30.5", "mem_time": "0:30"}}
    assert yaml.safe_load("time: 4:00:00") == {"time": 14400}  # YAML 1.1's base 60, in PyYAML's own loader
