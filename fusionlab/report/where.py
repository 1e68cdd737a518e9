"""Where depth helps: Δ IoU and Δ BIoU of a variant against RGB only, by how visible the objects'
outlines are in RGB and in depth.

The instances are cut into quantile bins (terciles) of each attribute of ``instances.csv``
(``rgb_edge``, ``depth_edge``: :mod:`fusionlab.attributes`); in each bin the paired Δ (per
instance and matched seed, as :func:`fusionlab.report.stats.summarize` pairs them) gets its own
bootstrap CI, of the report's kind. An instance's attributes are read from the trials of the
variants that are not controls (they describe the real depth map, the same for every variant),
so a control is binned exactly like the others. A control's Δ should be flat, within its CI of
0 in every bin: :func:`flatness_note` says where it is not.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fusionlab.errors import FusionlabError
from fusionlab.report.loading import SweepResults
from fusionlab.report.tables import latex_escape, markdown_table
from fusionlab.report.stats import INSTANCE_KEY, box_runs, paired_bootstrap, paired_table, two_level_bootstrap

BINS = 3
BIN_NAMES = ("low", "mid", "high")
# attribute -> its axis name; score column of instances.csv -> its name
EDGES = {"rgb_edge": "RGB edge strength", "depth_edge": "depth edge strength"}
SCORES = {"iou": "Δ IoU", "biou": "Δ BIoU"}
COLUMNS = ["variant", "label", "group", "attribute", "bin", "low", "high", "score", "delta", "ci_low", "ci_high",
           "n"]


def has_attributes(results: SweepResults) -> bool:
    """Whether the complete trials recorded the edge attributes and Boundary IoU (else: no figure)."""
    return not instance_attributes(results).empty and "box_biou" in results.metric_columns()


def instance_attributes(results: SweepResults) -> pd.DataFrame:
    """``rgb_edge, depth_edge`` per instance, indexed by ``(image_id, ann_id)``: the first value any
    complete trial of a variant that is not a control recorded; empty without the columns."""
    frames = []
    for cell in results.complete().itertuples():
        if results.sweep.variant(cell.variant).group == "control":
            continue
        rows = results.instances(cell.trial_id)
        if all(c in rows.columns for c in EDGES):
            frames.append(rows.loc[rows["prompt"] == "box", [*INSTANCE_KEY, *EDGES]])
    if not frames:
        return pd.DataFrame(columns=list(EDGES))
    return pd.concat(frames).groupby(INSTANCE_KEY).first()


def default_variants(summary: pd.DataFrame, results: SweepResults) -> List[str]:
    """The fusion variant with the largest Δ box mIoU, then the controls."""
    from fusionlab.report.qualitative import FigureSkipped, default_variant

    try:
        best = [default_variant(summary)]
    except FigureSkipped:
        best = []
    return best + [v.name for v in results.sweep.ordered_variants() if v.group == "control"]


def where_table(results: SweepResults, variants: Sequence[str], n_boot: int = 2000, seed: int = 0,
                ci: str = "instances") -> pd.DataFrame:
    """One row per (variant, attribute, bin, score) with :data:`COLUMNS`: ``low``/``high`` the bin's
    attribute range, ``delta``/``ci_low``/``ci_high`` in points (× 100), ``n`` its instances."""
    attributes = instance_attributes(results)
    runs = box_runs(results)
    rows: List[dict] = []
    for name in variants:
        variant, baseline = results.sweep.variant(name), results.sweep.baseline_of(name)
        for score in SCORES:
            table = paired_table(runs.get(name, {}), runs.get(baseline, {}), score) * 100.0
            if table.empty:
                continue
            for attribute in EDGES:
                values = attributes[attribute].reindex(table.index)
                bins = pd.qcut(values, BINS, labels=False, duplicates="drop")
                for b in sorted(bins.dropna().unique()):
                    inside = (bins == b).to_numpy()
                    stats = _bootstrap(table.to_numpy()[inside], n_boot, seed, ci)
                    chosen = values.to_numpy()[inside]
                    rows.append({"variant": name, "label": variant.label, "group": variant.group,
                                 "attribute": attribute, "bin": int(b), "low": chosen.min(), "high": chosen.max(),
                                 "score": score, **stats, "n": int(inside.sum())})
    return pd.DataFrame(rows, columns=COLUMNS)


def _bootstrap(diffs: np.ndarray, n_boot: int, seed: int, ci: str) -> Dict[str, float]:
    """``(n_instances, n_seeds)`` differences -> delta and CI of the report's kind."""
    if ci == "seeds+instances":
        delta, low, high, _ = two_level_bootstrap(diffs.T, n_boot=n_boot, seed=seed)
    else:
        delta, low, high, _ = paired_bootstrap(diffs.mean(axis=1), n_boot=n_boot, seed=seed)
    return {"delta": delta, "ci_low": low, "ci_high": high}


