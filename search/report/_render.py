"""The report's tables as text: Markdown, booktabs LaTeX and CSV, and the terminal summary.

Every table is built once as a `Section` of display strings (marks included) and written to
each format from there, so the Markdown, the LaTeX and the terminal always agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fbp import paper
from fbp.files import atomic_path, write_atomic
from fbp.metrics import METRICS, NAMES
from search.console import print_table, styled
from search.report._build import ORACLE, ROW_STATUSES, Report, leaderboard_csv, plural

DAGGER, DDAGGER, SECTION, PILCROW = "†", "‡", "§", "¶"
DASH = "–"


@dataclass
class Section:
    key: str  # CSV name
    title: str
    frame: pd.DataFrame  # display strings
    csv: pd.DataFrame  # numbers
    intro: str = ""
    footnotes: list[str] = field(default_factory=list)
    omitted: str = ""  # why the table is not shown (one line), e.g. nothing completed


def _num(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or (not isinstance(x, str) and pd.isna(x)):
        return DASH
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.{digits}f}"


def _p(x) -> str:
    if x is None or pd.isna(x):
        return DASH
    return f"{x:.2g}" if x < 0.01 else f"{x:.3f}"


def _signed(x, digits: int = 4) -> str:
    return DASH if x is None or pd.isna(x) else f"{x:+.{digits}f}"


def _mean_std(mean, std) -> str:
    """`0.9012 ± 0.0123`; the mean alone when there is no spread to show (one fold: a sample
    std needs two), never `± nan`."""
    if mean is None or pd.isna(mean):
        return DASH
    return f"{mean:.4f} ± {std:.4f}" if std is not None and pd.notna(std) and math.isfinite(std) else f"{mean:.4f}"


def _value(v) -> str:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return DASH
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def _trial(report: Report, trial: str) -> str:
    """The trial's id with its marks: † its epochs were chosen on the test folds, § the study's
    objective chose it on the test folds."""
    return f"{trial}{DAGGER if report.is_oracle(trial) else ''}{SECTION if report.chosen_on_test(trial) else ''}"


def _oracle_footnote(report: Report, trials) -> list[str]:
    """The footnotes of the marks `_trial` puts on these trials."""
    trials = list(trials)
    notes = []
    if any(report.is_oracle(t) for t in trials):
        notes.append(f"{DAGGER} eval.select = {ORACLE}: each fold's epoch was chosen on its test fold, as the upstream code does; optimistic.")
    if any(report.chosen_on_test(t) for t in trials):
        notes.append(f"{SECTION} {TEST_SELECTED}: {_test_selection(report)}")
    return notes


TEST_SELECTED = "selected on test folds"


def _test_selection(report: Report) -> str:
    """Why the § figures are optimistic, in one sentence."""
    return (f"chosen by mean {report.study.metric} on the test folds among {plural(len(report.leaderboard), 'trial')}, so its test figures are optimistic "
            "(objective.on: val chooses on validation parts and keeps them honest).")


def _objective_label(report: Report) -> str:
    """The objective's column when it is not a test figure: `val PC`."""
    return f"val {METRICS[report.study.metric].label}"


def _folds_cell(report: Report, r) -> str:
    """`5/5`, or `5/5 ×3` for a trial whose every fold ran with 3 seeds."""
    return f"{r['folds']}/{report.k}" + (f" ×{r['seeds']}" if r["seeds"] > 1 else "")


def _seeds(report: Report) -> int:
    """The most seeds any trial ran a fold with (train.repeats)."""
    return int(report.leaderboard["seeds"].max()) if len(report.leaderboard) else 1


def _mean_note(report: Report) -> str:
    if _seeds(report) > 1:
        return ("Mean ± sample std over each trial's completed runs, every fold once per seed (train.repeats; folds `5/5 ×3`: 3 seeds per fold), "
                "as one sample of folds × seeds; the mean alone for a trial with one completed run.")
    return "Mean ± sample std over each trial's completed folds (the paper's convention); the mean alone for a trial with one completed fold."


# --- sections ---------------------------------------------------------------------------------


