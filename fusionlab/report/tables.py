"""The ablation table as LaTeX (booktabs, via pandas ``Styler.to_latex``), Markdown and CSV.

All three render the tidy summary of :func:`fusionlab.report.stats.summarize`; the LaTeX and
Markdown tables show the same cells: ``mean ± std`` over seeds, the best value per column in
bold, and Δ box mIoU to the baseline with its 95 % paired bootstrap CI, marked where the
Holm-adjusted p-value is below 0.05 (or, with ``holm=False``, where the CI excludes 0; the
caption says which). Captions name the data by dataset, never by a folder of the machine that
ran it, and the device that measured the throughput (``img/s``) where the results record it.
Below the table, a note per light depth encoder says how much of the ``same`` encoder's gain it
keeps and at what cost (:func:`fusionlab.report.frontier.gain_kept`); the CSV carries that share
as ``gain_kept_pct`` with the ``same`` counterpart's name (column ``same_reference``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from fusionlab.report import frontier
from fusionlab.report.loading import Sweep, SweepResults
from fusionlab.report.stats import ALPHA, DELTA_METRICS, MIN_SEEDS

PROMPT_HEADERS = {"click1": "1-click", "click3": "3-click"}
# report.csv's column for a light variant's ``same`` counterpart keeps the name earlier versions wrote: scripts read it.
COUNTERPART_COLUMN = "same_reference"
_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                   "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                   "^": r"\textasciicircum{}"}


@dataclass(frozen=True)
class Column:
    """One metric column of the table.

    Attributes:
        metric: the ``trials.csv`` column it shows.
        latex: the two header rows in LaTeX (top row spans equal neighbours).
        markdown: the header in Markdown.
        digits: decimals shown.
        higher_is_better: which end is bold.
        spread: show ``± std`` (off for params and GMACs, which do not vary with the seed).
        ratio_to_baseline: the baseline's value is 1 by definition, so its cell has no spread
            and is never bold: being the baseline is not being the best.
    """

    metric: str
    latex: Tuple[str, str]
    markdown: str
    digits: int = 1
    higher_is_better: bool = True
    spread: bool = True
    ratio_to_baseline: bool = False


@dataclass(frozen=True)
class _Syntax:
    """How one output format writes numbers and symbols, and escapes free text."""

    spread: str
    interval: str
    dash: str
    mark: str
    minus: str
    times: str
    percent: str
    delta: str
    code: str
    escape: Callable[[str], str]


_BOX = Column("box_miou", ("Box mIoU", "all"), "Box mIoU")
# The Δ columns' names: LaTeX's top header row, and Markdown's header.
_DELTA_NAMES = {"box_miou": ("box", "Δ box mIoU [95% CI]"), "box_biou": ("box BIoU", "Δ box BIoU [95% CI]")}
# The 11 columns (12 with throughput) need the full width of a two-column paper, hence
# ``table*``; \footnotesize, a small std and CI, and 3 pt column gaps (narrower ones let
# neighbouring numbers run together) keep it about that wide. Where it is still wider than the line (a one-column
# paper, long labels, wide numbers), it is scaled down to the line, never up: no layout of
# 11 columns of mean ± std fits a one-column paper's 345 pt at a legible natural size.
_LATEX_HEADER = r"""% Written by `fusionlab report`. Needs \usepackage{booktabs} (rules) and
% \usepackage{graphicx} (\resizebox, which shrinks the table only where it is wider than the
% text, e.g. in a one-column paper; where it fits, it keeps its natural \footnotesize).
"""
_SHRINK_TO_FIT = r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%"
# An absolute POSIX, home or Windows path that starts a word: not the "/M" of "S/M/L", nor
# the "//host/..." of a URL, which names no one's folder.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/\\:-])(?:~|[A-Za-z]:)?[/\\][^\s,;()\[\]{}'\"]+")


def data_name(description: str) -> str:
    """``description`` with each absolute path cut to its last component.

    ``"coco /home/me/data/coco/val2017 (500 images)"`` -> ``"coco val2017 (500 images)"``: a
    caption names the data, not where it lay on the machine that ran the sweep.
    """
    return _ABSOLUTE_PATH.sub(lambda m: re.split(r"[/\\]", m.group().rstrip("/\\"))[-1],
                              description)


def latex_escape(text: str) -> str:
    """Escape the characters LaTeX treats specially (``rgb_only`` -> ``rgb\\_only``)."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


