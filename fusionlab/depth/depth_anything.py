"""``depth_anything``: Depth Anything (v1 or v2) predictions through ``transformers``, cached on disk."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from fusionlab.data.base import image_sample
from fusionlab.data.types import Sample
from fusionlab.depth.base import DepthSource, register_depth_source
from fusionlab.depth.normalize import Normalization, RawKind
from fusionlab.typecheck import HubIdOrPath, OutputPath
from fusionlab.depth.cache import DEFAULT_LONG_SIDE, DepthCache, default_cache_dir
from fusionlab.errors import FusionlabError

DEFAULT_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
DEVICES = ("auto", "cpu", "cuda")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
READ_AHEAD = 4  # batches of images decoded and preprocessed while the model predicts
WRITE_BEHIND = 2  # batches of maps (float32 at image size) written while the model predicts the next ones

log = logging.getLogger("fusionlab.depth")


@register_depth_source("depth_anything")
class DepthAnythingDepth(DepthSource):
    """Depth Anything's map of each image, predicted once and cached (see :mod:`fusionlab.depth.cache`).

    The image goes through the model's image processor, the model predicts at the processed
    size, and the prediction is resized (bilinear) back to the image's size. The raw
    prediction is cached before normalisation, so changing ``output`` or ``normalize`` never
    recomputes; the cache key holds everything else that changes the map: the model (hub id
    and snapshot commit, or local folder with its config's hash and its weight files' sizes
    and modification times), the image processor's settings (with ``input_size``), and the
    raw kind, and the cache's storage format and resolution (``cache_long_side``). ``device``
    and ``batch_size`` are not in it: batches group images of equal processed size, so they
    change the map only by float rounding. Neither is the ``transformers`` version: delete the
    cache folder after an upgrade that changes models.

    Args:
        model: a hub id (found in the local Hugging Face cache when the hub is offline) or a
            folder written by ``save_pretrained`` (config, weights and image processor).
        input_size: side of the processor's target size (it keeps the aspect ratio and rounds
            to the patch size); None keeps the processor's own setting (518 for released models).
        raw: what the model predicts, ``"disparity"`` (relative models) or ``"depth"``;
            None reads it from the config (``depth_estimation_type == "metric"`` -> depth).
        output: ``"disparity"`` (near is bright, as the paper) or ``"depth"``.
        normalize: ``"minmax"``, ``"median_mad"`` or ``"none"``.
        device: ``"auto"`` (the run's device; alone, as in ``fusionlab depth``, CUDA when
            available), ``"cpu"`` or ``"cuda"`` (the run's GPU when it runs on one).
        batch_size: images per forward pass in :meth:`prepare`.
        cache_dir: cache root; default ``$FUSIONLAB_CACHE/depth`` or ``~/.cache/fusionlab/depth``.
        cache_long_side: long side of the cached maps at most (1024: the released models' prompt
            frame; smaller images are stored at their size); null stores every map at its image's
            size. Maps are read back at the image's size (see :mod:`fusionlab.depth.cache`).
    """

    def __init__(self, model: HubIdOrPath = DEFAULT_MODEL, input_size: Optional[int] = None,
                 raw: Optional[RawKind] = None, output: RawKind = "disparity", normalize: Normalization = "minmax",
                 device: str = "auto", batch_size: int = 4, cache_dir: Optional[OutputPath] = None,
                 cache_long_side: Optional[int] = DEFAULT_LONG_SIDE):
        self.model_ref, self.model_fingerprint, config_file = resolve_model(str(model))
        if raw is None:
            metric = json.loads(config_file.read_text()).get("depth_estimation_type") == "metric"
            raw = "depth" if metric else "disparity"
        super().__init__(raw=raw, output=output, normalize=normalize)
        self.device = self.check_choice("device", device, DEVICES)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise FusionlabError("depth source 'depth_anything': option device='cuda' but CUDA is not available; "
                                 "use device='auto' or 'cpu'")
        self.batch_size = self.check_integer("batch_size", batch_size, 1)
        self.input_size = None if input_size is None else self.check_integer("input_size", input_size, 1)
        self.cache_long_side = (None if cache_long_side is None
                                else self.check_integer("cache_long_side", cache_long_side, 1))
        self.processor = self.load_processor()
        self.processor_settings = {k: v for k, v in self.processor.to_dict().items() if not k.startswith("_")}
        self.cache = DepthCache(Path(cache_dir) if cache_dir else default_cache_dir(), "depth_anything",
                                self.cache_recipe(), long_side=self.cache_long_side)
        self.model: Optional[torch.nn.Module] = None
        self.run_device: Optional[torch.device] = None
        self.noted_inline = False
        self.overlap: Optional[bool] = None  # the fill's stages in threads: None = on a GPU only

    def load_processor(self) -> Any:
        from transformers import AutoImageProcessor

        overrides = {} if self.input_size is None else {"size": {"height": self.input_size,
                                                                 "width": self.input_size}}
        try:
            return AutoImageProcessor.from_pretrained(self.model_ref, **overrides)
        except (OSError, ValueError) as exc:
            raise FusionlabError(f"depth source 'depth_anything': cannot load the image processor of "
                                 f"{self.model_ref!r}: {first_line(exc)}") from exc

    def cache_recipe(self) -> Dict[str, Any]:
        """Everything that changes the raw map (see the class doc); hashed into the cache key."""
        return {"source": "depth_anything", "model": self.model_ref, "model_fingerprint": self.model_fingerprint,
                "processor": self.processor_settings, "raw": self.raw, "resize": "bilinear to the image size"}

    def options(self) -> Dict[str, Any]:
        return {"model": self.model_ref, "model_fingerprint": self.model_fingerprint,
                "input_size": self.input_size, "processor": self.processor_settings, "raw": self.raw,
                "output": self.output, "normalize": self.normalize, "cache_long_side": self.cache_long_side,
                "cache_key": self.cache.key}

    def describe(self) -> str:
        size = self.processor_settings.get("size")
        side = size.get("height", size.get("shortest_edge")) if isinstance(size, dict) else size
        return f"Depth Anything {Path(self.model_ref).name} (input {side}, {self.output}, {self.normalize})"

    def run_on(self, device: torch.device) -> None:
        self.run_device = torch.device(device)

    def prepare(self, dataset: Any, progress: bool = True) -> Dict[str, int]:
        """Get ready for a run on ``dataset``: predict and cache every image not cached yet (logging
        once that ``fusionlab depth`` does that ahead); counts computed and cached maps. The model
        is let go afterwards: the run reads the cache, and its GPU memory is the run's."""
        try:
            return self.predict_missing(dataset, progress, during_run=True)
        finally:
            self.release()

    def fill(self, dataset: Any, progress: bool = True) -> Dict[str, int]:
        """Fill the cache ahead of runs; the model stays loaded for the next split (``fusionlab depth``)."""
        return self.predict_missing(dataset, progress, during_run=False)

    def release(self) -> None:
        """Let the model go (loaded again if a map is ever missing), and its GPU memory with it."""
        on_gpu = self.model is not None and next(self.model.parameters()).is_cuda
        self.model = None
        if on_gpu:
            torch.cuda.empty_cache()

    def predict_missing(self, dataset: Any, progress: bool, during_run: bool) -> Dict[str, int]:
        """Predict and cache, ``batch_size`` at a time, the maps of ``dataset`` not cached yet.

        Only the image is decoded, not its masks. On a GPU three stages overlap: threads decode
        and preprocess the next :data:`READ_AHEAD` batches of images, this thread runs the model,
        and a writer thread encodes and writes the maps of up to :data:`WRITE_BEHIND` earlier
        batches. On the CPU the stages take turns: there the model's own threads use every core,
        and threads beside them made the whole slower (0.75 of the forward's images/s against 0.95,
        ``benchmarks/throughput.py --tiny``). An interrupted call loses at most the batches in
        flight: every map is written whole (see :mod:`fusionlab.depth.cache`), so the next call
        skips those already written.
        """
        computed = cached = 0
        start = time.perf_counter()
        overlap = self.target_device().type == "cuda" if self.overlap is None else self.overlap
        readers = ThreadPoolExecutor(read_threads(), thread_name_prefix="depth-read") if overlap else InPlace()
        writer = ThreadPoolExecutor(1, thread_name_prefix="depth-write") if overlap else InPlace()
        writes: Deque[Future] = deque()
        batch: List[Prepared] = []

        def predict_batch() -> None:
            nonlocal computed
            maps = self.forward([item.pixels for item in batch], [item.size for item in batch])
            writes.extend(writer.submit(self.cache.save, item.path, raw) for item, raw in zip(batch, maps))
            computed += len(batch)
            bar.update(len(batch))
            batch.clear()
            while len(writes) > WRITE_BEHIND * self.batch_size:
                writes.popleft().result()

        try:
            with tqdm(total=len(dataset), desc=self.cache.folder.name, unit="img", disable=not progress) as bar:
                for item in read_ahead(readers, lambda index: self.read_for_cache(dataset, index), len(dataset),
                                       READ_AHEAD * self.batch_size):
                    if item.pixels is None:
                        cached += 1
                        bar.update(1)
                        continue
                    if during_run:
                        self.note_inline()
                    batch.append(item)
                    if len(batch) == self.batch_size:
                        predict_batch()
                        rate = computed / (time.perf_counter() - start)
                        bar.set_postfix_str(f"{computed} computed at {rate:.2f} images/s, {cached} cached",
                                            refresh=False)
                if batch:
                    predict_batch()
                while writes:
                    writes.popleft().result()
        finally:
            readers.shutdown(cancel_futures=True)
            writer.shutdown(wait=True)  # maps already predicted are written, also after an interruption
        return {"images": len(dataset), "computed": computed, "cached": cached}

    def read_for_cache(self, dataset: Any, index: int) -> "Prepared":
        """Image ``index``'s cache path, and its model input unless its map is cached already."""
        sample = image_sample(dataset, index)
        path = self.cache.path(sample)
        pixels = None if path.is_file() else self.preprocess(sample.image)
        return Prepared(path=path, pixels=pixels, size=sample.image.shape[:2])

    def note_inline(self) -> None:
        """Log, once per source, that maps missing from the cache are predicted during the run."""
        if not self.noted_inline:
            self.noted_inline = True
            log.info("depth_anything: maps missing from the cache %s are predicted now, during the run; "
                     "`fusionlab depth CONFIG` fills the cache first (on n GPUs or machines at once with "
                     "--shard i/n)", self.cache.folder)

    def raw_map(self, sample: Sample, index: int) -> Tuple[np.ndarray, str]:
        path = self.cache.path(sample)
        raw = self.cache.load(path, sample.image.shape[:2])
        if raw is None:
            if torch.utils.data.get_worker_info() is not None:
                raise FusionlabError(
                    f"depth source 'depth_anything': the map of image {sample.file_name!r} is not in the cache "
                    f"{self.cache.folder} and a DataLoader worker does not predict depth (a GPU model cannot "
                    f"follow it there); run `fusionlab depth CONFIG` first, or train with num_workers: 0")
            self.note_inline()
            raw = self.cache.save(path, self.predict([sample.image])[0])
        return raw, f"Depth Anything map of image {sample.file_name!r} ({path})"

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """The processor's ``(1, 3, h, w)`` model input of an ``(H, W, 3)`` uint8 image."""
        # the processor wraps arrays with torch.from_numpy, which warns on read-only (dataset-cached) images
        return self.processor(images=image if image.flags.writeable else image.copy(),
                              return_tensors="pt")["pixel_values"]

    def predict(self, images: List[np.ndarray]) -> List[np.ndarray]:
        """Raw float32 ``(H, W)`` predictions for ``(H, W, 3)`` uint8 images, each at its image's size."""
        return self.forward([self.preprocess(image) for image in images], [image.shape[:2] for image in images])

    def forward(self, pixels: List[torch.Tensor], sizes: List[Tuple[int, int]]) -> List[np.ndarray]:
        """Raw float32 predictions of preprocessed inputs, each resized to its ``(H, W)`` in ``sizes``."""
        model = self.load_model()
        device = next(model.parameters()).device
        predictions: List[Optional[np.ndarray]] = [None] * len(pixels)
        # images of another aspect ratio get another processed size: batch only equal shapes
        shapes: Dict[Tuple[int, ...], List[int]] = {}
        for i, tensor in enumerate(pixels):
            shapes.setdefault(tuple(tensor.shape), []).append(i)
        with torch.inference_mode():
            for members in shapes.values():
                batch = torch.cat([pixels[i] for i in members]).to(device, non_blocking=True)
                predicted = model(pixel_values=batch).predicted_depth.float()
                for row, i in enumerate(members):
                    resized = F.interpolate(predicted[row][None, None], size=tuple(sizes[i]), mode="bilinear",
                                            align_corners=False)
                    predictions[i] = resized[0, 0].cpu().numpy()
        return predictions

    def load_model(self) -> torch.nn.Module:
        if self.model is None:
            from transformers import AutoModelForDepthEstimation

            try:
                model = AutoModelForDepthEstimation.from_pretrained(self.model_ref)
            except (OSError, ValueError) as exc:
                raise FusionlabError(f"depth source 'depth_anything': cannot load model {self.model_ref!r}: "
                                     f"{first_line(exc)}") from exc
            self.model = model.to(self.target_device()).eval()
        return self.model

    def target_device(self) -> torch.device:
        """Where the model runs: the run's GPU (set by :meth:`run_on`) unless ``device`` says cpu; with
        ``auto``, the run's device whatever it is; alone, CUDA's current device when there is one."""
        run = self.run_device
        if self.device == "cpu" or (self.device == "auto" and run is not None and run.type != "cuda"):
            return torch.device("cpu")
        if run is not None and run.type == "cuda":
            return run
        if self.device == "cuda" or torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def resolve_model(model: str) -> Tuple[str, str, Path]:
    """``(reference for from_pretrained, fingerprint, config.json path)`` of a hub id or local folder."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise FusionlabError(f"depth source 'depth_anything': model folder {str(folder)!r} has no config.json; "
                                 f"expected a folder written by save_pretrained")
        weights = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        stats = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in weights]
        return str(folder.resolve()), f"config {file_sha256(config_file)[:16]}; weights {', '.join(stats)}", config_file
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise FusionlabError(f"depth source 'depth_anything': model folder {model!r} does not exist")
    config_file = hub_config(model)
    commit = config_file.parent.name
    return model, f"commit {commit}; config {file_sha256(config_file)[:16]}", config_file


def hub_config(repo_id: str) -> Path:
    """The cached ``config.json`` of a hub model, downloaded first when the hub is reachable."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json")
    if isinstance(cached, str):
        return Path(cached)
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    if offline:
        raise FusionlabError(f"depth source 'depth_anything': model {repo_id!r} not found locally and the hub is "
                             f"offline (HF_HUB_OFFLINE); pass a local folder (written by save_pretrained) as model")
    try:
        return Path(hf_hub_download(repo_id, "config.json"))
    except Exception as exc:  # any hub failure (network, unknown repo, auth) is the user's to fix
        raise FusionlabError(f"depth source 'depth_anything': model {repo_id!r} is not in the local cache and "
                             f"could not be fetched from the hub: {first_line(exc)}") from exc


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class Prepared:
    """An image on its way to the cache: where its map goes, its model input (None: cached), its ``(H, W)``."""

    path: Path
    pixels: Optional[torch.Tensor]
    size: Tuple[int, int]


class InPlace:
    """An executor that runs each task when it is submitted, in the caller's thread (the stages in turn)."""

    def submit(self, task: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(task(*args))
        except Exception as exc:  # delivered by result(), as a pool's would be; Ctrl-C stops at once
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Nothing runs in the background."""


def read_threads() -> int:
    """Threads that decode and preprocess images while the model runs: half the cores, 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def read_ahead(pool: ThreadPoolExecutor, read: Callable[[int], Any], count: int, window: int) -> Iterator[Any]:
    """``read(0), read(1), ... read(count - 1)`` in order, at most ``window`` of them running ahead in ``pool``."""
    pending: Deque[Future] = deque()
    following = 0
    while pending or following < count:
        while following < count and len(pending) < window:
            pending.append(pool.submit(read, following))
            following += 1
        yield pending.popleft().result()