def leaderboard_section(report: Report, top: int) -> Section:
    board = report.leaderboard
    shown = board.head(top)
    extra = [t for t in (report.best, report.baseline) if t is not None and t not in shown.index]
    if extra:
        shown = pd.concat([shown, board.loc[extra]])
    rank = {t: i + 1 for i, t in enumerate(board.index)}
    knobs = report.knob_columns
    rows = []
    for trial, r in shown.iterrows():
        role = "best" if trial == report.best else ""
        if trial == report.baseline:
            role = "best, baseline" if role else "baseline"
        objective = {_objective_label(report): _mean_std(r[report.objective], r[f"{report.study.key}_std"])} if report.on_val else {}
        rows.append({
            "#": str(rank[trial]), "trial": _trial(report, trial), "role": role, "status": r["status"], "folds": _folds_cell(report, r), **objective,
            **{m.label: _mean_std(r[f"{name}_mean"], r[f"{name}_std"]) for name, m in METRICS.items()},
            **{c.removeprefix("param."): _value(r.get(c)) for c in knobs},
        })
    better = "higher" if report.study.direction == "max" else "lower"
    if report.on_val:
        ranked = (f"by the objective, mean {_objective_label(report)} ({better} is better: {report.study.metric} on a validation part held out of each "
                  f"training split, no test fold seen); {', '.join(m.label for m in METRICS.values())} beside are the test folds'")
    else:
        ranked = f"by mean {report.study.metric} over folds ({better} is better)"
    intro = f"{plural(len(board), 'trial')} ranked {ranked}; complete trials first, then incomplete, pruned and failed ones."
    if len(board) > len(shown):
        intro += f" Top {top} shown; all in leaderboard.csv."
    notes = [_mean_note(report)]
    return Section("leaderboard", "Leaderboard", pd.DataFrame(rows), leaderboard_csv(report), intro, notes + _oracle_footnote(report, shown.index))


def paper_section(report: Report) -> Section:
    t = report.paper
    rows = []
    for _, r in t.iterrows():
        published = r["source"] == "published"
        rows.append({
            "": "published" + DDAGGER if published else "ours",
            "method": r["method"] + (PILCROW if r["differs"] else ""),
            "trial": "" if published else _trial(report, r["trial_id"]),
            "trials": "" if published or pd.isna(r["trials"]) else str(int(r["trials"])),
            **{m.label: _mean_std(r[f"{name}_mean"], r[f"{name}_std"]) for name, m in METRICS.items()},
            **({_objective_label(report): DASH if published else _mean_std(r[report.objective], r[f"{report.study.key}_std"])} if report.on_val else {}),
        })
    by = report.by
    if by:
        intro = f"Best trial per {'quantile bin' if report.by_bins else 'level'} of {by}, in the paper's MAE | RMSE | PC format."
    else:
        intro = "The best trial, in the paper's MAE | RMSE | PC format (the study searches no categorical knob; choose one with --by)."
    intro += f" Dataset {report.study.dataset}, protocol {report.study.protocol}."
    if report.on_val:
        intro += f" Each row's trial is chosen by {_objective_label(report)} (validation parts); MAE, RMSE and PC are its test figures."
    notes = []
    if (t["source"] == "published").any():
        notes.append(f"{DDAGGER} Published figures, not ours: {paper.SOURCE}. They were obtained with the upstream code, which chooses the epoch on the test fold.")
    for _, r in t[t["differs"] != ""].iterrows():
        notes.append(f"{PILCROW} {r['method']} was measured with another configuration than ours beside it ({r['differs']}): not a like-for-like comparison.")
    return Section("paper", "Paper format", pd.DataFrame(rows), t, intro, notes + _oracle_footnote(report, t.loc[t["source"] == "ours", "trial_id"]))


def ci_cell(d, low, high) -> str:
    """`+0.0123 [+0.0050, +0.0196]`; the difference alone where there is no interval."""
    return f"{_signed(d)} [{_signed(low)}, {_signed(high)}]" if pd.notna(low) and pd.notna(high) else _signed(d)


