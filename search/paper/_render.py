"""The document as text: Markdown (with the PNGs embedded), booktabs LaTeX and CSV.

Every table is built once as a `search.report._render.Section` of display strings, its CSV the
numbers, and written to each format from there, as the report does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fbp.metrics import METRICS, NAMES
from search.paper._build import (
    ABLATIONS,
    BEYOND,
    FIGURE_N,
    FIGURE_TABLE,
    ORACLE,
    OTHER_STUDIES,
    TABLE_STUDIES,
    AblationResult,
    BeyondResult,
    Paper,
    StudyResult,
    TableResult,
    level_label,
    run_all,
)
from search.report._build import plural
from search.report._render import DAGGER, DASH, DDAGGER, SECTION, Section, _mean_std, _num, _p, _signed, ci_cell, markdown_table, test_notes, tex_escape, tex_table

SIGNIFICANT = "*"  # a verdict whose paired t test gives p below alpha


@dataclass
class Block:
    """A part of the document: a heading, text, a table (a Section) and figures, in that order."""

    title: str
    level: int = 2
    text: list[str] = field(default_factory=list)
    section: Section | None = None
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)


def _published(value) -> str:
    return DASH if value is None or pd.isna(value) else f"{value:.4f}"


def _count(value) -> str:
    return DASH if value is None or pd.isna(value) else str(int(value))


def _runs_cell(r) -> str:
    if pd.isna(r.get("runs")) or not r.get("trial_id"):
        return DASH
    runs, folds, seeds = int(r["runs"]), int(r["folds"]), int(r["seeds"])
    return f"{runs} ({plural(folds, 'fold')} × {plural(seeds, 'seed')})" if seeds > 1 else f"{runs} ({plural(folds, 'fold')})"


def _marks(r) -> str:
    return (DAGGER if r.get("select") == ORACLE else "") + (SECTION if r.get("selected_on_test") is True else "")


def _state(study: StudyResult) -> str:
    return {"ok": "run", "missing": "not run yet", "empty": "nothing completed", "unreadable": "unreadable"}[study.state]


def _status(study: StudyResult) -> str:
    """Why a study has no rows to show, in one line: `not run yet: <command>`, the report's
    reason nothing completed, or why it cannot be read."""
    if study.state == "missing":
        return f"not run yet: {study.command}"
    return study.why if study.state == "empty" else f"{_state(study)}: {study.why}"


def _study_line(study: StudyResult) -> str:
    """One line on what a study ran: dataset, protocol, trials, runs, selection, objective."""
    s, board = study.report.study, study.board
    complete = int((board["status"] == "COMPLETE").sum())
    seeds = int(board["seeds"].max()) if len(board) else 1
    repeats = f" × {plural(seeds, 'seed')}" if seeds > 1 else ""
    objective = f"; searched, objective {s.key} on the {'validation parts' if s.on == 'val' else 'test folds'}" if s.searched else "; one configuration"
    return (f"`{study.path}`: dataset {s.dataset}, protocol {s.protocol}, {plural(study.report.k, 'fold')}{repeats}, "
            f"eval.select {s.select}, {complete} of {plural(len(board), 'trial')} complete{objective}.")


# --- the sections -----------------------------------------------------------------------------


def studies_section(paper: Paper) -> Section:
    rows, csv = [], []
    role = {**{name: f"Table {n}" for n, name in TABLE_STUDIES.items()}, **{name: "ablation" for name in ABLATIONS}, **{name: "other" for name in OTHER_STUDIES},
            **{name: "beyond the paper" for name in BEYOND}}
    for name, study in paper.studies.items():
        if study.state == "ok":
            command = f"fbp-search report {study.path}"
        elif study.state == "empty":
            command = f"fbp-search resume {study.path}"
        else:
            command = study.command
        board = study.board
        s = study.report.study if study.report is not None else None
        rows.append({
            "study": name, "for": role[name], "state": _state(study) + (f": {study.why}" if study.state == "unreadable" else ""),
            "trials": f"{int((board['status'] == 'COMPLETE').sum())}/{len(board)}" if study.report is not None else DASH,
            "data": f"{s.dataset} {s.protocol}" if s else DASH, "eval.select": (s.select or DASH) if s else DASH, "command": command,
        })
        csv.append({"study": name, "for": role[name], "state": study.state, "why": study.why, "path": str(study.path), "command": command,
                    "trials": len(board), "complete": int((board["status"] == "COMPLETE").sum()) if len(board) else 0,
                    "dataset": s.dataset if s else "", "protocol": s.protocol if s else "", "select": (s.select or "") if s else ""})
    missing = paper.missing
    intro = f"One results directory per study under `{paper.root}`."
    if missing:
        intro += f" {plural(len(missing), 'study', 'studies')} not run yet: each runs with the command beside it; `{run_all(paper.rehearsal is not None)}` runs them all."
    return Section("studies", "Studies", pd.DataFrame(rows), pd.DataFrame(csv), intro)


def _paper_note() -> str:
    return f"{DDAGGER} Published figures (Xu & Xiang 2020), from the upstream code, which chose each fold's epoch on its test fold: optimistic."


def table_block(result: TableResult) -> Block:
    table, study = result.table, result.study
    metrics = [m for m in table.metrics if m in METRICS]
    rows = []
    for _, r in result.frame.iterrows():
        ours = r["source"] == "ours"
        row = {"": f"ours{_marks(r)}" if ours else f"published{DDAGGER}", "Model": r["method"], "arm": r["arm"] if ours else ""}
        for m in metrics:
            row[METRICS[m].label] = _mean_std(r[f"{m}_mean"], r[f"{m}_std"]) if ours else _published(r[f"{m}_mean"])
        for m in metrics:
            row[f"Δ{METRICS[m].label}"] = _signed(r[f"d_{m}"]) if ours else ""
        row["runs"] = _runs_cell(r) if ours else ""
        row["trial"] = (r["trial_id"] or DASH) if ours else ""
        rows.append(row)
    block = Block(f"Table {result.number}. {table.caption}")
    if study.state == "ok":
        block.text = [_study_line(study),
                      "The published rows in the paper's order, then ours in two arms, as written and as published: for each row the paper gives a "
                      "configuration of, the trial with that configuration in that arm, its test figures as mean ± sample std over its (fold, seed) runs, "
                      "and Δ = ours − the paper's figure of the same row (for ComboLoss, the paper's ComboLoss figure)."]
    elif study.state == "missing":
        block.text = [f"**Not run yet.** Run it with `{study.command}` (or every study of the paper with `{run_all(study.rehearsal)}`); the published rows alone for now."]
    else:
        block.text = [f"**{study.name}**: {_status(study)}. The published rows alone."]
    notes = [_paper_note(), *result.notes]
    if study.state == "ok":
        notes.insert(1, "± : sample std over all the trial's (fold, seed) runs, one sample of folds × seeds (train.repeats); the mean alone for one run.")
    block.section = Section(f"table{result.number}", block.title, pd.DataFrame(rows), result.frame, footnotes=notes)
    return block


def _verdict(supports, significant) -> str:
    if supports is not True and supports is not False:
        return DASH
    return ("supports" if supports else "contradicts") + (SIGNIFICANT if significant is True else "")


ORDERING_METRICS = ("pc", *(m for m in NAMES if m != "pc"))
"""PC first: the paper's orderings are claims about PC; the others follow in table order."""