def flatness_note(table: pd.DataFrame) -> str:
    """Whether every control's Δ is within its CI of 0 in every depth-edge bin, and where not."""
    controls = table[(table["group"] == "control") & (table["attribute"] == "depth_edge")]
    if controls.empty:
        return ""
    off = controls[(controls["ci_low"] > 0) | (controls["ci_high"] < 0)]
    if off.empty:
        return "Controls: Δ within its 95 % CI of 0 in every depth-edge bin (flat, as it should be)."
    where = "; ".join(f"{r.label} {SCORES[r.score]} in the {BIN_NAMES[r.bin]} depth-edge bin "
                      f"({_signed(r.delta)} [{_signed(r.ci_low)}, {_signed(r.ci_high)}])" for r in off.itertuples())
    return f"Controls NOT flat: the CI excludes 0 for {where}."


def _signed(value: float) -> str:
    """``+1.23`` / ``−1.23`` (a typographic minus, as the tables print it)."""
    return f"{value:+.2f}".replace("-", "−")


def where_figure(table: pd.DataFrame, results: SweepResults) -> Figure:
    """One row per variant, one column per attribute: Δ IoU and Δ BIoU (× 100) per tercile, 95 % CI bars."""
    variants = list(dict.fromkeys(table["variant"]))
    figure = Figure(figsize=(7.0, 2.2 * max(1, len(variants))), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(max(1, len(variants)), len(EDGES), squeeze=False, sharey=True)
    for row, name in enumerate(variants):
        for col, (attribute, axis_name) in enumerate(EDGES.items()):
            _panel(axes[row, col], table[(table["variant"] == name) & (table["attribute"] == attribute)])
            axes[row, col].set_title(f"{results.sweep.variant(name).label}: by {axis_name}", fontsize=9)
            axes[row, col].set_ylabel("Δ vs RGB only (× 100)" if col == 0 else "", fontsize=8)
    # above the panels: inside one, the legend covered a bar
    figure.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center", ncols=2, frameon=False,
                  fontsize=8)
    return figure


def _panel(ax, rows: pd.DataFrame) -> None:
    """Δ per bin of one (variant, attribute), one series per score, slightly apart."""
    ax.axhline(0.0, color="grey", linewidth=0.8)
    for offset, (score, name) in zip((-0.08, 0.08), SCORES.items()):
        mine = rows[rows["score"] == score]
        ax.errorbar(mine["bin"] + offset, mine["delta"], yerr=[mine["delta"] - mine["ci_low"],
                                                                mine["ci_high"] - mine["delta"]],
                    fmt="o" if score == "iou" else "s", capsize=3, markersize=4, label=name)
    bins = rows.drop_duplicates("bin").sort_values("bin")
    ax.set_xticks(bins["bin"], [f"{BIN_NAMES[b]}\n{lo:.2g}–{hi:.2g}" for b, lo, hi in
                                bins[["bin", "low", "high"]].itertuples(index=False)], fontsize=7)


