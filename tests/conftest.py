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
