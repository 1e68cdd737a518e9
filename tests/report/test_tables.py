"""The LaTeX, Markdown and CSV tables of a known fake sweep (see conftest.py for its truth)."""
import io
import re
import shutil
import subprocess
from dataclasses import replace

import pandas as pd
import pytest

from fusionlab.report import make_report, tables
from fusionlab.report.loading import load_results
from fusionlab.report.stats import holm_adjust, summarize
from fusionlab.report.tables import data_name, latex_escape

LABELS = ["RGB only", r"add\_s3", r"gated\_s3", "zero depth"]


def _body(latex: str) -> list:
    """Lines between the header's \\midrule and \\bottomrule."""
    lines = latex.splitlines()
    return lines[lines.index(r"\midrule") + 1:lines.index(r"\bottomrule")]


def _row(latex: str, label: str) -> list:
    line = next(line for line in _body(latex) if line.startswith(label + " "))
    return [cell.strip() for cell in line.removesuffix(r"\\").split("&")]


def test_latex_rows_come_in_group_order_with_a_rule_between_groups(full_report):
    body = _body(full_report.paths["table.tex"].read_text())
    assert [line.split(" & ")[0] for line in body] == [
        LABELS[0], r"\midrule", LABELS[1], LABELS[2], r"\midrule", LABELS[3]]


def test_latex_has_booktabs_rules_and_the_expected_columns(full_report):
    latex = full_report.paths["table.tex"].read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in latex
    assert (r"Variant & \multicolumn{4}{c}{Box mIoU} & 1-click & 3-click & Params & GMACs & "
            r"Latency & $\Delta$ box \\") in latex
    assert r" & all & S & M & L & mIoU & mIoU & (M) &  & ($\times$RGB) & [95\% CI] \\" in latex
    assert len(_row(latex, LABELS[1])) == 11


def test_latex_cells_are_mean_pm_std_over_seeds(full_report):
    latex = full_report.paths["table.tex"].read_text()
    trials = pd.read_csv(full_report.paths["table.tex"].parent.parent / "trials.csv")
    box = trials[trials["variant"] == "fusion_gated"]["box_miou"]
    expected = rf"{box.mean():.1f}{{\scriptsize$\pm${box.std(ddof=1):.1f}}}"
    assert _row(latex, LABELS[2])[1] == expected


def test_significance_mark_on_the_better_variant_only(full_report):
    latex = full_report.paths["table.tex"].read_text()
    assert _row(latex, LABELS[1])[-1].endswith(r"$^\dagger$")
    assert r"\dagger" not in _row(latex, LABELS[3])[-1]
    assert _row(latex, LABELS[1])[-1].startswith("+5.")


def test_best_box_miou_is_bold(full_report):
    latex = full_report.paths["table.tex"].read_text()
    assert _row(latex, LABELS[1])[1].startswith(r"\textbf{")
    assert not any(_row(latex, label)[1].startswith(r"\textbf") for label in
                   (LABELS[0], LABELS[2], LABELS[3]))


def test_caption_states_seeds_spread_dataset_depth_and_mark(full_report):
    latex = full_report.paths["table.tex"].read_text()
    caption = next(line for line in latex.splitlines() if line.startswith(r"\caption{"))
    for fact in (r"mean $\pm$ std (ddof=1) over 3 seeds", r"embedded COCO\_tiny",
                 "Depth Anything V2-S, cached", r"COCO val 5\% split",
                 r"$^\dagger$: $p < 0.05$ after Holm's adjustment over every variant compared "
                 "with RGB only, controls included (two-sided paired bootstrap p-values)",
                 "2000 resamples"):
        assert fact in caption
    assert "partial" not in caption.lower()


def test_labels_are_latex_escaped(full_report):
    latex = full_report.paths["table.tex"].read_text()
    assert "add_s3" not in latex and r"add\_s3" in latex
    assert latex_escape(r"50% & $x_1$ #{~^\}") == (
        r"50\% \& \$x\_1\$ \#\{\textasciitilde{}\textasciicircum{}\textbackslash{}\}")


def _needed_packages(latex: str) -> list:
    """The packages table.tex's header comment names: what a paper must load for it."""
    header = "".join(line for line in latex.splitlines() if line.startswith("%"))
    return re.findall(r"\\usepackage\{(\w+)\}", header)


def test_latex_header_names_the_packages_it_needs(full_report):
    latex = full_report.paths["table.tex"].read_text()
    assert _needed_packages(latex) == ["booktabs", "graphicx"]
    assert r"\resizebox" in latex