def test_notes(k: int, seeds: int, draws: int, seed: int) -> list[str]:
    """What the paired tests and intervals of a comparison are, and what they cannot be: one
    text for the report's ablation and the paper's ordering and ablation blocks. The numbers
    behind it: bench/stats_null.py (type-I error of each test under a simulated null)."""
    if k >= 2:
        least = 2 / 2**k
        tests = (f"Paired over folds: each fold's seeds averaged first, then a paired t test (p t, and the 95% CI of ΔPC) and a Wilcoxon signed-rank test "
                 f"over the k = {k} folds both finished. A fold's runs share its images and what the configuration learnt from them: they are not "
                 f"independent replicates of the comparison. With k = {k} the smallest two-sided Wilcoxon p is 2/2^{k} = {least:.4g}"
                 + (": it cannot reach 0.05; the t test can." if least >= 0.05 else "."))
    else:
        tests = ("No p-value: one split" + (f" and {seeds} seeds" if seeds > 1 else "") + ". The seeds share the split's training and test images, "
                 "so they are not independent replicates of the comparison" + (f", and a two-sided Wilcoxon p over {seeds} seeds could not go below "
                 f"2/2^{seeds} = {2 / 2**seeds:.4g}" if seeds > 1 else "") + ". Only more splits (folds) can test whether the configurations differ.")
    boot = (f"ΔPC pooled (the CSV's oof_d_pc, oof_ci_low, oof_ci_high): PC difference on the pooled out-of-fold predictions with a {draws}-draw percentile "
            f"bootstrap 95% CI resampling test images{', each with all its runs' if seeds > 1 else ''} (seed {seed}): the evidence about these trained "
            "models on other faces. It holds the models fixed, so it does not count what a configuration learnt by chance from its training images; "
            "under a simulated null with such effects it excluded 0 far more often than 5% (bench/stats_null.py), so it is not printed as a test.")
    return [tests, boot] if draws > 0 else [tests]


def ablation_section(report: Report, draws: int, seed: int) -> Section:
    t = report.ablation
    m = report.study.metric
    label = METRICS[m].label
    reference = report.reference
    spread = _spread(report)
    rows = []
    for _, r in t.iterrows():
        noise = {f"seed sd ({label})": _num(r["seed_spread"]), "seed noise": WITHIN if r["within_seed_noise"] is True else ""} if spread is not None else {}
        rows.append({
            "comparison": r["knob"] if r["knob"] == "best trial" else f"{r['knob']} = {r['level']}",
            "trial": _trial(report, r["trial_id"]),
            "k": _num(r["k"]),
            **({f"Δ{_objective_label(report)}": _signed(r[f"d_{report.study.key}"])} if report.on_val else {}),
            "ΔPC [95% CI]": ci_cell(r["d_pc"], r["ci_low_pc"], r["ci_high_pc"]), "ΔMAE": _signed(r["d_mae"]), "ΔRMSE": _signed(r["d_rmse"]),
            **noise,
            f"p t ({m})": _p(r[f"t_p_{m}"]), f"p Wilcoxon ({m})": _p(r[f"wilcoxon_p_{m}"]),
        })
    if reference is not None and reference == report.baseline:
        against = "the baseline"
    else:
        against = "the best trial (no baseline trial)" if report.baseline is None else "the best trial (the baseline trial did not complete)"
    k = int(t["k"].max()) if len(t) and t["k"].notna().any() else max(report.k, 1)
    intro = f"Each row: a trial minus {against}, {_trial(report, reference) if reference else DASH}. For every level of each categorical knob the row is that level's best trial."
    if report.on_val:
        intro += f" Rows are chosen by {_objective_label(report)} (validation parts); the other Δ are test figures."
    seeds = _seeds(report)
    notes = [
        f"Δ = trial − reference, the mean over the k folds both finished of each fold's mean over its seeds{' (runs paired on fold and seed)' if seeds > 1 else ''}; "
        "ΔPC > 0 and ΔMAE, ΔRMSE < 0 are improvements.",
        *test_notes(k, seeds, draws, seed),
        _spread_note(report, t, spread),
    ]
    return Section("ablation", "Ablation", pd.DataFrame(rows), t, intro, notes + _oracle_footnote(report, [*t["trial_id"], *t["reference"]]))


WITHIN = "within seed noise"


def _spread(report: Report) -> tuple[float, int] | None:
    """(the reference's seed-to-seed spread, its seeds), None when it ran one seed."""
    value, seeds = report.seed_spread
    return (value, seeds) if np.isfinite(value) else None