def ordering_block(result: TableResult, alpha: float, draws: int, seed: int) -> Block | None:
    if result.study.state != "ok" or result.combo is None:
        return None
    t = result.ordering
    combo = result.table.rows[result.combo].method
    trials = {arm: trial for (row, arm), trial in result.matched.items() if row == result.combo}
    rows = [{
        "arm": r["arm"], "ComboLoss vs": r["method"], "trial": r["trial_id"] or DASH, "k": _count(r["k"]),
        "ΔPC [95% CI]": ci_cell(r["d_pc"], r["ci_low_pc"], r["ci_high_pc"]), "p t (PC)": _p(r["t_p_pc"]), "p Wilcoxon (PC)": _p(r["wilcoxon_p_pc"]),
        **{f"order {METRICS[m].label}": _verdict(r[f"supports_{m}"], r[f"significant_{m}"]) for m in ORDERING_METRICS},
    } for _, r in t.iterrows()]
    block = Block(f"Table {result.number}: does ours support the paper's ordering?", level=3)
    if not trials:
        block.text = [f"No trial of {result.study.name} has the configuration of the paper's ComboLoss row ({combo}): nothing to compare."]
    else:
        tested = t["t_p_pc"].notna().any()
        counts = []
        for arm, trial in trials.items():
            a = t[t["arm"] == arm]
            decided = a["supports_pc"].map(lambda v: v is True or v is False)
            yes = int(a["supports_pc"].map(lambda v: v is True).sum())
            strong = int((a["supports_pc"].map(lambda v: v is True) & a["significant_pc"].map(lambda v: v is True)).sum())
            counts.append(f"{arm} ({trial}), {yes} of {plural(int(decided.sum()), 'row')}" + (f" ({strong} with a paired t test p below {alpha:g})" if tested else ""))
        block.text = [
            f"The paper ranks {combo} above every other row. In each arm, our {combo} against each other row of the same arm, paired over the folds both "
            f"completed, each fold's seeds averaged: Δ = ComboLoss − row. On PC our results support the ordering in {'; in '.join(counts)}"
            + ("." if tested else "; one split, so no test says whether the configurations differ (see the notes).")
        ]
    k = int(t["k"].max()) if len(t) and t["k"].notna().any() else 0
    seeds = int(result.study.board["seeds"].max()) if len(result.study.board) else 1
    notes = [
        f"supports: ComboLoss better on average over the k shared folds (PC higher; MAE, RMSE lower); contradicts: worse; {SIGNIFICANT}: paired t test p below {alpha:g}.",
        *test_notes(k, seeds, draws, seed),
    ]
    block.section = Section(f"table{result.number}_ordering", block.title, pd.DataFrame(rows), t, footnotes=notes)
    return block