@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="pdflatex not installed (apt-get install texlive-latex-base "
                           "texlive-latex-recommended)")
@pytest.mark.parametrize("report", ["full_report", "partial_report", "wide_report",
                                    "encoder_report", "throughput_report", "axis_report"])
@pytest.mark.parametrize("columns", ["onecolumn", "twocolumn"])
def test_latex_compiles_within_the_text_width(report, columns, request, tmp_path):
    """In a plain one- or two-column article, with only the packages its header names."""
    latex = request.getfixturevalue(report).paths["table.tex"].read_text()
    (tmp_path / "table.tex").write_text(latex)
    packages = "".join(f"\\usepackage{{{p}}}\n" for p in _needed_packages(latex))
    (tmp_path / "doc.tex").write_text(f"\\documentclass[{columns}]{{article}}\n{packages}"
                                      "\\begin{document}\n\\input{table.tex}\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log, log[log.index("Overfull"):][:300]


def test_baseline_latency_is_exactly_one_and_never_bold(tmp_path, sweep_writer):
    """An old sweep timed the baseline against itself: 0.80, 1.04, 0.96 is noise around 1."""
    root = sweep_writer(tmp_path / "s", baseline_latency=(0.80, 1.04, 0.96))
    report = make_report(root, n_boot=10)
    latex = report.paths["table.tex"].read_text()
    assert _row(latex, "RGB only")[9] == "1.00"
    assert "| baseline | RGB only |" in report.markdown
    assert report.markdown.split("| baseline | RGB only |")[1].split("|")[8].strip() == "1.00"
    table = pd.read_csv(report.paths["report.csv"]).set_index(["variant", "metric"])
    assert table.loc[("rgb_only", "latency_ratio"), "mean"] == 1.0
    fastest = table.xs("latency_ratio", level="metric")["mean"].drop("rgb_only").idxmin()
    label = {"fusion_add": LABELS[1], "fusion_gated": LABELS[2], "depth_zero": LABELS[3]}[fastest]
    assert [_row(latex, lab)[9].startswith(r"\textbf{") for lab in LABELS] == [
        lab == label for lab in LABELS]
    assert "for latency, best of the variants other than RGB only" in latex


def test_caption_names_data_without_absolute_paths(tmp_path, sweep_writer):
    root = sweep_writer(tmp_path / "s", descriptions={
        "dataset": "COCO-format instances (instances_train2017.json, 800 images, "
                   "depth from /home/me/data/coco/depth_train)",
        "eval_dataset": "coco /home/me/data/coco/val2017 (500 images)",
        "depth_source": r"depth files from C:\Users\me\depth_v2\ (disparity, minmax)"})
    report = make_report(root, n_boot=10)
    latex = report.paths["table.tex"].read_text()
    for text in (latex, report.markdown):
        assert "/home" not in text and "Users" not in text and "me/" not in text
    assert "evaluated on coco val2017 (500 images); depth: depth files from depth_v2 " in (
        report.markdown)
    assert r"800 images, depth from depth\_train); evaluated on coco val2017" in latex


def test_data_name_keeps_what_is_not_an_absolute_path():
    for kept in ("synthetic RGB-D scenes (S/M/L, 1/2 scale)",
                 "Depth Anything https://huggingface.co/depth-anything/V2-Small (input 518)"):
        assert data_name(kept) == kept
    assert data_name("sa1b ~/sa1b/shard_00/ and /data/x.json") == "sa1b shard_00 and x.json"


def test_csv_is_tidy_and_numeric(full_report):
    table = pd.read_csv(full_report.paths["report.csv"])
    assert list(table.columns) == ["variant", "label", "group", "metric", "mean", "std", "n",
                                   "delta", "ci_low", "ci_high", "p_value", "p_holm",
                                   "significant", "same_reference", "gain_kept_pct"]
    for column in ("mean", "std", "delta", "ci_low", "ci_high", "p_value", "p_holm"):
        assert pd.api.types.is_float_dtype(table[column])
    assert pd.api.types.is_integer_dtype(table["n"])
    box = table[table["metric"] == "box_miou"].set_index("variant")
    assert box.loc["fusion_add", "ci_low"] < 5.0 < box.loc["fusion_add", "ci_high"]
    assert box.loc["depth_zero", "ci_low"] < 0.0 < box.loc["depth_zero", "ci_high"]
    assert box.loc[["fusion_add", "depth_zero"], "significant"].tolist() == [True, False]
    assert pd.isna(box.loc["rgb_only", "delta"])
    assert (box["n"] == 3).all()


def test_csv_keeps_extra_numeric_columns(full_report):
    table = pd.read_csv(full_report.paths["report.csv"])
    assert (table[table["metric"] == "wall_s"]["mean"] == 100.0).all()


def test_markdown_breaks_box_miou_down_by_camouflage(full_report):
    section = full_report.markdown.split("## Box mIoU by attribute: camouflaged")[1]
    assert "| add_s3 |" in section and "not camouflaged" in section
    table = pd.read_csv(full_report.paths["report.csv"]).set_index(["variant", "metric"])
    camo = table.loc[("fusion_add", "box_miou@camouflaged")]
    assert f"{camo['mean']:.1f} ± {camo['std']:.1f}" in section.split("| add_s3 |")[1]


def test_markdown_of_a_complete_sweep_has_no_partial_note(full_report):
    assert "partial" not in full_report.markdown
    assert "## Incomplete cells" not in full_report.markdown
    assert "| fusion | add_s3 | **" in full_report.markdown


def test_partial_sweep_is_labelled_and_lists_failed_cells(partial_report):
    markdown = partial_report.markdown
    assert "partial: 9 of 12 cells complete" in markdown
    assert "| add_s3 | 2 | FAIL | CUDA out of memory at step 12 |" in markdown
    assert "| zero depth | 0 | RUNNING |" in markdown and "| zero depth | 1 | MISSING |" in markdown
    latex = partial_report.paths["table.tex"].read_text()
    assert "Partial: 9 of 12 cells complete." in latex
    assert _row(latex, r"add\_s3 (n=2)")[0] == r"add\_s3 (n=2)"
    assert _row(latex, "zero depth (n=1)")[1] != "--"


def test_without_a_complete_baseline_tables_are_written_without_delta(tmp_path, sweep_writer):
    root = sweep_writer(tmp_path / "s", incomplete={("rgb_only", s): ("FAIL", "NaN loss")
                                                    for s in range(3)})
    report = make_report(root, n_boot=100)
    assert "no complete trial of the baseline 'rgb_only'" in report.markdown
    table = pd.read_csv(report.paths["report.csv"])
    assert table["delta"].isna().all()
    latex = report.paths["table.tex"].read_text()
    assert r"\dagger$ \\" not in latex and "No complete trial of the baseline" in latex
    assert _row(latex, "RGB only (n=0)")[1:] == ["--"] * 10


def test_rows_of_an_unfinished_variant_use_its_completed_seeds(partial_report):
    results = load_results(partial_report.paths["table.tex"].parent.parent)
    done = results.complete()
    box = done[done["variant"] == "fusion_add"]["box_miou"]
    table = pd.read_csv(partial_report.paths["report.csv"]).set_index(["variant", "metric"])
    assert table.loc[("fusion_add", "box_miou"), "n"] == 2
    assert table.loc[("fusion_add", "box_miou"), "mean"] == pytest.approx(box.mean())


QUARTER_NOTE = ("efficientvit-quarter: keeps 75 % of the `same` encoder's gain (+3.0 vs +4.0 box "
                "mIoU) at 1.20× RGB-only latency (`same`: 1.95×), 24.50 vs 39.00 GMACs")


def test_markdown_lists_the_share_of_the_same_gain_each_light_encoder_keeps(exact_encoder_report):
    notes = exact_encoder_report.markdown.split("Light depth encoders, each against the `same` "
                                                "encoder")[1].split("\n\n## ")[0]
    assert f"- {QUARTER_NOTE}\n" in notes
    assert "- timm:mobilenetv3_small_050: keeps 50 % of the `same` encoder's gain" in notes
    assert "- same @256: keeps 62 % " in notes or "- same @256: keeps 63 % " in notes
    # One note per light variant: not the `same` counterpart, the baseline or the control.
    assert [line.split(":")[0] for line in notes.splitlines() if line.startswith("- ")] == [
        "- shared", "- efficientvit-quarter", "- timm", "- timm", "- same @256"]


def test_latex_gives_the_same_notes_below_the_table(exact_encoder_report):
    latex = exact_encoder_report.paths["table.tex"].read_text()
    notes = latex.split("\\end{tabular}}")[1].split("\\end{table*}")[0]
    assert (r"efficientvit-quarter: keeps 75\,\% of the \texttt{same} encoder's gain (+3.0 vs "
            r"+4.0 box mIoU) at 1.20$\times$ RGB-only latency (\texttt{same}: 1.95$\times$), "
            r"24.50 vs 39.00 GMACs\par") in notes
    assert r"timm:mobilenetv3\_small\_050: keeps 50\,\%" in notes


def test_csv_gives_the_share_and_its_counterpart_on_the_box_row_of_light_variants(
        exact_encoder_report):
    table = pd.read_csv(exact_encoder_report.paths["report.csv"]).set_index(["variant", "metric"])
    box = table.xs("box_miou", level="metric")
    assert box.loc["quarter", "gain_kept_pct"] == pytest.approx(75.0)
    assert box.loc["quarter", "same_reference"] == "same"
    assert box.loc[["rgb_only", "same", "shuffled"], ["gain_kept_pct", "same_reference"]
                   ].isna().all().all()
    assert table.drop(index="box_miou", level="metric")[["gain_kept_pct", "same_reference"]
                                                         ].isna().all().all()


def _markdown_and_csv(root):
    """``report.md`` and ``report.csv`` of the sweep in ``root``, without the figures."""
    results = load_results(root)
    summary = summarize(results, n_boot=20)
    return (tables.to_markdown(summary, results, 20),
            pd.read_csv(io.StringIO(tables.to_csv(summary, results))))


def test_a_same_gain_not_above_zero_gives_no_percentage(tmp_path, sweep_writer, encoder_variants):
    variants = [replace(v, shift=0.0) if v.name == "same" else v for v in encoder_variants]
    markdown, table = _markdown_and_csv(sweep_writer(tmp_path / "s", variants=variants, noise=0.0))
    assert "keeps" not in markdown
    assert ("- efficientvit-quarter: +3.0 box mIoU, but the `same` encoder's gain (+0.0 [+0.0, "
            "+0.0]) is not above 0 with 95 % confidence, so a share of it is not meaningful; at "
            "1.20× RGB-only latency") in markdown
    box = table.query("metric == 'box_miou'").set_index("variant")
    assert box["gain_kept_pct"].isna().all() and box.loc["quarter", "same_reference"] == "same"


def test_a_light_variant_without_a_delta_says_so(tmp_path, sweep_writer, encoder_variants):
    root = sweep_writer(tmp_path / "s", variants=encoder_variants, noise=0.0,
                        incomplete={("quarter", s): ("FAIL", "NaN loss") for s in range(3)})
    markdown, _ = _markdown_and_csv(root)
    assert ("- efficientvit-quarter: no Δ box mIoU yet for efficientvit-quarter, so no share "
            "of the `same` encoder's gain\n") in markdown


def test_without_a_same_counterpart_there_are_no_notes(tmp_path, sweep_writer, encoder_variants):
    variants = [v for v in encoder_variants if v.name != "same"]
    markdown, table = _markdown_and_csv(sweep_writer(tmp_path / "s", variants=variants))
    assert "Light depth encoders" not in markdown
    assert table["gain_kept_pct"].isna().all()


def test_a_sweep_from_before_the_depth_encoder_keys_has_no_notes(full_report):
    assert "Light depth encoders" not in full_report.markdown
    assert r"\texttt" not in full_report.paths["table.tex"].read_text()


def test_the_encoder_group_sits_between_fusion_and_control(encoder_report):
    body = _body(encoder_report.paths["table.tex"].read_text())
    assert [line.split(" & ")[0] for line in body] == [
        "RGB only", r"\midrule", "same", r"\midrule", "shared", "efficientvit-quarter",
        r"timm:mobilenetv3\_small\_050", r"timm:resnet18", "same @256", r"\midrule",
        "shuffled depth"]
    assert "| encoder | shared |" in encoder_report.markdown


def _delta_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["delta"].notna()]


