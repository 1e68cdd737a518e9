"""Shared test set-up: offline hub, one torch thread per test process, the shared references, a tiny sweep
(the demo preset on a few 64-px synthetic images, one or two steps per cell) and a throwaway PostgreSQL server."""
import copy
import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Generated data and depth caches of the tests stay inside the checkout, never in ~/.cache.
os.environ.setdefault("FUSIONLAB_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "tests"))

import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

torch.set_num_threads(int(os.environ.get("FUSIONLAB_TEST_THREADS", "1")))

REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "efficientvit_sam"


def _require_reference(folder: Path) -> Path:
    """``folder`` if it exists; else skip the test, except in CI (``CI`` set), where conformance to the
    official model must be shown, so a missing reference fails."""
    if folder.is_dir():
        return folder
    message = f"conformance references not found at {folder} (they live in ../shared beside the checkout)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the conformance tests", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The official EfficientViT-SAM conformance references (``../shared`` beside the checkout), by
    :func:`_require_reference`."""
    return _require_reference(REFERENCE_DIR)


@pytest.fixture
def require_reference():
    """The rule :func:`reference_dir` applies, ``require_reference(folder)``, for a test of the rule."""
    return _require_reference


@pytest.fixture
def depth_sensitive_model():
    """The demo preset with ``add`` fusion, in eval mode, whose alpha is 1.

    A freshly built RGB-D model starts exactly at its RGB model (alpha 0), so its features are the
    same whatever depth it is given: a test that compares them would see nothing of the depth path.
    """
    from fusionlab import build_model

    torch.manual_seed(0)
    model = build_model("efficientvit-sam-demo", fusion="add").eval()
    with torch.no_grad():
        for block in model.fusions.values():
            block.alpha.fill_(1.0)
    return model


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """One thread, and the synthetic scenes generated into a private cache, for a module's tests
    (``pytestmark = pytest.mark.usefixtures("small_world")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUSIONLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------ a tiny sweep
TINY_BASE: Dict[str, Any] = {
    "data": {"train": {"split": "train", "num_images": 4, "image_size": 64},
             "val": {"split": "val", "num_images": 2, "image_size": 64}},
    "train": {"epochs": 1, "batch_size": 2, "max_steps": 1, "masks_per_image": 4, "device": "cpu"},
    "eval": {"prompts": ["box", "click1"], "device": "cpu"},
}


def tiny_sweep(**keys: Any) -> Dict[str, Any]:
    """A sweep mapping on :data:`TINY_BASE`: RGB-only and ``add``, seeds 0 and 1, fast heartbeats (a cell
    silent for 10 s is stale: short for the tests, long enough for a loaded 2-core CI machine)."""
    sweep = {"name": "tiny", "seeds": [0, 1], "heartbeat": {"interval": 1, "grace": 10},
             "latency": {"runs": 2, "warmup": 1}, "base": TINY_BASE,
             "variants": [{"name": "add", "group": "fusion", "model": {"fusion": "add"}}]}
    sweep.update(keys)
    return sweep


def run_sweep(config: Path, *args: str) -> int:
    """``fusionlab sweep CONFIG ARGS...`` as a user runs it; returns the exit code."""
    from fusionlab.cli import main

    return main(["sweep", str(config), *args])


@pytest.fixture
def sweep() -> Callable[..., int]:
    """:func:`run_sweep`: ``sweep(config, "--workers", "2")`` returns the exit code."""
    return run_sweep


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory) -> Path:
    """One synthetic-data cache for every sweep test (generated on first use)."""
    return tmp_path_factory.mktemp("fusionlab_cache")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch, synthetic_cache: Path) -> Path:
    """A working directory with the shared data cache; results go to ``./results``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FUSIONLAB_CACHE", str(synthetic_cache))
    return tmp_path


@pytest.fixture
def tiny_base() -> Dict[str, Any]:
    """A copy of :data:`TINY_BASE` to modify."""
    return copy.deepcopy(TINY_BASE)


@pytest.fixture
def make_sweep(workdir: Path) -> Callable[..., Path]:
    """Write ``sweep.yaml`` in the working directory: :func:`tiny_sweep` with ``keys`` replaced."""
    def write(name: str = "sweep.yaml", **keys: Any) -> Path:
        path = workdir / name
        path.write_text(yaml.safe_dump(tiny_sweep(**keys), sort_keys=False))
        return path

    return write


# ------------------------------------------------------------------------------ a PostgreSQL server
class Unavailable(Exception):
    """No PostgreSQL server can be started here."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[-1:]), None)
    if found is None:
        raise Unavailable(f"no {name}: install Debian's postgresql package")
    return found