_LATEX = _Syntax(spread=r"{mean}{{\scriptsize$\pm${std}}}",
                 interval=r"{delta} {{\scriptsize[{low}, {high}]}}",
                 dash="--", mark=r"$^\dagger$", minus="$-$", times=r"$\times$", percent=r"\,\%",
                 delta=r"$\Delta$", code=r"\texttt{{{}}}", escape=latex_escape)
_MARKDOWN = _Syntax(spread="{mean} ± {std}", interval="{delta} [{low}, {high}]", dash="—",
                    mark=" †", minus="−", times="×", percent=" %", delta="Δ", code="`{}`",
                    escape=str)


def table_columns(summary: pd.DataFrame, prompts: Tuple[str, ...]) -> List[Column]:
    """The metric columns to show, in order, among those present in ``summary``."""
    columns = [
        _BOX,
        Column("box_miou_small", ("Box mIoU", "S"), "Box S"),
        Column("box_miou_medium", ("Box mIoU", "M"), "Box M"),
        Column("box_miou_large", ("Box mIoU", "L"), "Box L"),
    ]
    for prompt in prompts:
        if prompt != "box":
            header = PROMPT_HEADERS.get(prompt, prompt)
            columns.append(Column(f"{prompt}_miou", (latex_escape(header), "mIoU"),
                                  f"{header} mIoU"))
    columns += [
        Column("box_biou", ("Box", "BIoU"), "Box BIoU"),
        Column("params_m", ("Params", "(M)"), "Params (M)", digits=2, higher_is_better=False, spread=False),
        Column("gmacs", ("GMACs", ""), "GMACs", digits=2, higher_is_better=False, spread=False),
        Column("latency_ratio", ("Latency", r"($\times$RGB)"), "Latency (× RGB)", digits=2,
               higher_is_better=False, ratio_to_baseline=True),
        # Absolute and machine-bound, unlike the ratio: the caption names the device.
        Column("throughput_ips", ("img/s", ""), "img/s", spread=False),
    ]
    # a column no trial measured (e.g. latency with ``latency.enabled: false``) would be dashes only
    measured = set(summary.loc[summary["mean"].notna(), "metric"]) | {_BOX.metric}
    return [c for c in columns if c.metric in measured]


def delta_metrics(summary: pd.DataFrame) -> List[str]:
    """The metrics with a Δ column: box mIoU, and box Boundary IoU where the results have it."""
    return [m for m in DELTA_METRICS
            if m == _BOX.metric or summary.loc[summary["metric"] == m, "delta"].notna().any()]


def missing_note(results: SweepResults) -> Optional[str]:
    """What an older results folder lacks (Boundary IoU, instance attributes) and how to add it, else None."""
    if "box_biou" in results.metric_columns():
        return None
    return (f"no Boundary IoU nor instance attributes in these results (evaluated before they existed): "
            f"`fusionlab rescore {results.root}` adds them from the saved predictions, then report again")


def seeds_note(results: SweepResults, ci: str) -> Optional[str]:
    """A warning when the two-level CI has fewer than :data:`MIN_SEEDS` seeds to resample, else None."""
    if ci != "seeds+instances" or len(results.sweep.seeds) >= MIN_SEEDS:
        return None
    return (f"only {len(results.sweep.seeds)} seed(s) to resample: the seeds+instances CI says little about "
            f"retraining; use at least {MIN_SEEDS} seeds")


def partial_note(results: SweepResults) -> Optional[str]:
    """``"partial: k of N cells complete"`` when the sweep is not finished, else None."""
    done = len(results.complete())
    total = results.sweep.total_cells
    return f"partial: {done} of {total} cells complete" if done < total else None


