"""Training items: the predictor's input frame, and draws that depend on the image, not on who loads it."""
import numpy as np
import torch

from fusionlab import Predictor
from fusionlab.config import TrainSection
from fusionlab.data import build_dataset
from fusionlab.data.training import InputFrame, PromptedImages


def test_training_loader_and_predictor_make_the_same_inputs(depth_sensitive_model):
    model = depth_sensitive_model
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (90, 130, 3), dtype=np.uint8)
    depth = rng.random((90, 130)).astype(np.float32)
    frame = InputFrame(model.image_size)
    predictor = Predictor(model)
    predictor.set_image(image, depth)
    with torch.no_grad():
        loader_features = model.encode(frame.preprocess(image)[None], frame.preprocess_depth(depth, (90, 130))[None])
        flipped_depth = model.encode(frame.preprocess(image)[None],
                                     frame.preprocess_depth(depth[:, ::-1], (90, 130))[None])
    assert torch.equal(predictor.features, loader_features)
    assert not torch.allclose(predictor.features, flipped_depth)  # the features show the depth input
    coords = np.array([[13.0, 7.5], [129.0, 89.0]])
    np.testing.assert_allclose(predictor.apply_coords(coords), coords * frame.prompt_scale(90, 130), rtol=1e-6)


def test_an_images_draws_do_not_depend_on_the_process_that_loads_it(tmp_path):
    dataset = build_dataset("synthetic", split="train", num_images=6, image_size=64, root=tmp_path)
    items = PromptedImages(dataset, InputFrame((64, 64)), TrainSection(masks_per_image=4, max_points=3), None)
    items.set_epoch(1)
    forwards = [items[i][2] for i in range(len(items))]
    backwards = [items[i][2] for i in reversed(range(len(items)))][::-1]

    for a, b in zip(forwards, backwards):
        assert torch.equal(a.masks, b.masks)
        assert (a.boxes is None) == (b.boxes is None) and (a.points is None) == (b.points is None)
        assert torch.equal(a.boxes if a.boxes is not None else a.points, b.boxes if b.boxes is not None else b.points)