def tercile_rows(table: pd.DataFrame, latex: bool = False) -> List[List[str]]:
    """The depth-edge tercile table: per variant and score, ``Δ [low, high]`` per bin (points)."""
    minus, delta = ("$-$", r"$\Delta$") if latex else ("−", "Δ")

    def number(value: float) -> str:
        return f"{value:+.2f}".replace("-", minus)

    rows = []
    depth = table[table["attribute"] == "depth_edge"]
    for (label, score), group in depth.groupby(["label", "score"], sort=False):
        cells = {r.bin: f"{number(r.delta)} [{number(r.ci_low)}, {number(r.ci_high)}]" for r in group.itertuples()}
        name = latex_escape(label) if latex else label
        rows.append([name, SCORES[score].replace("Δ", delta)] + [cells.get(b, "--" if latex else "—")
                                                                 for b in range(BINS)])
    return rows


def tercile_header(table: pd.DataFrame) -> List[str]:
    """``Variant, Δ, low (a–b), mid (…), high (…)``: the tercile ranges of depth edge strength."""
    depth = table[table["attribute"] == "depth_edge"].drop_duplicates("bin").sort_values("bin")
    return ["Variant", "Δ"] + [f"{BIN_NAMES[r.bin]} ({r.low:.2g}–{r.high:.2g})" for r in depth.itertuples()]


def to_markdown(table: pd.DataFrame, text: str) -> str:
    """The report page's section: title, caption, tercile table."""
    return (f"## Where depth helps: Δ by depth-edge tercile\n\n{text}\n\n"
            + markdown_table(tercile_header(table), tercile_rows(table)))


def to_latex(table: pd.DataFrame, text: str, name: str) -> str:
    """A ``table`` float (booktabs) with the tercile table and its caption."""
    header = [h.replace("Δ", r"$\Delta$").replace("–", "--") for h in tercile_header(table)]
    lines = [" & ".join(header) + r" \\", r"\midrule"] + [" & ".join(r) + r" \\" for r in tercile_rows(table, True)]
    caption_tex = latex_escape(text).replace("Δ", r"$\Delta$").replace("×", r"$\times$").replace("−", "$-$")
    return "\n".join([r"\begin{table}[t]", r"\centering\footnotesize", rf"\caption{{{caption_tex}}}",
                      rf"\label{{tab:{name}-where}}", r"\begin{tabular}{@{}ll" + "c" * (len(header) - 2) + "@{}}",
                      r"\toprule", *lines, r"\bottomrule", r"\end{tabular}", r"\end{table}", ""])


def caption(table: pd.DataFrame, ci: str, n_boot: int, baseline: str) -> str:
    """What ``where`` and the tercile table show, and whether the controls are flat."""
    kind = "two-level (seeds, then instances)" if ci == "seeds+instances" else "instance-level"
    return (f"Δ box IoU and Δ box Boundary IoU (× 100) against {baseline}, paired per instance and seed, in "
            f"terciles of the instances' edge strength along their ground-truth boundary (relative to the "
            f"image's mean gradient; depth: the real depth map, the same for every variant), with 95 % {kind} "
            f"paired bootstrap CIs ({n_boot} resamples). {flatness_note(table)}").strip()


def check_variants(results: SweepResults, names: Sequence[str]) -> None:
    """Refuse, before anything is written, a row of ``where`` that is not a non-baseline variant."""
    known = [v.name for v in results.sweep.variants if v.name not in results.sweep.baselines]
    for name in names:
        if name not in known:
            raise FusionlabError(f"where variant {name!r}: not a non-baseline variant of "
                                 f"{results.root / 'sweep.json'}; expected one of {known}")


def variant_names(results: SweepResults, names: Optional[Sequence[str]], summary: pd.DataFrame) -> List[str]:
    """``names`` if given, else :func:`default_variants`."""
    return list(names) if names else default_variants(summary, results)