def baseline_note(results: SweepResults) -> Optional[str]:
    """Why Δ is missing when a baseline has no complete trial, else None."""
    missing = [b for b in results.sweep.baselines if not (results.complete()["variant"] == b).any()]
    if not missing:
        return None
    names = ", ".join(repr(b) for b in missing)
    return (f"no complete trial of the baseline {names}, so no difference to it is computed"
            if len(missing) == 1 else
            f"no complete trial of the baselines {names}, so no difference to them is computed")


def holm_note(summary: pd.DataFrame, n_boot: int) -> Optional[str]:
    """Why no Δ can be marked when ``n_boot`` is too few for Holm's adjustment, else None.

    No bootstrap p-value is below ``2 / (n_boot + 1)``, so none adjusted over the ``m`` box mIoU
    comparisons is below ``m`` times that: below ``ALPHA`` only from ``n_boot = 2m / ALPHA``.
    """
    m = int(summary.loc[summary["metric"] == "box_miou", "p_value"].notna().sum())
    needed = round(2 * m / ALPHA)
    if m == 0 or n_boot >= needed:
        return None
    return (f"with {n_boot} resamples no p-value is below {2 / (n_boot + 1):.3g}, so Holm's "
            f"adjustment over {m} variants marks none: use {needed} resamples or more")


def _notes(summary: pd.DataFrame, results: SweepResults, n_boot: int, holm: bool, ci: str = "instances"
           ) -> List[str]:
    """The notes that apply: a partial sweep, no baseline, too few resamples to mark with Holm, too few
    seeds for the two-level CI."""
    notes = [partial_note(results), baseline_note(results),
             holm_note(summary, n_boot) if holm else None, seeds_note(results, ci)]
    return [note for note in notes if note]


def to_latex(summary: pd.DataFrame, results: SweepResults, n_boot: int, holm: bool = True,
             ci: str = "instances") -> str:
    """A ``table*`` float with a booktabs ``tabular``; needs booktabs and graphicx.

    ``holm``: the summary's mark is Holm-adjusted (:func:`fusionlab.report.stats.summarize`);
    ``ci``: the kind of its intervals; the caption says both.
    """
    columns = table_columns(summary, results.sweep.prompts)
    labels, cells, best = _cells(summary, results, columns, _LATEX)
    headers = ([("Variant", "")] + [c.latex for c in columns]
               + [(rf"$\Delta$ {_DELTA_NAMES[m][0]}", r"[95\% CI]") for m in delta_metrics(summary)])
    frame = pd.DataFrame([[latex_escape(label)] + row for label, row in zip(labels, cells)],
                         columns=pd.MultiIndex.from_tuples(headers))
    props = pd.DataFrame("", index=frame.index, columns=frame.columns)
    props.iloc[:, 1:1 + len(columns)] = np.where(best, "textbf:--rwrap;", "")
    styler = (frame.style.hide(axis="index")
              .apply(lambda _: props, axis=None)
              .set_table_styles([{"selector": "footnotesize", "props": ":;"},
                                 {"selector": "setlength", "props": r":{\tabcolsep}{3pt};"}]))
    latex = styler.to_latex(
        caption=_caption(summary, results, n_boot, holm, latex=True, ci=ci),
        label=f"tab:{slug(results.sweep.name)}", hrules=True, environment="table*",
        position="t", position_float="centering", multicol_align="c",
        # No gap outside the first and last column (booktabs' advice), so rules end at the text.
        column_format="@{}l" + "c" * (len(headers) - 1) + "@{}",
    )
    latex = _insert_rows(latex, _row_breaks(results, len(headers)))
    latex = latex.replace("\\begin{tabular}", _SHRINK_TO_FIT + "\n\\begin{tabular}", 1)
    notes = _gain_kept_notes(summary, results, _LATEX)
    if notes:
        # Table notes sit below the table, inside the float, ragged right so that a long
        # unbreakable label cannot overfill the line.
        latex = latex.replace("\\end{table*}", "\\par\\smallskip{\\raggedright\n"
                              + "\\par\n".join(notes) + "\\par}\n\\end{table*}", 1)
    return _LATEX_HEADER + latex.replace("\\end{tabular}", "\\end{tabular}}", 1)


