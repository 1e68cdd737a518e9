"""``fusionlab report``: tables, statistics and plots from a sweep's result files.

Reads only ``results/<name>/`` (see :mod:`fusionlab.report.loading` for the file contract),
never a model. ``make_report`` prints nothing; the CLI prints what it returns.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

from fusionlab.report import curve, plots, qualitative, tables, where
from fusionlab.report._write import save_figure, write_text
from fusionlab.report.loading import SweepResults, load_results, require_a_complete_trial
from fusionlab.errors import FusionlabError
from fusionlab.report.stats import CI_KINDS, bootstrap_mean_ci, paired_diffs, summarize

__all__ = ["Report", "make_report", "load_results", "summarize", "bootstrap_mean_ci",
           "paired_diffs", "SweepResults"]

log = logging.getLogger("fusionlab.report")


@dataclass(frozen=True)
class Report:
    """What ``make_report`` wrote.

    Attributes:
        paths: file name (``"table.tex"``, ``"report.md"``, ``"report.csv"``, ``"miou.pdf"``,
            ``"miou.png"``, ``"frontier.pdf"``, ``"frontier.png"``, and ``"qualitative.pdf"``,
            ``"qualitative.png"`` when the trials kept their predictions, ``"curve.pdf"``,
            ``"curve.png"`` when the sweep has a numeric axis, ``"where.pdf"``, ``"where.png"`` when
            the trials recorded Boundary IoU and the instances' attributes) -> written path.
        markdown: the text of ``report.md``.
    """

    paths: Dict[str, Path]
    markdown: str


def make_report(results_dir: Path | str, out_dir: Optional[Path | str] = None,
                n_boot: int = 2000, seed: int = 0, holm: bool = True, qualitative_variant: Optional[str] = None,
                qualitative_prompt: str = "box",
                qualitative_rows: Sequence[int] = qualitative.DEFAULT_ROWS, ci: str = "instances",
                where_variants: Sequence[str] = ()) -> Report:
    """Write the LaTeX table, Markdown page, tidy CSV and figures of one sweep.

    The table has one row per variant; below it, a note per light depth encoder gives the
    share of the ``same`` encoder's gain it keeps and at what cost. ``miou`` shows the mIoU of
    each variant; ``frontier`` shows Δ box mIoU against latency and GMACs with the Pareto
    frontier of each (see :func:`fusionlab.report.plots.frontier_figure`). ``qualitative`` shows,
    from the trials' saved predictions, the instances where a variant gains and loses most
    against RGB only (see :mod:`fusionlab.report.qualitative`); results without predictions
    get no such figure and a logged line saying why. A sweep with a numeric axis (e.g.
    ``data.train.num_images``) gets ``curve``: box mIoU and its gain over RGB only against the
    axis (see :mod:`fusionlab.report.curve`), and its table one block per axis value.

    Args:
        results_dir: ``results/<name>/`` with ``sweep.json``, ``trials.csv`` and ``trials/``.
        out_dir: where to write; default ``results_dir/report``.
        n_boot: bootstrap resamples for the Δ confidence intervals.
        seed: seed of the bootstrap resampling and of the qualitative figure's random rows.
        holm: mark a Δ where its p-value, Holm-adjusted over the variants compared with the
            baseline, is below 0.05 (the default); False: where its 95 % CI excludes 0. The
            captions say which.
        qualitative_variant: the variant of the qualitative figure; default the fusion-group
            variant with the largest Δ box mIoU (:func:`fusionlab.report.qualitative.default_variant`).
        qualitative_prompt: the prompt kind it shows (``box``, ``click1`` ...).
        qualitative_rows: its ``(gains, losses, random)`` row counts.
        ci: ``"instances"`` (the default: instances resampled, seeds averaged) or
            ``"seeds+instances"`` (two levels, retraining noise included; see
            :mod:`fusionlab.report.stats`); the captions say which.
        where_variants: the rows of ``where`` (default: the best fusion variant and the controls).

    Raises:
        FusionlabError: the folder or one of its files is missing or malformed, or no cell has
            completed yet (then nothing is written).
    """
    results = load_results(results_dir)
    require_a_complete_trial(results)
    qualitative.check_options(results, qualitative_variant, qualitative_prompt, qualitative_rows)
    where.check_variants(results, where_variants)
    if ci not in CI_KINDS:
        raise FusionlabError(f"ci={ci!r}: expected one of {list(CI_KINDS)}")
    out = Path(out_dir) if out_dir is not None else results.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(results, n_boot=n_boot, seed=seed, holm=holm, ci=ci)
    markdown = tables.to_markdown(summary, results, n_boot, holm=holm, ci=ci)
    latex = tables.to_latex(summary, results, n_boot, holm=holm, ci=ci)
    figures = {}
    if where.has_attributes(results):
        table = where.where_table(results, where.variant_names(results, where_variants, summary), n_boot, seed, ci)
        text = where.caption(table, ci, n_boot, results.sweep.variant(results.sweep.baseline).label)
        markdown += "\n" + where.to_markdown(table, text) + "\n"
        latex += "\n" + where.to_latex(table, text, tables.slug(results.sweep.name))
        figures["where"] = where.where_figure(table, results)
    paths = {
        "table.tex": write_text(out / "table.tex", latex),
        "report.md": write_text(out / "report.md", markdown),
        "report.csv": write_text(out / "report.csv", tables.to_csv(summary, results)),
    }
    figures.update(miou=plots.miou_figure(results), frontier=plots.frontier_figure(summary, results))
    if results.sweep.axis_key:
        figures["curve"] = curve.curve_figure(summary, results)
    try:
        figures["qualitative"] = qualitative.qualitative_figure(
            results, summary, qualitative_variant, qualitative_prompt, qualitative_rows, seed)
    except qualitative.FigureSkipped as skipped:
        log.warning("no qualitative figure: %s", skipped)
    for stem, figure in figures.items():
        for suffix in ("pdf", "png"):
            paths[f"{stem}.{suffix}"] = save_figure(figure, out / f"{stem}.{suffix}")
    return Report(paths=paths, markdown=markdown)
