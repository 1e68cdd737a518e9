"""Nothing of fusionlab's in a training step makes the device wait for the host: on a GPU the next
step is queued while this one runs. Checked on the CPU with the profiler: a host read of a tensor
(``aten::_local_scalar_dense``: ``.item()``, ``float()``, ``bool()``) or a data-dependent shape
(``aten::nonzero``: boolean-mask indexing) would be a wait on a GPU.

One is left, on purpose: segment_anything's prompt encoder sets point embeddings by boolean-mask
assignment (a nonzero per label kind, forward and backward). Written with ``torch.where`` it
would not wait, but its gradient sums over other rows in another order, and the demo's numbers
move in the last digit; the official code stays.
"""
import pytest
import torch

from fusionlab.config import RunConfig, from_dict
from fusionlab.train import set_up, train_step

pytestmark = pytest.mark.usefixtures("small_world")

# AdamW's step counters live on the CPU unless it runs capturable or fused: its reads of them never
# wait for a GPU. The prompt encoder's point embeddings: see the module's docstring (forward: its
# frame; backward: the indexing's backward nodes).
ALLOWED = ("Optimizer.step#", "prompt_encoder.py", "IndexPutBackward0", "IndexBackward0")


def host_reads(profile) -> list:
    """Each host read or data-dependent shape in ``profile``, as ``(op, the ops and frames above it)``."""
    found = []
    for event in profile.events():
        if event.name not in ("aten::_local_scalar_dense", "aten::nonzero"):
            continue
        chain, parent = [], event.cpu_parent
        while parent is not None:
            chain.append(parent.name)
            parent = parent.cpu_parent
        if not any(marker in name for name in chain for marker in ALLOWED):
            found.append((event.name, chain[:6]))
    return found


@pytest.mark.parametrize("rounds", [0, 1])
def test_a_step_reads_nothing_back_from_the_device(rounds):
    config = from_dict(RunConfig, {
        "model": {"fusion": "add"},
        "data": {"train": {"split": "train", "num_images": 4, "image_size": 64}},
        "train": {"epochs": 1, "batch_size": 2, "max_steps": 1, "masks_per_image": 4, "max_points": 3,
                  "box_prob": 0.5, "interactive_rounds": rounds, "device": "cpu"}}, "test")
    setup = set_up(config, progress=False)
    setup.model.train()
    images, depths, targets = next(iter(setup.loader))
    assert {t.boxes is None for t in targets} == {True, False}  # point and box prompts both decoded
    clicks = torch.Generator().manual_seed(0)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_stack=True) as profile:
        values = train_step(setup.model, setup.optimizer, images, depths, targets, True, config.train,
                            setup.device, clicks)
    assert host_reads(profile) == []
    assert all(isinstance(value, torch.Tensor) and value.dim() == 0 for value in values.values())