def to_markdown(summary: pd.DataFrame, results: SweepResults, n_boot: int,
                holm: bool = True, ci: str = "instances") -> str:
    """The whole report page: caption, notes, table, attribute breakdown, incomplete cells.

    ``holm``, ``ci``: as for :func:`to_latex`. An older results folder gets one more line: what it
    lacks and how to add it (:func:`missing_note`).
    """
    columns = table_columns(summary, results.sweep.prompts)
    labels, cells, best = _cells(summary, results, columns, _MARKDOWN)
    blocks = dict(_block_starts(results))
    starts = set(_group_starts(results)) | set(blocks) | {0}
    groups = [g if i in starts else "" for i, g in enumerate(_row_groups(results))]
    header = (["Group", "Variant"] + [c.markdown for c in columns]
              + [_DELTA_NAMES[m][1] for m in delta_metrics(summary)])
    rows = [[group, label] + [f"**{v}**" if b else v for v, b in zip(row[:len(columns)], flags)]
            + row[len(columns):] for group, label, row, flags in zip(groups, labels, cells, best)]
    if results.sweep.axis_key:
        header.insert(0, _axis_name(results.sweep))
        rows = [[str(blocks.get(i, ""))] + row for i, row in enumerate(rows)]
    parts = [f"# {results.sweep.name}", _caption(summary, results, n_boot, holm, latex=False, ci=ci)]
    parts += [f"**{note}**" for note in _notes(summary, results, n_boot, holm, ci)]
    missing = missing_note(results)
    parts += [missing] if missing else []
    parts.append(markdown_table(header, rows))
    notes = _gain_kept_notes(summary, results, _MARKDOWN)
    if notes:
        parts.append(notes[0] + "\n\n" + "\n".join(f"- {note}" for note in notes[1:]))
    parts += [_attribute_section(summary, results, a) for a in _attribute_names(summary)]
    incomplete = _incomplete_section(results)
    if incomplete:
        parts.append(incomplete)
    return "\n\n".join(parts) + "\n"


def to_csv(summary: pd.DataFrame, results: SweepResults) -> str:
    """The tidy summary as CSV: numbers, not formatted strings.

    ``p_value`` is the raw paired bootstrap p-value of Δ, ``p_holm`` its Holm adjustment over the
    variants compared with the baseline in that metric, and ``significant`` the table's mark.
    The ``box_miou`` row of a light variant adds ``same_reference`` (its ``same`` counterpart,
    the variant it is compared with) and ``gain_kept_pct`` (see :func:`fusionlab.report.frontier.gain_kept`);
    both are empty elsewhere. A sweep with a numeric axis adds, after ``group``, ``design`` (the
    variant without its axis value), a column named by the axis key with the variant's value,
    and ``baseline`` (the variant its Δ is against).
    """
    kept = frontier.gain_kept(frontier.variant_points(summary, results), results)
    kept = kept[["same_variant", "gain_kept_pct"]].rename(columns={"same_variant": COUNTERPART_COLUMN})
    table = summary.join(kept, on="variant")
    table.loc[table["metric"] != "box_miou", [COUNTERPART_COLUMN, "gain_kept_pct"]] = None
    sweep = results.sweep
    if sweep.axis_key:
        at = table.columns.get_loc("group") + 1
        for offset, (column, value) in enumerate((("design", lambda v: v.design),
                                                  (sweep.axis_key, lambda v: v.axis_value),
                                                  ("baseline", lambda v: sweep.baseline_of(v.name)))):
            table.insert(at + offset, column, table["variant"].map(lambda n: value(sweep.variant(n))))
    return table.to_csv(index=False)


