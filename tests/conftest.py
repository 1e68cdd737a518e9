"""Shared test set-up: offline hub, one torch thread per test process, the shared references."""
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Generated data and depth caches of the tests stay inside the checkout, never in ~/.cache.
os.environ.setdefault("FUSIONLAB_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "tests"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("FUSIONLAB_TEST_THREADS", "1")))

REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "efficientvit_sam"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The official EfficientViT-SAM conformance references (``../shared`` beside the checkout)."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"conformance references not found at {REFERENCE_DIR} (they live in ../shared beside the checkout)")
    return REFERENCE_DIR


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