def figure_block(paper: Paper) -> Block:
    figure = paper.figure2
    study = paper.studies[TABLE_STUDIES[FIGURE_TABLE]]
    block = Block("Figure 2. The most and least accurately predicted faces")
    if figure.why:
        block.text = [f"**No figure:** {figure.why}."]
        return block
    seeds = int(figure.picks["seeds"].max()) if len(figure.picks) else 1
    block.text = [
        f"The paper's Figure 2 shows 6 precisely and 6 inaccurately predicted faces of SCUT-FBP5500. Here: trial {figure.trial_id} of {study.name}, its out-of-fold "
        f"predictions averaged over its {plural(seeds, 'seed')} per image; the {FIGURE_N} smallest |predicted − true| (top row, the smallest first) and the "
        f"{FIGURE_N} largest (bottom row, the largest first). Green: the true score; red: the predicted one.",
        *figure.notes,
    ]
    if figure.images:
        block.text.append(f"**Faces not drawn:** {figure.images}; the figure shows the scores only (run this command where the dataset is).")
    rows = [{
        "row": "most accurate" if r["kind"] == "best" else "least accurate", "#": str(r["rank"]), "image": r["image"], "subset": r["subset"], "fold": r["folds"],
        "true": _num(r["y_true"], 3), "predicted": _num(r["y_pred"], 3), "abs. error": _num(r["error"], 3), "seeds": str(r["seeds"]), "face drawn": "yes" if r["drawn"] else "no",
    } for _, r in figure.picks.iterrows()]
    block.section = Section("figure2", "Figure 2: the faces shown", pd.DataFrame(rows), figure.picks)
    block.figures = [("figure2.png", f"Figure 2 (ours): trial {figure.trial_id} of {study.name}; green true score, red predicted score.")]
    return block