def _cells(summary: pd.DataFrame, results: SweepResults, columns: List[Column],
           syntax: _Syntax) -> Tuple[List[str], List[List[str]], np.ndarray]:
    """Row labels, formatted cells (metric columns then Δ), and ``(rows, columns)`` bold flags."""
    order = [v.name for v in results.sweep.ordered_variants()]
    wide = {stat: summary.pivot(index="variant", columns="metric", values=stat).reindex(order)
            for stat in ("mean", "std", "n")}
    # The baseline's ratio to itself is exact: no spread to show, and no candidate for bold.
    is_baseline = pd.Series(np.isin(order, results.sweep.baselines), index=order)
    ratios = [c.metric for c in columns if c.ratio_to_baseline]
    wide["std"][ratios] = wide["std"][ratios].mask(is_baseline, axis=0)
    n_seeds = len(results.sweep.seeds)
    labels = []
    for name in order:
        n_done = int(wide["n"].loc[name, "box_miou"])
        variant = results.sweep.variant(name)
        planned = 1 if variant.group == "reference" else n_seeds  # a released model is evaluated once
        # in a block of one axis value, the block's header row gives the value
        label = variant.design_label if results.sweep.axis_key else variant.label
        labels.append(label if n_done >= planned else f"{label} (n={n_done})")
    deltas = [summary[summary["metric"] == m].set_index("variant") for m in delta_metrics(summary)]
    cells = [[_mean_std(wide["mean"].loc[name, c.metric], wide["std"].loc[name, c.metric],
                        c, syntax) for c in columns] + [_delta_cell(d.loc[name], syntax) for d in deltas]
             for name in order]
    blocks = np.array([results.sweep.axis_position(results.sweep.variant(name)) for name in order])
    best = np.zeros((len(order), len(columns)), dtype=bool)
    for block in np.unique(blocks):  # best within each axis value's block
        rows = blocks == block
        best[rows] = np.column_stack([
            _best(wide["mean"][c.metric].mask(is_baseline & c.ratio_to_baseline)[rows], c) for c in columns])
    return labels, cells, best


def _gain_kept_notes(summary: pd.DataFrame, results: SweepResults, syntax: _Syntax) -> List[str]:
    """A lead-in line, then one note per light variant with a ``same`` counterpart; [] if none."""
    kept = frontier.gain_kept(frontier.variant_points(summary, results), results)
    if kept.empty:
        return []
    baseline = syntax.escape(results.sweep.variant(results.sweep.baseline).design_label)
    lead = (f"Light depth encoders, each against the {syntax.code.format('same')} encoder (a "
            "full copy of the RGB encoder, at full size) with the same fusion, fusion point and "
            f"depth source; gain: {syntax.delta} box mIoU to {baseline}:")
    return [lead] + [_gain_kept_note(row, syntax) for _, row in kept.iterrows()]


def _gain_kept_note(row: pd.Series, syntax: _Syntax) -> str:
    """One row of :func:`fusionlab.report.frontier.gain_kept` as a sentence.

    ``"<label>: keeps 75 % of the `same` encoder's gain (+3.0 vs +4.0 box mIoU) at <cost>"``,
    or, where there is no share to give, why.
    """
    same = syntax.code.format("same")
    unmeasured = [syntax.escape(row[f"{prefix}label"]) for prefix in ("", "same_")
                  if pd.isna(row[f"{prefix}delta"])]
    if pd.notna(row["gain_kept_pct"]):
        share, joint = (f"keeps {_number(row['gain_kept_pct'], 0, syntax)}{syntax.percent} of the "
                        f"{same} encoder's gain ({_number(row['delta'], 1, syntax, sign=True)} vs "
                        f"{_number(row['same_delta'], 1, syntax, sign=True)} box mIoU)"), " at "
    elif unmeasured:
        share, joint = (f"no {syntax.delta} box mIoU yet for {' nor '.join(unmeasured)}, so no "
                        f"share of the {same} encoder's gain"), "; at "
    else:
        same_gain = syntax.interval.format(**{k: _number(row[f"same_{s}"], 1, syntax, sign=True)
                                              for k, s in (("delta", "delta"), ("low", "ci_low"),
                                                           ("high", "ci_high"))})
        share, joint = (f"{_number(row['delta'], 1, syntax, sign=True)} box mIoU, but the {same} "
                        f"encoder's gain ({same_gain}) is not above 0 with 95{syntax.percent} "
                        "confidence, so a share of it is not meaningful"), "; at "
    cost = _cost(row, syntax)
    return f"{syntax.escape(row['label'])}: {share}" + (joint + cost if cost else "")