def _as_server_user(command: List[str]) -> List[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` account the package made."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise Unavailable("running as root without runuser to switch to the postgres account")
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's ``postgresql``: ``initdb`` / ``pg_ctl``), or
    ``FUSIONLAB_TEST_POSTGRES=postgresql://...`` (a role that may create databases); skipped without either,
    except in CI (``CI`` set), where ``.ci/run`` installs the package and a missing server is a failure."""
    if os.environ.get("FUSIONLAB_TEST_POSTGRES"):
        yield os.environ["FUSIONLAB_TEST_POSTGRES"]
        return
    if importlib.util.find_spec("psycopg") is None:  # the driver SQLAlchemy uses for postgresql://
        _unavailable("psycopg is not installed: pip install 'fusionlab[postgres]'")
    folder = Path(tempfile.mkdtemp(prefix="fusionlab-pg-"))
    data, port = folder / "data", _free_port()
    try:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        _run(_as_server_user([initdb, "-D", str(data), "-U", "fusionlab", "--auth=trust", "-E", "UTF8"]))
        _run(_as_server_user([pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
                              f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}", "start"]))
    except (Unavailable, KeyError, LookupError) as exc:  # KeyError/LookupError: no postgres account
        shutil.rmtree(folder, ignore_errors=True)
        _unavailable(str(exc))
    try:
        yield f"postgresql://fusionlab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database of :func:`postgres_server` for one test; dropped after it."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"fusionlab_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(postgres_server.replace("postgresql+psycopg://", "postgresql://"),
                             autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _run(command: List[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise Unavailable(f"{Path(command[-1]).name if command else ''} failed: {(done.stderr or done.stdout)[-300:]}")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is needed in CI and could not be started: {reason}")
    pytest.skip(f"no PostgreSQL server to test against: {reason}")


# ------------------------------------------------------------------------------ a tiny Depth Anything
def save_tiny_depth_anything(folder: Path, seed: int = 0, metric: bool = False) -> Path:
    """A random-initialised Depth Anything (tiny Dinov2 backbone) and its image processor, saved to ``folder``."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTImageProcessor

    config = DepthAnythingConfig(
        backbone_config={"model_type": "dinov2", "image_size": 28, "patch_size": 14, "hidden_size": 16,
                         "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
                         "out_indices": [1, 2], "reshape_hidden_states": False},
        patch_size=14, reassemble_hidden_size=16, reassemble_factors=[2, 1], neck_hidden_sizes=[8, 16],
        fusion_hidden_size=8, head_hidden_size=4, depth_estimation_type="metric" if metric else "relative")
    torch.manual_seed(seed)
    model = DepthAnythingForDepthEstimation(config).eval()
    # transformers' small init makes the map ~1e-8, mostly cut to 0 by the final ReLU: PyTorch's
    # default init and a positive last bias give a varied map around 1 (std ~0.01)
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            module.reset_parameters()
    with torch.no_grad():
        model.head.conv3.bias.fill_(1.0)
    model.save_pretrained(folder)
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_depth_anything(tmp_path_factory) -> Path:
    """A saved tiny relative (disparity) Depth Anything folder, shared by the session; do not modify it."""
    return save_tiny_depth_anything(tmp_path_factory.mktemp("tiny_depth_anything"))


@pytest.fixture
def save_depth_anything() -> Callable[..., Path]:
    """``save_depth_anything(folder, seed=0, metric=False)``: write a tiny Depth Anything folder."""
    return save_tiny_depth_anything