def ablation_block(result: AblationResult, paper: Paper) -> Block:
    study = result.study
    block = Block(f"{study.name}: {result.what}", level=3)
    if study.state != "ok":
        block.text = [f"**Not run yet.** Run it with `{study.command}`." if study.state == "missing" else f"**{study.name}**: {_status(study)}."]
        return block
    report = study.report
    spread, seeds = report.seed_spread
    label = METRICS[report.study.metric].label
    rows = []
    for _, r in result.frame.iterrows():
        rows.append({
            "trial": r["trial_id"] + (DAGGER if r["select"] == ORACLE else ""), **{k: level_label(r[k]) for k in result.knobs}, "status": r["status"], "role": r["role"],
            **{METRICS[m].label: _mean_std(r[f"{m}_mean"], r[f"{m}_std"]) for m in NAMES},
            "ΔPC [95% CI]": ci_cell(r["d_pc"], r["ci_low_pc"], r["ci_high_pc"]), "k": _count(r["k"]), "p t (PC)": _p(r["t_p_pc"]), "p Wilcoxon (PC)": _p(r["wilcoxon_p_pc"]),
            "seed noise": "within" if r["within_seed_noise"] is True else "",
        })
    against = "the baseline" if result.reference is not None and result.reference == report.baseline else "the best trial"
    block.text = [_study_line(study),
                  f"Every trial, in the grid's order: test figures as mean ± sample std over its (fold, seed) runs; Δ = trial − {against} "
                  f"({result.reference or DASH}), paired over the folds both completed, each fold's seeds averaged."]
    k = int(result.frame["k"].max()) if result.frame["k"].notna().any() else 0
    notes = test_notes(k, seeds, paper.draws, paper.seed)
    if np.isfinite(spread):
        notes.append(f"seed noise: the reference's seed-to-seed spread is {spread:.4f} {label} (sample std over its {seeds} seeds of each seed's mean over folds); "
                     f"'within': the absolute Δ{label} is below it.")
    else:
        notes.append("seed noise: unknown, the reference ran one seed per fold (train.repeats trains every fold several times).")
    if (result.frame["select"] == ORACLE).any():
        notes.append(f"{DAGGER} eval.select = {ORACLE}: each fold's epoch chosen on its test fold; optimistic.")
    if report.selected_on_test:
        notes.append(f"{SECTION} The study searched on the test folds (objective.on: test): its best trial's test figures are optimistic.")
    block.section = Section(f"ablation_{result.short}", block.title, pd.DataFrame(rows), result.frame, footnotes=notes)
    block.figures = [(f"ablation_{result.short}.png", f"{study.name}: test PC per trial (mean ± std over folds × seeds).")]
    return block


def others_block(paper: Paper) -> Block:
    rows, csv = [], []
    for name, what in OTHER_STUDIES.items():
        study = paper.studies[name]
        if study.state != "ok":
            continue
        report, board = study.report, study.board
        best = board.loc[report.best]
        params = ", ".join(f"{k.path}={level_label(best.get(k.column))}" for k in report.study.knobs.values() if k.column in board.columns)
        rows.append({"study": name, "what": what, "trials": f"{int((board['status'] == 'COMPLETE').sum())}/{len(board)}", "best trial": report.best,
                     "chosen by": f"{report.study.key} ({'validation parts' if report.on_val else 'test folds'})", "params": params or DASH,
                     **{METRICS[m].label: _mean_std(best[f"{m}_mean"], best[f"{m}_std"]) for m in NAMES}})
        csv.append({"study": name, "best": report.best, "objective": report.study.key, "params": params, **{f"{m}_{s}": best[f"{m}_{s}"] for m in NAMES for s in ("mean", "std")}})
    block = Block("Other studies")
    if not rows:
        block.text = ["None run yet (see Studies for their commands)."]
        return block
    block.text = ["The best trial of each, chosen by the study's own objective; `fbp-search report RESULTS` gives a study's whole report."]
    notes = [f"{SECTION} A study whose objective read the test folds chose its best on them: its test figures are optimistic."] if any(
        paper.studies[n].report.selected_on_test for n in OTHER_STUDIES if paper.studies[n].state == "ok") else []
    block.section = Section("other_studies", "Other studies", pd.DataFrame(rows), pd.DataFrame(csv), footnotes=notes)
    return block