def _spread_note(report: Report, t: pd.DataFrame, spread: tuple[float, int] | None) -> str:
    label = METRICS[report.study.metric].label
    if spread is None:
        return (f"Seed noise: not known, the reference ran one seed per fold (train.repeats: N trains every fold N times), so no Δ{label} here "
                "can be weighed against what reseeding alone moves.")
    value, seeds = spread
    inside = int(t["within_seed_noise"].eq(True).sum())
    return (f"Seed noise: the reference's seed-to-seed spread is {value:.4f} {label} (sample std over its {seeds} seeds of each seed's mean test {label} "
            f"over folds); {plural(inside, 'row')} with |Δ{label}| below it {'is' if inside == 1 else 'are'} marked '{WITHIN}': "
            "no larger than what reseeding the reference alone moves.")


def pooled_section(report: Report) -> Section:
    t = report.pooled
    rows = [{
        "role": r["role"], "trial": _trial(report, r["trial_id"]), "subset": r["subset"], "n": _num(r["n"]),
        **{m.label: _num(r[name]) for name, m in METRICS.items()},
    } for _, r in t.iterrows()]
    intro = "Out-of-fold predictions pooled over all folds (subset 'all') and per subset; not the fold mean of the tables above."
    if _seeds(report) > 1:
        intro += " Every run's predictions are pooled: n counts an image once per seed."
    return Section("pooled", "Pooled and per-subset out-of-fold metrics", pd.DataFrame(rows), t, intro, _oracle_footnote(report, t["trial_id"]))


def importance_section(report: Report) -> Section:
    t = report.importance
    rows = []
    for _, r in t.iterrows():
        if r["kind"] == "choice":
            space = "{" + ", ".join(str(c) for c in str(r["choices"]).split("|")) + "}" if r["choices"] else DASH
        elif pd.notna(r["low"]):
            space = f"[{r['low']:g}, {r['high']:g}]" + (" log" if r["log"] else "")
        else:
            space = DASH
        rows.append({
            "knob": r["knob"], "kind": r["kind"], "space": space, "importance": _num(r["importance"], 3),
            "best value": _value(r["best_value"]), "position": _num(r["position"], 2), "edge": r["edge"] or DASH,
        })
    intro = "How much each searched knob mattered (Optuna's importance on the study's journal), and where the best trial's value lies in its range (0 = low bound, 1 = high; log scale for log knobs)."
    notes = []
    if report.importance_method:
        notes.append(f"Importance: {report.importance_method}; importances sum to 1 over the knobs optuna evaluates.")
    notes.append("Edge: the best value lies within 5% of the range's width from a bound; the optimum may lie outside the space.")
    return Section("importance", "Knob importance and the edge of the space", pd.DataFrame(rows), t, intro, notes)


def status_section(report: Report) -> Section:
    t = report.status
    folds = [c for c in t.columns if c.startswith("fold_rows_")]
    header = {c: f"{c.removeprefix('fold_rows_').upper()} fold rows" for c in folds}
    rows = [{"trial status": r["status"], "trials": str(r["trials"]), **{header[c]: str(r[c]) for c in folds}} for _, r in t.iterrows()]
    if len(t):
        rows.append({"trial status": "total", "trials": str(t["trials"].sum()), **{header[c]: str(t[c].sum()) for c in folds}})
    intro = (
        f"Rows: trials by their status. COMPLETE: all {plural(report.k, 'fold')} completed. PRUNED: stopped by the scheduler (ASHA) after some folds. "
        "FAIL: raised an error. INCOMPLETE: fewer folds and no mark (running or killed). "
        f"Columns: those trials' rows in folds.parquet by each row's own status ({', '.join(ROW_STATUSES)}): "
        "a PRUNED trial's finished first fold is a COMPLETE fold row of a PRUNED trial."
    )
    return Section("status", "Trials and fold rows by status", pd.DataFrame(rows), t, intro)


def errors_section(report: Report) -> Section:
    t = report.errors
    rows = [{"error": r["error"], "trials": str(r["trials"]), "first trial": r["first_trial"]} for _, r in t.iterrows()]
    intro = "The distinct errors of FAIL trials (the last line of each trial's error), how many trials raised each, and the first trial that did."
    return Section("errors", "Errors of failed trials", pd.DataFrame(rows), t, intro, omitted="" if len(t) else "no trial failed")


