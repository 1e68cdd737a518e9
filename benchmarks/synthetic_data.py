"""Throughput of the embedded dataset: rendering + writing, and reading samples back.

Run: ``python benchmarks/synthetic_data.py [--images 200] [--sizes 64 128 256]``. Prints a
Markdown table; each row generates a fresh set in a temporary cache.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fusionlab.data.synthetic import SyntheticDataset


def measure(image_size: int, num_images: int, cache: Path) -> tuple:
    """(generate images/s, read samples/s, instances per image) for one image size."""
    start = time.perf_counter()
    ds = SyntheticDataset(num_images=num_images, image_size=image_size, root=cache)
    generated = time.perf_counter() - start
    start = time.perf_counter()
    instances = sum(len(sample.instances) for sample in ds)
    read = time.perf_counter() - start
    return num_images / generated, num_images / read, instances / num_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    args = parser.parse_args()
    print("| image size | images | generate (img/s) | read (img/s) | instances/img |")
    print("|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as cache:
            gen, read, per_image = measure(size, args.images, Path(cache))
        print(f"| {size} | {args.images} | {gen:.0f} | {read:.0f} | {per_image:.1f} |")


if __name__ == "__main__":
    main()