def beyond_block(result: BeyondResult, paper: Paper) -> Block:
    """Does ComboLoss's gain over L1 hold on modern backbones: one row per (backbone, protocol, arm)."""
    block = Block("Beyond the paper: ComboLoss against L1 on modern backbones")
    ran = [study for study in result.studies if study.state == "ok"]
    others = [f"**{study.name}**: {_status(study)}." for study in result.studies if study.state != "ok"]
    if not ran:
        block.text = others
        return block
    t = result.frame
    rows = [{
        "backbone": r["model.backbone"], "protocol": r["data.protocol"], "arm": r["arm"],
        "ComboLoss PC": _mean_std(r["pc_combo"], r["pc_combo_std"]), "L1 PC": _mean_std(r["pc_l1"], r["pc_l1_std"]), "k": _count(r["k"]),
        "ΔPC [95% CI]": ci_cell(r["d_pc"], r["ci_low_pc"], r["ci_high_pc"]), "p t (PC)": _p(r["t_p_pc"]),
        "gain holds": _verdict(bool(r["d_pc"] > 0) if np.isfinite(r["d_pc"]) and r["d_pc"] != 0 else None,
                               bool(r["t_p_pc"] < paper.alpha) if np.isfinite(r["t_p_pc"]) else None),
        "trials": f"{r['combo_trial'] or DASH} / {r['l1_trial'] or DASH}",
    } for _, r in t.iterrows()]
    decided = t["d_pc"].map(lambda d: np.isfinite(d) and d != 0)
    holds = int((t["d_pc"] > 0).sum())
    block.text = [*(_study_line(study) for study in ran), *others,
                  f"ComboLoss 2/1/1 against L1 on each backbone, protocol and arm, paired over the folds both completed, each fold's seeds averaged: "
                  f"Δ = ComboLoss − L1. ComboLoss's PC is the higher in {holds} of {plural(int(decided.sum()), 'cell')}."]
    k = int(t["k"].max()) if len(t) and t["k"].notna().any() else 0
    seeds = max(int(study.board["seeds"].max()) if len(study.board) else 1 for study in ran)
    notes = [f"gain holds: supports when ComboLoss's mean PC is the higher, contradicts when it is the lower; {SIGNIFICANT}: paired t test p below {paper.alpha:g} "
             "(5 folds; the 60/40 split has one, so no test).", *test_notes(k, seeds, paper.draws, paper.seed)]
    block.section = Section("beyond_backbones", block.title, pd.DataFrame(rows), t, footnotes=notes)
    return block