def _cost(row: pd.Series, syntax: _Syntax) -> str:
    """``"1.07× RGB-only latency (`same`: 1.95×), 0.90 vs 1.80 GMACs"``, leaving out what is
    not measured ("" if nothing is)."""
    parts = []
    if pd.notna(row["latency_ratio"]):
        counterpart = (f" ({syntax.code.format('same')}: "
                       f"{_number(row['same_latency_ratio'], 2, syntax)}{syntax.times})"
                       if pd.notna(row["same_latency_ratio"]) else "")
        parts.append(f"{_number(row['latency_ratio'], 2, syntax)}{syntax.times} RGB-only "
                     f"latency{counterpart}")
    if pd.notna(row["gmacs"]) and pd.notna(row["same_gmacs"]):
        parts.append(f"{_number(row['gmacs'], 2, syntax)} vs "
                     f"{_number(row['same_gmacs'], 2, syntax)} GMACs")
    return ", ".join(parts)


def _mean_std(mean: float, std: float, column: Column, syntax: _Syntax) -> str:
    if pd.isna(mean):
        return syntax.dash
    text = _number(mean, column.digits, syntax)
    if not column.spread or pd.isna(std):
        return text
    return syntax.spread.format(mean=text, std=_number(std, column.digits, syntax))


def _delta_cell(stats: pd.Series, syntax: _Syntax) -> str:
    """``+5.02 [+4.81, +5.23]`` plus the mark when significant, from one summary row."""
    if pd.isna(stats["delta"]):
        return syntax.dash
    text = syntax.interval.format(**{k: _number(stats[s], 2, syntax, sign=True) for k, s in
                                     (("delta", "delta"), ("low", "ci_low"), ("high", "ci_high"))})
    return text + syntax.mark if bool(stats["significant"]) else text


def _number(value: float, digits: int, syntax: _Syntax, sign: bool = False) -> str:
    text = f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    return syntax.minus + text[1:] if text.startswith("-") else text


def _best(means: pd.Series, column: Column) -> np.ndarray:
    """Rows holding the best value as shown (rounded), so displayed ties are all bold."""
    shown = means.round(column.digits)
    if shown.isna().all():
        return np.zeros(len(shown), dtype=bool)
    target = shown.max() if column.higher_is_better else shown.min()
    return (shown == target).to_numpy()


def _row_groups(results: SweepResults) -> List[str]:
    return [v.group for v in results.sweep.ordered_variants()]


def _group_starts(results: SweepResults) -> List[int]:
    """Row indices (after the first row) where a new group begins."""
    groups = _row_groups(results)
    return [i for i in range(1, len(groups)) if groups[i] != groups[i - 1]]


def _axis_name(sweep: Sweep) -> str:
    """The axis key's last part, ``num_images`` for ``data.train.num_images``."""
    return str(sweep.axis_key).rsplit(".", 1)[-1]


def _block_starts(results: SweepResults) -> List[Tuple[int, float]]:
    """``(row index, axis value)`` where each axis value's block begins; [] without an axis."""
    sweep = results.sweep
    if not sweep.axis_key:
        return []
    values = [v.axis_value for v in sweep.ordered_variants()]
    return [(i, value) for i, value in enumerate(values) if i == 0 or value != values[i - 1]]