def sections(report: Report, top: int = 20, draws: int = 2000, seed: int = 0) -> list[Section]:
    needs_a_complete_trial = [
        paper_section(report),
        ablation_section(report, draws, seed),
        pooled_section(report),
        importance_section(report),
    ]
    for s in needs_a_complete_trial:
        s.omitted = report.nothing_completed or ""
    return [leaderboard_section(report, top), *needs_a_complete_trial, status_section(report), errors_section(report)]


def header_lines(report: Report) -> list[str]:
    s = report.study
    counts = dict(zip(report.status["status"], report.status["trials"])) if len(report.status) else {}
    n = sum(counts.values())
    seeds = f", {plural(_seeds(report), 'seed')} per fold" if _seeds(report) > 1 else ""
    lines = [
        f"Results: `{s.results}`" + (f", spec_hash `{s.spec_hash}`" if s.spec_hash else ""),
        f"Dataset {s.dataset or DASH}, protocol {s.protocol or DASH}, {plural(report.k, 'fold')} per trial{seeds}, eval.select {s.select or DASH}; objective: {s.direction} {s.metric}.",
        f"{plural(n, 'trial')}: {counts.get('COMPLETE', 0)} complete, {counts.get('PRUNED', 0)} pruned, {counts.get('FAIL', 0)} failed, {counts.get('INCOMPLETE', 0)} incomplete.",
    ]
    if report.on_val:
        lines.append(f"Chosen on validation parts: trials are ranked by {s.key}, on a part held out of each training split (objective.on: val); "
                     f"every {', '.join(m.label for m in METRICS.values())} shown is the test folds'.")
    if report.selected_on_test and report.chosen:
        lines.append(f"**{SECTION} {TEST_SELECTED[0].upper()}{TEST_SELECTED[1:]}:** the objective read the test folds ({report.study.metric}) and chose among "
                     f"{plural(len(report.leaderboard), 'trial')}: the test figures of the trials it chose (the best, the best of each level shown), "
                     f"marked {SECTION} wherever they appear, are optimistic. objective.on: val chooses on validation parts and keeps them honest.")
    return lines + ([f"**{why[0].upper()}{why[1:]}: no best trial; the tables that need one are omitted.**"] if (why := report.nothing_completed) and n else [])