def test_csv_gives_raw_and_holm_adjusted_p_values_per_metric(full_report):
    table = pd.read_csv(full_report.paths["report.csv"])
    rows = _delta_rows(table)
    assert table.loc[table["delta"].isna(), ["p_value", "p_holm"]].isna().all().all()
    assert (rows["p_holm"] >= rows["p_value"]).all() and rows["p_value"].gt(0).all()
    for metric, family in rows.groupby("metric"):  # the 3 variants compared with RGB only
        assert sorted(family["variant"]) == ["depth_zero", "fusion_add", "fusion_gated"]
        assert family["p_holm"].to_numpy() == pytest.approx(holm_adjust(family["p_value"]))
    assert (rows["significant"] == (rows["p_holm"] < 0.05)).all()


def test_raw_p_value_agrees_with_the_ci(tmp_path, sweep_writer):
    """Without Holm, the mark is the CI rule, and p < 0.05 says the same up to one resample."""
    n_boot = 2000
    results = load_results(sweep_writer(tmp_path / "s"))
    rows = _delta_rows(summarize(results, n_boot=n_boot, holm=False))
    excludes_zero = (rows["ci_low"] > 0) | (rows["ci_high"] < 0)
    assert (rows["significant"] == excludes_zero).all()
    clear = (rows["p_value"] - 0.05).abs() > 2.0 / (n_boot + 1)
    assert ((rows["p_value"] < 0.05) == excludes_zero)[clear].all() and clear.sum() >= len(rows) - 1