def _row_breaks(results: SweepResults, width: int) -> Dict[int, List[str]]:
    """LaTeX lines to put before body rows: a rule where a group begins and, with an axis, a
    header row naming the value where its block begins."""
    breaks = {i: [r"\midrule"] for i in _group_starts(results)}
    for i, value in _block_starts(results):
        title = latex_escape(f"{_axis_name(results.sweep)} = {value}")
        breaks[i] = ([r"\midrule"] if i else []) + [rf"\multicolumn{{{width}}}{{@{{}}l}}{{\textit{{{title}}}}} \\"]
    return breaks


def _insert_rows(latex: str, breaks: Dict[int, List[str]]) -> str:
    """Insert ``breaks[i]`` before body row ``i`` of the tabular."""
    lines = latex.splitlines()
    body = lines.index(r"\midrule") + 1
    out = lines[:body]
    rows = lines[body:]
    for i, row in enumerate(rows):
        out += breaks.get(i, []) + [row]
    return "\n".join(out) + "\n"


def _reference_note(sweep: Sweep, delta: str) -> str:
    """The caption's sentence on reference rows, when there are any."""
    if not any(v.group == "reference" for v in sweep.variants):
        return ""
    return (f" Reference rows: released models evaluated once as they are, without training (no seeds "
            f"to vary, so no spread); their {delta} pairs them with seed {sweep.seeds[0]} of the baseline.")


def _caption(summary: pd.DataFrame, results: SweepResults, n_boot: int, holm: bool,
             latex: bool, ci: str = "instances") -> str:
    """What the numbers are: seeds, spread, data, depth, throughput, Δ and the rule of its mark;
    LaTeX adds the notes."""
    sweep = results.sweep
    esc = latex_escape if latex else (lambda s: s)
    pm, times, delta, mark, pct = ((r"$\pm$", r"$\times$", r"$\Delta$", r"$^\dagger$", r"\%")
                                   if latex else ("±", "×", "Δ", "†", "%"))
    seeds = ", ".join(str(s) for s in sweep.seeds)
    baseline = esc(sweep.variant(sweep.baseline).design_label)
    dataset, eval_dataset, depth = (esc(data_name(d)) for d in
                                    (sweep.dataset, sweep.eval_dataset, sweep.depth_source))
    controls = ", controls included" if any(v.group == "control" for v in sweep.variants) else ""
    timed = "latency_ratio" in {c.metric for c in table_columns(summary, sweep.prompts)}
    latency = f"; latency relative to {baseline} (1 by definition)" if timed else ""
    latency_bold = f"; for latency, best of the variants other than {baseline}" if timed else ""
    axis = (f" One block per value of {esc(str(sweep.axis_key))}; each variant is compared with {baseline} "
            f"at the same value, and bold is the best within a block." if sweep.axis_key else "")
    # In the default (OT1) font encoding, LaTeX prints a text-mode "<" as "¡".
    p_below = rf"$p < {ALPHA:g}$" if latex else f"p < {ALPHA:g}"
    rule = (f"{p_below} after Holm's adjustment over every variant compared with "
            f"{baseline}{controls} (two-sided paired bootstrap p-values)" if holm
            else "the CI excludes 0 (not adjusted for multiple comparisons)")
    text = (
        f"Ablation {esc(sweep.name)}: mean {pm} std (ddof=1) over {len(sweep.seeds)} seeds "
        f"({seeds}); (n=k) marks a variant with only k completed seeds.{_reference_note(sweep, delta)} "
        f"Trained on {dataset}; evaluated on {eval_dataset}; depth: {depth}. mIoU {times} 100 "
        f"(S/M/L: small/medium/large objects){latency}.{_throughput_note(results, esc)} "
        f"{_boundary_note(summary, times, pct)}"
        f"{delta}: box {'mIoU (and box BIoU)' if 'box_biou' in delta_metrics(summary) else 'mIoU'} minus "
        f"{baseline} on the same instances and matched seeds, with a "
        f"95{pct} {_ci_words(ci)} ({n_boot} resamples); "
        f"{mark}: {rule}. Params and GMACs do not vary with the seed. "
        f"Bold: best per column{latency_bold}.{axis}"
    )
    if not latex:
        return text
    notes = _notes(summary, results, n_boot, holm, ci)
    return " ".join([text] + [latex_escape(n[0].upper() + n[1:]) + "." for n in notes])