# --- Markdown ---------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(nothing to show)_"
    cols = list(frame.columns)
    lines = ["| " + " | ".join(_md_cell(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def markdown(report: Report, secs: list[Section], figures: list[Path]) -> str:
    out = [f"# Report: {report.study.name}", "", *header_lines(report), ""]
    for s in secs:
        out += [f"## {s.title}", ""]
        if s.omitted:
            out += [f"_Omitted: {s.omitted}._", ""]
            continue
        if s.intro:
            out += [s.intro, ""]
        out += [markdown_table(s.frame), ""]
        out += [f"- {n}" for n in s.footnotes]
        out += [""] if s.footnotes else []
    if figures:
        out += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in figures] + [""]
    if report.notes:
        out += ["## Notes: what this report could not compute or wants you to know", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(out)


# --- LaTeX (booktabs) -------------------------------------------------------------------------

_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_SYMBOLS = {"±": r"$\pm$", DAGGER: r"$^\dagger$", SECTION: r"$^{\S}$", PILCROW: r"$^{\P}$", DDAGGER: r"$^\ddagger$", "Δ": r"$\Delta$", "−": "$-$", DASH: "--", "…": r"\ldots{}", "×": r"$\times$"}


def tex_escape(text: str) -> str:
    out = "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))
    for symbol, macro in _TEX_SYMBOLS.items():
        out = out.replace(symbol, macro)
    return out


def tex_table(s: Section) -> str:
    cols = list(s.frame.columns)
    align = "".join("l" if not len(s.frame) or not _numeric_column(s.frame[c]) else "r" for c in cols) or "l"
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small", f"\\caption{{{tex_escape(s.title)}}}", f"\\label{{tab:fbp-{s.key}}}"]
    lines += [f"\\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(tex_escape(c) for c in cols) + r" \\", r"\midrule"]
    if s.frame.empty:
        lines.append(f"\\multicolumn{{{max(len(cols), 1)}}}{{l}}{{(nothing to show)}} \\\\")
    lines += [" & ".join(tex_escape(v) for v in row) + r" \\" for row in s.frame.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if s.footnotes:
        lines += [r"\par\smallskip\footnotesize"] + [tex_escape(n) + r"\par" for n in s.footnotes]
    lines.append(r"\end{table}")
    return "\n".join(lines)


def _numeric_column(col: pd.Series) -> bool:
    sample = [v for v in col.astype(str) if v not in ("", DASH)]
    return bool(sample) and all(v[:1].isdigit() or v[:1] in "+-." for v in sample)


def latex(report: Report, secs: list[Section]) -> str:
    head = [f"% fbp-search report of {report.study.name}; needs \\usepackage{{booktabs}}.", ""]
    return "\n".join(head + [(f"% {s.title}: omitted ({s.omitted})\n" if s.omitted else tex_table(s) + "\n") for s in secs])


# --- files and terminal -----------------------------------------------------------------------


def write_text(path: Path, text: str) -> Path:
    return write_atomic(path, text)


def write_csvs(out: Path, secs: list[Section]) -> list[Path]:
    paths = []
    for s in secs:
        path = out / f"{s.key}.csv"
        with atomic_path(path) as tmp:
            s.csv.to_csv(tmp, index=False)
        paths.append(path)
    return paths


def summary(console: Console, report: Report, written: list[Path], out: Path) -> None:
    for line in header_lines(report):
        parts = line.replace("`", "").split("**")  # **bold** as bold, the rest as written
        console.print(Text.assemble(*((part, "bold") if i % 2 else part for i, part in enumerate(parts))))
    board = report.leaderboard
    table = Table(title=f"{report.study.name}: best and baseline", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    labels = [*([_objective_label(report)] if report.on_val else []), *(m.label for m in METRICS.values())]
    for c in ("role", "trial", "folds", *labels):
        numbers = c in labels
        table.add_column(c, justify="right" if numbers or c == "folds" else "left", no_wrap=c != "trial", min_width=13 if numbers else None, overflow="fold")
    roles = [("best", report.best)] + ([("baseline", report.baseline)] if report.baseline and report.baseline != report.best else [])
    params = []
    for role, trial in roles:
        if trial is None:
            continue
        r = board.loc[trial]
        role = "best=base" if role == "best" and trial == report.baseline else role
        shown = [report.study.key] * report.on_val + list(NAMES)
        table.add_row(role, _trial(report, trial), _folds_cell(report, r), *(_mean_std(r[f"{m}_mean"], r[f"{m}_std"]).replace(" ± ", "±") for m in shown))
        if report.knob_columns:
            params.append(f"{role} params: " + ", ".join(f"{c.removeprefix('param.')}={_value(r.get(c))}" for c in report.knob_columns))
    if table.row_count:
        print_table(console, table)
    for line in params:
        console.print(line, soft_wrap=True)
    best_row = report.ablation[report.ablation["knob"] == "best trial"] if len(report.ablation) else report.ablation
    if len(best_row) and report.baseline and report.baseline != report.best:
        r = best_row.iloc[0]
        ci = f", pooled ΔPC {_signed(r['oof_d_pc'])} [{_signed(r['oof_ci_low'])}, {_signed(r['oof_ci_high'])}]" if pd.notna(r["oof_d_pc"]) else ""
        spread = _spread(report)
        label = METRICS[report.study.metric].label
        noise = f"; seed spread of the baseline {spread[0]:.4f} {label}" + (f": {WITHIN}" if r["within_seed_noise"] is True else "") if spread else "; seed spread unknown (one seed)"
        runs = plural(int(r["k"]), "(fold, seed) run") if _seeds(report) > 1 else plural(int(r["k"]), "fold")
        console.print(f"best vs baseline over {runs}: ΔPC {_signed(r['d_pc'])}, ΔMAE {_signed(r['d_mae'])}, ΔRMSE {_signed(r['d_rmse'])}{ci}{noise}")
    imp = report.importance.dropna(subset=["importance"]) if len(report.importance) else report.importance
    if len(imp):
        console.print("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in zip(imp["knob"].head(5), imp["importance"].head(5))))
    for n in report.notes:
        console.print(styled("note:", "yellow", n), soft_wrap=True)
    names = ", ".join(p.name for p in written)
    console.print(f"wrote {plural(len(written), 'file')} to {out}: {names}", soft_wrap=True)