def test_without_holm_the_caption_says_the_ci_rule_marked_the_delta(tmp_path, sweep_writer):
    results = load_results(sweep_writer(tmp_path / "s"))
    summary = summarize(results, n_boot=200, holm=False)
    rule = "the CI excludes 0 (not adjusted for multiple comparisons)"
    assert f"†: {rule}" in tables.to_markdown(summary, results, 200, holm=False)
    latex = tables.to_latex(summary, results, 200, holm=False)
    assert rf"$^\dagger$: {rule}" in latex and "Holm" not in latex


def test_throughput_sits_beside_latency_and_the_caption_names_the_device(throughput_report):
    latex = throughput_report.paths["table.tex"].read_text()
    markdown = throughput_report.markdown
    table = pd.read_csv(throughput_report.paths["report.csv"])
    assert r"Latency & img/s & $\Delta$ box \\" in latex
    assert r" & (M) &  & ($\times$RGB) &  & [95\% CI] \\" in latex
    assert _row(latex, "RGB only")[10] == r"\textbf{100.0}"  # absolute: the fastest is bold
    assert "| Latency (× RGB) | img/s | Δ box mIoU [95% CI] |" in markdown
    note = ("img/s: images per second through the encoder(s) and fusion blocks, mean over seeds, "
            "batch 8 on NVIDIA H200.")
    assert note in markdown and note in latex and "indicative" not in markdown
    assert "throughput_ips" in set(table["metric"])
    assert not {"throughput_batch", "throughput_device"} & set(table["metric"])