def reproducer_block() -> Block:
    """What a reproducer needs to read the published figures: the README's averages checked
    against its own fold rows, which run Table 5's ResNet18 + ComboLoss row printed, and
    SCUT-FBP5500 results published since, for context."""
    from fbp.paper import LATER_RESULTS, README, TABLE5_RESNET18_NOTE, readme_averages

    text = []
    for check in readme_averages():
        printed = " / ".join(f"{check.printed[m]:.4f}" for m in NAMES)
        mean = " / ".join(f"{check.mean[m]:.4f}" for m in NAMES)
        if check.agrees:
            text.append(f"The README's {check.dataset} {check.protocol} average ({printed}, MAE / RMSE / PC) is the mean of its five fold rows.")
        else:
            text.append(f"The README's {check.dataset} {check.protocol} average row ({printed}, MAE / RMSE / PC; Table 1 prints its PC) is **not** the mean "
                        f"of its own five fold rows ({mean}): compare a reproduction with both.")
    text.append(TABLE5_RESNET18_NOTE)
    text.append(f"Fold rows and averages: {README}.")
    rows = [{"method": r.method, "year": r.year or DASH, "PC": r.pc, "split": r.split} for r in LATER_RESULTS]
    section = Section("later_results", "SCUT-FBP5500 results published since, for context", pd.DataFrame(rows), pd.DataFrame(rows),
                      footnotes=["Not comparable to the tables above unless the split is the same; none of these is a row of the paper."])
    return Block("Notes for a reproducer", text=text, section=section)


def rehearsal_block(paper: Paper) -> Block | None:
    """First, in a rehearsal's document: what its figures are, and which row each stand-in fills."""
    record = paper.rehearsal
    if record is None:
        return None
    overrides = record.get("overrides") or {}
    faces = record.get("faces") or {}
    stand_ins = "; ".join(f"{path} {small} for {value}" for path, own in (record.get("stand_ins") or {}).items() for value, small in own.items())
    return Block("Rehearsal: not the paper's figures", text=[
        f"**Every study under `{paper.root}` ran as a rehearsal** (`{run_all(True)}`, search.rehearsal): {faces.get('n', DASH)} drawn faces "
        f"in each dataset's layout instead of the dataset, a small randomly initialised model for {overrides.get('train.epochs', DASH)} epochs at "
        f"{overrides.get('data.image_size', DASH)} px, at most {record.get('max_repeats', DASH)} seeds, a search cut to {record.get('proposed', DASH)} "
        "trials beyond its baseline points. The tables, figure and ablations show that every study runs and lands in its rows; their figures say nothing about the paper.",
        f"Stand-ins, each in the rows of what it stands in for: {stand_ins or DASH}.",
    ])


def blocks(paper: Paper) -> list[Block]:
    studies = studies_section(paper)
    out = [Block("Studies", text=[studies.intro], section=studies)]
    rehearsal = rehearsal_block(paper)
    if rehearsal is not None:
        out.insert(0, rehearsal)
    studies.intro = ""
    for result in paper.tables:
        out.append(table_block(result))
        ordering = ordering_block(result, paper.alpha, paper.draws, paper.seed) if result.number in (4, 5) else None
        if ordering is not None:
            out.append(ordering)
    out.append(figure_block(paper))
    out.append(Block("Ablations", text=["SCUT-FBP5500, as the paper's section 3.4: one table and one plot per ablation study."]))
    out += [ablation_block(result, paper) for result in paper.ablations]
    out.append(others_block(paper))
    out += [beyond_block(result, paper) for result in paper.beyond]
    out.append(reproducer_block())
    return out


# --- formats ----------------------------------------------------------------------------------

TITLE = "ComboLoss (Xu & Xiang 2020): the paper's tables and figure, reproduced"


def markdown(paper: Paper, parts: list[Block], drawn: set[str]) -> str:
    out = [f"# {TITLE}", ""]
    for block in parts:
        out += ["#" * block.level + f" {block.title}", ""]
        for line in block.text:
            out += [line, ""]
        s = block.section
        if s is not None:
            out += [markdown_table(s.frame), ""]
            out += [f"- {n}" for n in s.footnotes]
            out += [""] if s.footnotes else []
        for name, caption in block.figures:
            if name in drawn:
                out += [f"![{caption}]({name})", ""]
    return "\n".join(out)


def _tex(text: str) -> str:
    """Running text for LaTeX: escaped, `code` as typewriter, ** dropped, <, > and | in math
(text fonts print other glyphs there)."""
    parts = str(text).replace("**", "").split("`")
    out = []
    for i, part in enumerate(parts):
        escaped = tex_escape(part).replace("<", "$<$").replace(">", "$>$").replace("|", "$|$")
        out.append(f"\\texttt{{{escaped}}}" if i % 2 else escaped)
    return "".join(out)


