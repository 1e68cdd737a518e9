"""What Boundary IoU and the instance attributes add to the demo's evaluation time.

    python benchmarks/scoring_cost.py                  # the demo's val set (50 images), 5 rounds
    python benchmarks/scoring_cost.py --images 10 --rounds 1

The demo sweep's RGB-D cell (``ablations/fusion.yaml``, variant ``add``: its untrained fusion
block on the demo's RGB weights; the scores do not change what is timed) is evaluated with the
sweep's protocol (box, 1 and 3 clicks) twice per round, side by side in this process: once as
fusionlab does (with :func:`fusionlab.scoring.score_image`) and once with the scoring replaced by
a stub that returns empty scores, after one untimed warm-up. Times are this process's CPU seconds
(torch on one thread: ``FUSIONLAB_THREADS=1``), which other processes on a shared machine do not
inflate as much as wall time; the medians and the fastest runs over ``--rounds`` are compared, the
order alternating between rounds. A third number times ``score_image`` itself inside the scored
runs. Target: the added cost at most 10 % of the evaluation.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import fusionlab.evaluate as evaluation
from fusionlab.attributes import COLUMNS as ATTRIBUTE_COLUMNS
from fusionlab.evaluate import evaluate
from fusionlab.scoring import score_image
from fusionlab.sweep import load_sweep

DEMO = Path(__file__).resolve().parents[1] / "ablations" / "fusion.yaml"
COLUMNS = ("evaluation", "images", "median CPU (s)", "× without", "fastest CPU (s)", "× without, fastest")


def _unscored(image, gt_masks, predicted, depth) -> Dict[str, List[Dict[str, float]]]:
    """What :func:`score_image` returns, as NaN, without computing it."""
    empty = dict.fromkeys(("biou", *ATTRIBUTE_COLUMNS), math.nan)
    return {prompt: [dict(empty) for _ in gt_masks] for prompt in predicted}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=None, help="evaluate the first images only (default: all 50)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of (scored, unscored) runs")
    args = parser.parse_args(argv)
    config = next(c for c in load_sweep(str(DEMO)).cells() if c.variant.name == "add").run_config()
    config.eval.device = "cpu"
    config.eval.save_predictions = False
    model = config.model.build()
    dataset = evaluation.val_dataset(config)
    depth = evaluation.eval_depth_source(model, config, dataset, progress=False)
    spent = [0.0]

    def timed(*scoring_args):
        start = time.process_time()
        try:
            return score_image(*scoring_args)
        finally:
            spent[0] += time.process_time() - start

    evaluate(model, config, dataset, progress=False, max_images=1, depth_source=depth)  # warm-up, untimed
    spent[0] = 0.0
    times: Dict[str, List[float]] = {"scored": [], "unscored": []}
    for round_ in range(args.rounds):
        for kind in ("scored", "unscored") if round_ % 2 == 0 else ("unscored", "scored"):
            evaluation.score_image = timed if kind == "scored" else _unscored
            start = time.process_time()
            result = evaluate(model, config, dataset, progress=False, max_images=args.images, depth_source=depth)
            times[kind].append(time.process_time() - start)
    evaluation.score_image = score_image
    scored, unscored = (statistics.median(times[k]) for k in ("scored", "unscored"))
    fastest, fastest_unscored = (min(times[k]) for k in ("scored", "unscored"))
    alone = spent[0] / args.rounds
    images = int(result.metrics["n_images"])
    rows = [("without Boundary IoU and attributes", unscored, 1.0, fastest_unscored, 1.0),
            ("with them (as fusionlab evaluates)", scored, scored / unscored, fastest, fastest / fastest_unscored),
            ("score_image alone, inside the scored runs", alone, alone / unscored, alone, alone / fastest_unscored)]
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for name, seconds, ratio, least, least_ratio in rows:
        print(f"| {name} | {images} | {seconds:.2f} | {ratio:.3f} | {least:.2f} | {least_ratio:.3f} |")
    print(f"\nadded cost: {100 * (scored / unscored - 1):+.1f} % of the median, "
          f"{100 * (fastest / fastest_unscored - 1):+.1f} % of the fastest run (scoring alone: {100 * alone / unscored:.1f} %); target at most +10 %")


if __name__ == "__main__":
    main()