def test_throughput_measured_on_a_cpu_is_only_indicative(tmp_path, sweep_writer):
    markdown, _ = _markdown_and_csv(sweep_writer(tmp_path / "s", throughput=(1, "cpu")))
    assert "batch 1 on cpu (on a CPU, only indicative)." in markdown


def test_a_sweep_from_before_throughput_reports_without_it(full_report):
    for text in (full_report.markdown, full_report.paths["table.tex"].read_text()):
        assert "img/s" not in text


def test_holm_unmarks_a_delta_the_ci_alone_would_mark(tmp_path, sweep_writer, fusion_variants):
    """gated_s3 at +0.6 IoU points: p = 0.035 on its own, 0.07 among the 3 comparisons."""
    variants = [replace(v, shift=0.006) if v.name == "fusion_gated" else v for v in fusion_variants]
    results = load_results(sweep_writer(tmp_path / "s", variants=variants))
    for holm, marked in ((False, True), (True, False)):
        summary = summarize(results, n_boot=2000, holm=holm)
        gated = summary.query("metric == 'box_miou'").set_index("variant").loc["fusion_gated"]
        assert gated["p_value"] < 0.05 <= gated["p_holm"] and gated["ci_low"] > 0
        assert bool(gated["significant"]) is marked
        latex = tables.to_latex(summary, results, 2000, holm=holm)
        assert _row(latex, LABELS[2])[-1].endswith(r"$^\dagger$") is marked
        assert _row(latex, LABELS[1])[-1].endswith(r"$^\dagger$")


def test_too_few_resamples_for_holm_to_mark_anything_is_said(tmp_path, sweep_writer):
    results = load_results(sweep_writer(tmp_path / "s"))
    note = ("with 100 resamples no p-value is below 0.0198, so Holm's adjustment over 3 variants "
            "marks none: use 120 resamples or more")
    markdown = tables.to_markdown(summarize(results, n_boot=100), results, 100)
    assert f"**{note}**" in markdown and "†" not in markdown.split("| Group |")[1]
    assert "With 100 resamples" in tables.to_latex(summarize(results, n_boot=100), results, 100)
    enough = tables.to_markdown(summarize(results, n_boot=120), results, 120)
    assert "resamples or more" not in enough and " †" in enough.split("| Group |")[1]