def latex(paper: Paper, parts: list[Block], drawn: set[str]) -> str:
    out = [f"% {TITLE}; written by fbp-search paper; needs \\usepackage{{booktabs}} and \\usepackage{{graphicx}}.", ""]
    commands = {1: "section", 2: "section", 3: "subsection"}
    for block in parts:
        out.append(f"\\{commands.get(block.level, 'subsection')}*{{{_tex(block.title)}}}")
        out += [_tex(line) + "\n" for line in block.text]
        if block.section is not None:
            out += [tex_table(block.section), ""]
        for name, caption in block.figures:
            if name in drawn:
                out += [r"\begin{figure}[htbp]", r"\centering", f"\\includegraphics[width=\\linewidth]{{{name}}}", f"\\caption{{{_tex(caption)}}}", r"\end{figure}", ""]
    return "\n".join(out)


# --- terminal ---------------------------------------------------------------------------------


def summary(console, paper: Paper, written: list[Path], out: Path) -> None:
    """A line per table (ours beside the paper's ComboLoss figure, or the command that runs
    it), Figure 2, the ablations, then the files."""
    if paper.rehearsal is not None:
        console.print(f"a rehearsal's results ({paper.root}): drawn faces and small models; the figures check the pipeline, not the paper", soft_wrap=True)
    for result in paper.tables:
        study, head = result.study, f"Table {result.number} ({result.study.name})"
        if study.state != "ok":
            console.print(f"{head}: {_status(study)}", soft_wrap=True)
            continue
        combo = result.ours[result.ours["row"] == result.combo] if result.combo is not None else result.ours.iloc[0:0]
        combo = combo[combo["trial_id"].astype(bool)]
        if not len(combo):
            console.print(f"{head}: no trial has the paper's ComboLoss config", soft_wrap=True)
            continue
        arms = []
        for _, r in combo.iterrows():
            arm = f"{r['arm']} {_mean_std(r['pc_mean'], r['pc_std'])} (Δ {_signed(r['d_pc'])}){_marks(r)}"
            ordering = result.ordering[result.ordering["arm"] == r["arm"]]
            if len(ordering):
                arm += f", ordering holds for {int(ordering['supports_pc'].map(lambda v: v is True).sum())} of {plural(len(ordering), 'row')}"
            arms.append(arm)
        line = f"{head}: ComboLoss PC vs the paper's {_published(combo.iloc[0]['paper_pc'])}: {'; '.join(arms)}"
        if any(not n.startswith(DDAGGER) and ("protocol" in n or "Another selection" in n or "dataset" in n) for n in result.notes):
            line += " (run under another protocol or selection than the paper's: see the document)"
        console.print(line, soft_wrap=True)
    figure = paper.figure2
    if figure.why:
        console.print(f"Figure 2: {figure.why}", soft_wrap=True)
    else:
        console.print(f"Figure 2: trial {figure.trial_id}, {FIGURE_N} best and {FIGURE_N} worst faces" + (f"; faces not drawn: {figure.images}" if figure.images else ""), soft_wrap=True)
    for result in paper.ablations:
        study = result.study
        if study.state != "ok":
            console.print(f"{study.name}: {_status(study)}", soft_wrap=True)
        else:
            console.print(f"{study.name}: {plural(len(result.frame), 'trial')} against {result.reference}", soft_wrap=True)
    if paper.missing:
        console.print(f"{plural(len(paper.missing), 'study', 'studies')} not run yet; `{run_all(paper.rehearsal is not None)}` runs them all", soft_wrap=True)
    console.print(f"wrote {plural(len(written), 'file')} to {out}: {', '.join(p.name for p in written)}", soft_wrap=True)