def _boundary_note(summary: pd.DataFrame, times: str, pct: str) -> str:
    """The caption's sentence on Boundary IoU where the table shows it, else ""."""
    if "box_biou" not in delta_metrics(summary):
        return ""
    return (f"BIoU: Boundary IoU {times} 100 of box prompts (Cheng et al., 2021: the IoU of the masks' inner "
            f"bands, 2{pct} of the image diagonal wide). ")


def _ci_words(ci: str) -> str:
    """How the Δ interval was resampled, in the caption's words."""
    if ci == "seeds+instances":
        return ("two-level paired bootstrap CI, over seeds then instances (Bouthillier et al., 2021: it includes "
                "retraining noise)")
    return "paired bootstrap CI over instances"


def _throughput_note(results: SweepResults, escape: Callable[[str], str]) -> str:
    """`` img/s: ..., batch 8 on NVIDIA H200.`` where the table shows throughput, else "".

    Names each (batch, device) the complete trials recorded; sweeps that did not record them
    get no device, and a CPU's absolute numbers are flagged as indicative only.
    """
    if "throughput_ips" not in results.cells.columns:
        return ""
    measured = results.complete().dropna(subset=["throughput_ips"])
    if measured.empty:
        return ""
    settings = measured.reindex(columns=["throughput_batch", "throughput_device"]).dropna()
    where = "; ".join(f"batch {int(batch)} on {escape(str(device))}" for batch, device in
                      settings.drop_duplicates().itertuples(index=False))
    cpu = " (on a CPU, only indicative)" if (settings["throughput_device"] == "cpu").any() else ""
    return (" img/s: images per second through the encoder(s) and fusion blocks, mean over "
            f"seeds{', ' + where if where else ''}{cpu}.")


def _attribute_names(summary: pd.DataFrame) -> List[str]:
    metrics = summary["metric"].drop_duplicates()
    return [m.split("@", 1)[1] for m in metrics
            if m.startswith("box_miou@") and not m.startswith("box_miou@not_")]


def _attribute_section(summary: pd.DataFrame, results: SweepResults, attribute: str) -> str:
    """Box mIoU on instances with and without ``attribute``, and Δ on each subset."""
    header = ["Variant", f"{attribute}", f"not {attribute}",
              f"Δ {attribute} [95% CI]", f"Δ not {attribute} [95% CI]"]
    rows = []
    for variant in results.sweep.ordered_variants():
        mine = summary[summary["variant"] == variant.name].set_index("metric")
        subsets = [mine.loc[f"box_miou@{attribute}"], mine.loc[f"box_miou@not_{attribute}"]]
        rows.append([variant.label]
                    + [_mean_std(s["mean"], s["std"], _BOX, _MARKDOWN) for s in subsets]
                    + [_delta_cell(s, _MARKDOWN) for s in subsets])
    title = f"## Box mIoU by attribute: {attribute}"
    return f"{title}\n\n{markdown_table(header, rows)}"


def _incomplete_section(results: SweepResults) -> Optional[str]:
    cells = results.cells[results.cells["state"] != "COMPLETE"]
    if cells.empty:
        return None
    rows = [[results.sweep.variant(c.variant).label, str(int(c.seed)), c.state,
             "" if pd.isna(c.error) else str(c.error)] for c in cells.itertuples()]
    return ("## Incomplete cells\n\n"
            + markdown_table(["Variant", "Seed", "State", "Error"], rows))


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    def line(cells: List[str]) -> str:
        return "| " + " | ".join(_md_cell(c) for c in cells) + " |"
    return "\n".join([line(header), "|" + "|".join("---" for _ in header) + "|"]
                     + [line(r) for r in rows])


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", r"\|")


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name)
