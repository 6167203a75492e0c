"""From a folder of results directories, one per study, to the paper's tables, Figure 2 and the
ablations, as numbers (rendering is `_render`, drawing `_plots`).

    RESULTS_ROOT/<study>/ for each study of STUDIES (a missing one: not run yet)
      -> search.report's build_report per study: the leaderboard (one row per trial, mean and
         sample std of the test metrics over its (fold, seed) runs), best, baseline, selection
      -> Tables 1-5: fbp.paper.TABLES' published rows in the paper's order, then ours: for each
         published row with a config, the trial whose values at those dotted paths match, and
         its difference to that row's published figure (for the ComboLoss row: the paper's
         ComboLoss figure)
      -> Tables 4 and 5: our ComboLoss row against each other row, paired t (with its CI of ΔPC)
         and Wilcoxon over the folds both have, each fold's seeds averaged
         (search.report._stats.paired_by_fold; one split: no test), the image bootstrap CI of
         the pooled PC difference, and whether the sign supports the paper's ordering
         (ComboLoss better than every row)
      -> Figure 2: Table 3's ComboLoss run, out-of-fold predictions averaged over seeds per
         image; the FIGURE_N smallest and largest |y_pred - y_true|, each image found through
         fbp.data.load_dataset at the study's data.root
      -> ablations: every trial of each ablation study against its baseline (or best trial)

Nothing here imports torch or Ray; what cannot be computed becomes a note, not an error.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fbp import paper
from fbp.config import field_at
from fbp.errors import InputError
from fbp.metrics import METRICS, NAMES
from search.report import _io
from search.report._build import ORACLE, Report, _bootstraps, _runs, _same, _with_seed, build_report, plural, row_status
from search.report._stats import paired_by_fold

STUDIES_DIR = "studies/paper"
"""Where the paper's study files live: `fbp-search run studies/paper/<name>.yaml` runs one."""
REHEARSAL = " --rehearsal"
"""What the commands of a rehearsal's document add (search.rehearsal)."""


def run_all(rehearsal: bool = False) -> str:
    """The command that runs every study of the paper (as a rehearsal)."""
    return f"fbp-search run {STUDIES_DIR}/" + (REHEARSAL if rehearsal else "")


RUN_ALL = run_all()

TABLE_STUDIES: dict[int, str] = {
    1: "table1_scut_fbp",
    2: "table2_hotornot",
    3: "table3_scut_fbp5500",
    4: "table4_losses",
    5: "table5_backbones",
}
"""The paper's table number -> the study (and results directory) that reproduces it."""
ORDERED_TABLES = (4, 5)
"""Tables whose text claims ComboLoss beats every other row: each comparison gets a paired test."""
FIGURE_TABLE = 3
"""Figure 2 shows the ComboLoss run of this table (SCUT-FBP5500, 5 folds)."""
ABLATIONS: dict[str, str] = {
    "ablation_discretization": "score discretization: loss.discretization.rule x num_classes",
    "ablation_schedule": "learning-rate schedule: train.schedule.name x train.lr",
    "ablation_weighted_ce": "class-weighted cross-entropy: loss.ce_weighted",
}
OTHER_STUDIES: dict[str, str] = {
    "readme_alpha_beta": "the ComboLoss weights alpha and beta of the published README",
    "joint_search": "a joint search over the knobs above",
}
BEYOND: dict[str, str] = {"beyond_backbones": "studies/beyond/backbones.yaml", "beyond_backbones_60_40": "studies/beyond/backbones_60_40.yaml"}
"""Studies beyond the paper -> their file, outside studies/paper/: run into the same results
root (--results ROOT/<name>), one section of the document (one study per protocol: a study
runs one split)."""
BEYOND_LOSSES = ("combo", "l1")
"""beyond_backbones: ComboLoss against this baseline, in every (backbone, protocol, arm) cell."""
BEYOND_CELL = ("model.backbone", "data.protocol")
STUDIES: tuple[str, ...] = (*TABLE_STUDIES.values(), *ABLATIONS, *OTHER_STUDIES, *BEYOND)

ARM_PATH = "published_code"
ARMS: dict[str, bool] = {"as written": False, "as published": True}
"""The two arms of every row of Tables 1-5, by the value of the table studies' searched
`published_code`: as written (the paper's equations, the last epoch, nothing chosen on a test
fold) and as published (what the published code did for that row, fbp.config.published_refill).
A study that does not search it runs the arm its own published_code says."""
FIGURE_ARM = "as written"
"""Figure 2 shows the ComboLoss run of this arm (the other where it has none)."""

PAPER_BACKBONE = "seresnext50_32x4d"
"""The paper's own backbone: the ComboLoss row of a table is the one on it."""
FIGURE_N = 6
"""Faces per row of Figure 2 (the paper: 6 precise, 6 inaccurate)."""
ALPHA = 0.05
DRAWS, SEED = 2000, 0
"""The image bootstrap of every paired comparison: draws and seed (as the report's defaults)."""


def run_command(name: str, rehearsal: bool = False, results: Path | None = None) -> str:
    """The command that runs one study of the paper (as a rehearsal); a study beyond it, into
    `results` (its directory under the paper's results root)."""
    if name in BEYOND:
        return f"fbp-search run {BEYOND[name]}" + (f" --results {results}" if results is not None else "") + (REHEARSAL if rehearsal else "")
    return f"fbp-search run {STUDIES_DIR}/{name}.yaml" + (REHEARSAL if rehearsal else "")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _float(value: Any) -> float:
    return float("nan") if _missing(value) else float(value)


# --- one study --------------------------------------------------------------------------------


@dataclass
class StudyResult:
    name: str
    path: Path
    state: str  # ok | missing (not run yet) | unreadable | empty (nothing completed)
    why: str = ""  # for every state but ok: one line
    report: Report | None = None
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # COMPLETE rows indexed (trial_id, fold, seed), test metrics
    originals: dict[str, dict[str, Any]] = field(default_factory=dict)  # a rehearsal's {path: {stand-in: the value it stands for}}
    rehearsal: bool = False  # the results of a rehearsal (search.rehearsal): its commands say --rehearsal

    @property
    def command(self) -> str:
        return run_command(self.name, self.rehearsal, self.path)

    @property
    def board(self) -> pd.DataFrame:
        return self.report.leaderboard if self.report is not None else pd.DataFrame()

    def has_runs(self, trial: str | None) -> bool:
        return trial is not None and len(self.runs) > 0 and trial in self.runs.index.get_level_values(0)

    def value_at(self, path: str) -> pd.Series:
        """Each trial's value at a dotted config path: its `param.<path>` where the study
        searched it (and the trial set it), else the study's own config value (None if none).
        In a rehearsal, a stand-in's value is the one it stands in for (search.rehearsal)."""
        board = self.board
        try:
            fixed = self.report.study.fixed(path)
        except KeyError:  # a study.yaml without the key (written before it existed): its default
            field = field_at(path)
            fixed = None if field is None else field.get_default(call_default_factory=True)
        column = f"param.{path}"
        values = board[column] if column in board.columns else pd.Series([None] * len(board), index=board.index, dtype=object)
        own = self.originals.get(path, {})
        values = [fixed if _missing(v) else v for v in values]
        return pd.Series([own.get(v, v) if isinstance(v, str) else v for v in values], index=board.index, dtype=object)

    def matching(self, config: dict[str, Any]) -> list[str]:
        """The trials whose values match every path of `config`, in the leaderboard's order
        (complete first, best first)."""
        board = self.board
        mask = pd.Series(True, index=board.index)
        for path, wanted in config.items():
            mask &= _same(self.value_at(path), wanted).to_numpy()
        return list(board.index[mask.to_numpy()])


def load_study_result(root: Path, name: str, cache: bool = True, rehearsal: dict | None = None) -> StudyResult:
    """`rehearsal`: the record of the rehearsal whose results `root` holds (search.rehearsal), None for real results."""
    from search.rehearsal import originals

    path = root / name
    marks = {"originals": originals(rehearsal), "rehearsal": rehearsal is not None}
    if not path.exists():
        return StudyResult(name, path, "missing", f"not run yet: {run_command(name, rehearsal is not None, path)}", **marks)
    try:
        report = build_report(path, draws=0, cache=cache)  # the document bootstraps its own comparisons (image_bootstrap), not the report's
        folds = _with_seed(_io.read_table(path, "folds", cache=path / "report" / ".cache" if cache else None))
    except InputError as e:
        return StudyResult(name, path, "unreadable", str(e), **marks)
    complete = folds[row_status(folds).eq("COMPLETE").to_numpy()] if len(folds) else folds
    runs = _runs(complete, list(NAMES)) if len(complete) else pd.DataFrame()
    if report.nothing_completed:
        return StudyResult(name, path, "empty", f"{report.nothing_completed}; continue it with `fbp-search resume {path}`", report, runs, **marks)
    return StudyResult(name, path, "ok", "", report, runs, **marks)


# --- Tables 1-5 -------------------------------------------------------------------------------


def combo_row(table) -> int | None:
    """The paper's ComboLoss row: its config trains ComboLoss on the paper's backbone (the last
    such row, where the paper puts "Ours"); None for a table without one."""
    combos = [i for i, r in enumerate(table.rows) if (r.config or {}).get("loss.name") == "combo"]
    own = [i for i in combos if table.rows[i].config.get("model.backbone", PAPER_BACKBONE) == PAPER_BACKBONE]
    return (own or combos or [None])[-1]


TABLE_COLUMNS = ["source", "row", "method", "arm", "reference", "trial_id", "status", "candidates", "folds", "seeds", "runs",
                 *(f"{m}_{s}" for m in NAMES for s in ("mean", "std")), *(f"paper_{m}" for m in NAMES), *(f"d_{m}" for m in NAMES),
                 "select", "selected_on_test"]
BOOT_COLUMNS = ["oof_n", "oof_d_pc", "oof_ci_low", "oof_ci_high"]
TEST_COLUMNS = ["k", "runs", *(f"d_{m}" for m in NAMES), "ci_low_pc", "ci_high_pc", *(f"{t}_p_{m}" for m in NAMES for t in ("t", "wilcoxon")), *BOOT_COLUMNS]
"""What `compare` and `image_bootstrap` give a comparison: k folds, runs paired, mean differences, the t test's CI of ΔPC, p-values, the image bootstrap."""
ORDERING_COLUMNS = ["arm", "row", "method", "trial_id", "combo_trial", *TEST_COLUMNS, *(f"supports_{m}" for m in NAMES), *(f"significant_{m}" for m in NAMES)]


@dataclass
class TableResult:
    number: int
    table: Any  # fbp.paper.PaperTable
    study: StudyResult
    frame: pd.DataFrame  # the published rows in the paper's order, then ours (TABLE_COLUMNS)
    ordering: pd.DataFrame  # Tables 4 and 5: ComboLoss against each other row (ORDERING_COLUMNS)
    combo: int | None  # the paper's ComboLoss row (index into table.rows)
    matched: dict[tuple[int, str], str]  # (published row, arm) -> our trial
    notes: list[str] = field(default_factory=list)  # the footnotes: selection, protocol, what is not in the study

    @property
    def ours(self) -> pd.DataFrame:
        return self.frame[self.frame["source"] == "ours"]


def _published_row(i: int, row) -> dict:
    return {"source": "published", "row": i, "method": row.method, "arm": "", "reference": row.citation, "trial_id": "", "status": "",
            **{f"{m}_mean": _float(getattr(row, m, None)) for m in NAMES}, "select": ORACLE}


def _our_row(i: int, row, arm: str, study: StudyResult, trials: list[str]) -> dict:
    out = {"source": "ours", "row": i, "method": row.method, "arm": arm, "reference": "", "trial_id": "", "status": "not in the study", "candidates": len(trials),
           **{f"paper_{m}": _float(getattr(row, m, None)) for m in NAMES}}
    if not trials:
        return out
    r = study.board.loc[trials[0]]
    out.update({"trial_id": trials[0], "status": r["status"], "folds": r["folds"], "seeds": r["seeds"], "runs": r["runs"], "select": r["select"] or study.report.study.select})
    for m in NAMES:
        out[f"{m}_mean"], out[f"{m}_std"] = r[f"{m}_mean"], r[f"{m}_std"]
        out[f"d_{m}"] = r[f"{m}_mean"] - out[f"paper_{m}"]  # NaN where the paper prints no figure
    out["selected_on_test"] = len(trials) > 1 and study.report.study.on == "test"
    return out


def compare(study: StudyResult, a: str, b: str) -> dict[str, Any]:
    """Paired tests of trial a against trial b on every test metric, over the folds both
    completed, each fold's seeds averaged (`paired_by_fold`): k, runs, d_<m> (mean of a - b),
    t_p_<m>, wilcoxon_p_<m>, and the t test's CI of the PC difference."""
    out: dict[str, Any] = {"k": 0, "runs": 0, "ci_low_pc": np.nan, "ci_high_pc": np.nan}
    for m in NAMES:
        out.update({f"d_{m}": np.nan, f"t_p_{m}": np.nan, f"wilcoxon_p_{m}": np.nan})
    if not (study.has_runs(a) and study.has_runs(b)):
        return out
    runs_a, runs_b = study.runs.loc[a], study.runs.loc[b]
    for m in NAMES:
        t = paired_by_fold(runs_a[m], runs_b[m])
        out.update({"k": t["k"], "runs": t["runs"], f"d_{m}": t["diff"], f"t_p_{m}": t["t_p"], f"wilcoxon_p_{m}": t["wilcoxon_p"]})
        if m == "pc":
            out.update(ci_low_pc=t["ci_low"], ci_high_pc=t["ci_high"])
    return out


def image_bootstrap(study: StudyResult, trials: list[str | None], reference: str | None, sign: int, draws: int, seed: int) -> list[dict[str, float]]:
    """The report's image bootstrap of each trial against `reference` (search.report._build's
    `_bootstraps`, draws shared), on the predictions both made; sign -1 turns trial - reference
    into reference - trial (the ordering's Δ is ComboLoss - row)."""
    wanted = {t for t in [*trials, reference] if t}
    empty = dict.fromkeys(BOOT_COLUMNS, np.nan)
    if reference is None or draws < 1 or not wanted:
        return [dict(empty) for _ in trials]
    predictions = _with_seed(_io.read_table(study.path, "predictions", trials=wanted))
    preds = {str(t): g for t, g in predictions.groupby(predictions["trial_id"].astype(str), sort=False)} if len(predictions) else {}
    out = []
    for trial, r in zip(trials, _bootstraps([t or "" for t in trials], reference, preds, draws, seed)):
        if not trial or trial == reference:
            out.append(dict(empty))
        elif sign > 0:
            out.append(r)
        else:
            out.append({**r, "oof_d_pc": -r["oof_d_pc"], "oof_ci_low": -r["oof_ci_high"], "oof_ci_high": -r["oof_ci_low"]})
    return out


def ordering_table(result: TableResult, alpha: float, draws: int = DRAWS, seed: int = SEED) -> pd.DataFrame:
    """In each arm with a ComboLoss trial, that trial against each other row's trial of the same
    arm: the paper's ordering holds for a row when ComboLoss is better on average over the
    shared runs (PC higher, MAE and RMSE lower)."""
    combo, study = result.combo, result.study
    rows = []
    for arm in ARMS:
        a = result.matched.get((combo, arm)) if combo is not None else None
        if a is None:
            continue
        arm_rows = []
        for i, row in enumerate(result.table.rows):
            if i == combo or not row.config:
                continue
            b = result.matched.get((i, arm))
            out = {"arm": arm, "row": i, "method": row.method, "trial_id": b or "", "combo_trial": a, **compare(study, a, b)}
            for m in NAMES:
                d, p = out[f"d_{m}"], out[f"t_p_{m}"]
                better = d > 0 if METRICS[m].direction == "max" else d < 0
                out[f"supports_{m}"] = bool(better) if np.isfinite(d) and d != 0 else None
                out[f"significant_{m}"] = bool(p < alpha) if np.isfinite(p) else None
            arm_rows.append(out)
        for out, boot in zip(arm_rows, image_bootstrap(study, [r["trial_id"] or None for r in arm_rows], a, -1, draws, seed)):
            out.update(boot)
        rows += arm_rows
    return pd.DataFrame(rows, columns=ORDERING_COLUMNS)


SELECT_WORDS = {
    "last": "the weights after the last epoch",
    "inner_val": "the epoch with the best PC on a part held out of the training fold",
    ORACLE: "the epoch with the best PC on the test fold",
}


def _table_notes(result: TableResult) -> list[str]:
    table, study = result.table, result.study
    s = study.report.study
    notes = []
    if s.dataset != table.dataset:
        notes.append(f"Run on dataset {s.dataset}, not the paper's {table.dataset}: our rows do not measure what the paper's do.")
    if s.protocol != table.protocol:
        notes.append(f"Run under protocol {s.protocol}, not the paper's {table.protocol}: another split of the data than the published figures'.")
    ours = result.ours
    matched = ours[ours["trial_id"].astype(bool)]
    arms = [a for a in ARMS if (matched["arm"] == a).any()]
    if len(arms) > 1:
        notes.append("as written: the paper's equations (eq. 1-6), the last epoch's weights, nothing chosen on a test fold. as published: "
                     "published_code: true, what the published code did for the row (its cross-entropy, classes, class weights, augmentation "
                     "and, for a regression-only row, its Adam; fbp.config.published_refill), each fold's epoch chosen on its test fold.")
    selects = sorted({str(v) for v in ours["select"] if isinstance(v, str) and v} or ({s.select} if s.select else set()))
    if ORACLE in selects:
        notes.append(f"† eval.select = {ORACLE}: each fold's epoch was chosen on its test fold, as the upstream code did: optimistic, as the published figures are.")
    if [x for x in selects if x != ORACLE]:
        words = "; ".join(f"{x}: {SELECT_WORDS.get(x, x)}" for x in selects if x != ORACLE)
        rows = " in the as written rows" if len(arms) > 1 else ""
        notes.append(f"Another selection than the paper's{rows}: eval.select = {', '.join(x for x in selects if x != ORACLE)} ({words}); "
                     "the published figures took each fold's epoch on its test fold, which favours them.")
    if s.on == "test" and s.searched:
        if (ours["candidates"].fillna(0) > 1).any():
            notes.append("§ The study searched on the test folds (objective.on: test): a row whose trial it chose among several trials of the row's "
                         "configuration has optimistic test figures.")
        else:
            notes.append("The study's objective read the test folds (objective.on: test), but every row here is the only trial of its configuration: none was chosen on them.")
    for arm, on in ARMS.items():
        rows = ours[ours["arm"] == arm]
        unmatched = [r["method"] for _, r in rows.iterrows() if not r["trial_id"]]
        if len(rows) and len(unmatched) == len(rows):
            notes.append(f"No {arm} trial in {study.name} (no trial with {ARM_PATH}: {str(on).lower()}): search {ARM_PATH} as the shipped study does.")
        elif unmatched:
            notes.append(f"Not in {study.name}: no {arm} trial with the config of {', '.join(unmatched)}.")
    several = ours[ours["candidates"].fillna(0) > 1]
    for _, r in several.iterrows():
        notes.append(f"{r['method']} ({r['arm']}): {int(r['candidates'])} trials match its config; the row is the best of them by the study's objective ({s.key}), {r['trial_id']}.")
    incomplete = ours[ours["trial_id"].astype(bool) & (ours["status"] != "COMPLETE")]
    for _, r in incomplete.iterrows():
        notes.append(f"{r['method']} ({r['arm']}): trial {r['trial_id']} is {r['status']}; its figures cover only the runs it completed.")
    return notes


def build_table(number: int, table, study: StudyResult, alpha: float, draws: int = DRAWS, seed: int = SEED) -> TableResult:
    published = [_published_row(i, row) for i, row in enumerate(table.rows)]
    result = TableResult(number, table, study, pd.DataFrame(published, columns=TABLE_COLUMNS), pd.DataFrame(columns=ORDERING_COLUMNS), combo_row(table), {})
    if study.state != "ok":
        return result
    ours = []
    for arm, on in ARMS.items():
        for i, row in enumerate(table.rows):
            if not row.config:
                continue
            trials = study.matching({**row.config, ARM_PATH: on})
            if trials:
                result.matched[(i, arm)] = trials[0]
            ours.append(_our_row(i, row, arm, study, trials))
    result.frame = pd.DataFrame(published + ours, columns=TABLE_COLUMNS)
    if number in ORDERED_TABLES and result.combo is not None:
        result.ordering = ordering_table(result, alpha, draws, seed)
    result.notes = _table_notes(result)
    return result


# --- Figure 2 ---------------------------------------------------------------------------------

FIGURE_COLUMNS = ["kind", "rank", "image", "subset", "folds", "seeds", "y_true", "y_pred", "error", "path", "drawn"]


@dataclass
class Figure2:
    trial_id: str | None
    picks: pd.DataFrame  # FIGURE_COLUMNS: the FIGURE_N best (smallest error) first, then the worst (largest first)
    images: str | None = None  # why the faces are not drawn (scores only); None when they are
    why: str = ""  # why there is no figure at all
    notes: list[str] = field(default_factory=list)


def extremes(predictions: pd.DataFrame, n: int = FIGURE_N) -> pd.DataFrame:
    """Per image, the mean prediction over its runs (seeds) and |mean - true|; the n smallest
    errors (kind best, rank 1 the smallest) and the n largest of the others (kind worst, rank 1
    the largest). Ties go by image name."""
    p = predictions.assign(image=predictions["image"].astype(str))
    subset = p["subset"].astype(str) if "subset" in p.columns else pd.Series("all", index=p.index)
    per = p.assign(subset=subset).groupby("image", sort=True).agg(
        subset=("subset", "first"), folds=("fold", lambda f: ",".join(str(int(x)) for x in sorted(set(f)))), seeds=("seed", "nunique"),
        y_true=("y_true", "mean"), y_pred=("y_pred", "mean"),
    ).reset_index()
    per["error"] = (per["y_pred"] - per["y_true"]).abs()
    best = per.sort_values(["error", "image"], kind="stable").head(n)
    worst = per.drop(best.index).sort_values(["error", "image"], ascending=[False, True], kind="stable").head(n)
    picks = pd.concat([best.assign(kind="best", rank=np.arange(1, len(best) + 1)), worst.assign(kind="worst", rank=np.arange(1, len(worst) + 1))], ignore_index=True)
    return picks.assign(path="", drawn=False)[FIGURE_COLUMNS]


def image_paths(study: _io.Study, images: list[str]) -> tuple[dict[str, Path], str | None]:
    """Where each image is, through the dataset's own loader at the study's data.root; and why
    the faces cannot be drawn (None when every one is found)."""
    data = study.config.get("data") or {}
    name, root, options = data.get("dataset"), data.get("root"), dict(data.get("options") or {})
    from fbp.data import load_dataset

    try:
        if name == "synthetic":  # generated on first use: look for a set already there, never generate one
            from fbp.data.faces import SynthParams
            from fbp.data.synthetic import load_synthetic, synthetic_root

            defaults = {k: p.default for k, p in inspect.signature(load_synthetic).parameters.items() if k != "root"}
            root = Path(root) if root else synthetic_root(SynthParams(**{**defaults, **options}))
            if not (root / "manifest.json").is_file():
                return {}, f"the synthetic set at {root} is not on this machine"
        elif not root:
            return {}, "study.yaml records no data.root"
        if not Path(root).is_dir():
            return {}, f"the dataset root {root} that study.yaml records is not reachable from this machine"
        dataset = load_dataset(name, root, check_images=False, **options)
    except (InputError, ValueError, OSError) as e:
        return {}, f"the dataset at {root} could not be read ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    paths = {i: dataset.image_path(i) for i in images if i in dataset.records}
    missing = [i for i in images if i not in paths or not paths[i].is_file()]
    if missing:
        return paths, f"{plural(len(missing), 'image')} not found under {dataset.image_dir} ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
    return paths, None


def build_figure2(table: TableResult) -> Figure2:
    study = table.study
    if study.state != "ok":
        return Figure2(None, pd.DataFrame(columns=FIGURE_COLUMNS), why=f"Table {table.number}'s study {study.name}: {study.why}")
    notes = []
    arms = sorted(ARMS, key=lambda arm: arm != FIGURE_ARM)
    trial = next((table.matched[(table.combo, arm)] for arm in arms if (table.combo, arm) in table.matched), None)
    if trial is not None and table.matched.get((table.combo, FIGURE_ARM)) != trial:
        notes.append(f"No {FIGURE_ARM} ComboLoss trial in {study.name}: the figure shows the other arm's, {trial}.")
    if trial is None:
        trial = study.report.best
        notes.append(f"No trial of {study.name} has the paper's ComboLoss config: the figure shows its best trial, {trial}.")
    predictions = _io.read_table(study.path, "predictions", trials={trial})
    if not len(predictions):
        return Figure2(trial, pd.DataFrame(columns=FIGURE_COLUMNS), why=f"no predictions.parquet rows for trial {trial} of {study.name}", notes=notes)
    picks = extremes(_with_seed(predictions))
    paths, unreachable = image_paths(study.report.study, picks["image"].tolist())
    picks["path"] = [str(paths[i]) if i in paths else "" for i in picks["image"]]
    picks["drawn"] = [bool(p) and Path(p).is_file() for p in picks["path"]]
    return Figure2(trial, picks, unreachable, notes=notes)


# --- ablations and the other studies ----------------------------------------------------------

ABLATION_COLUMNS_TAIL = ["status", "role", "folds", "seeds", "runs", *(f"{m}_{s}" for m in NAMES for s in ("mean", "std")), "reference",
                         *(c if c != "runs" else "paired_runs" for c in TEST_COLUMNS), "seed_spread", "within_seed_noise", "select"]


@dataclass
class AblationResult:
    study: StudyResult
    what: str
    knobs: list[str] = field(default_factory=list)  # the searched dotted paths, as the study lists them
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per trial, in the grid's order
    reference: str | None = None

    @property
    def short(self) -> str:
        return self.study.name.removeprefix("ablation_")


def level_label(value: Any) -> str:
    """A knob's value as tables and plots show it; `(not set)` where its condition left it unset."""
    if _missing(value):
        return "(not set)"
    return f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)


def sort_key(value: Any, choices: list | None = None) -> tuple:
    """A knob's values in the order the study's space lists them (its choices), else numbers in
    numeric order, then text; unset last."""
    if _missing(value):
        return (3, "")
    if choices:
        position = next((i for i, c in enumerate(choices) if _same(pd.Series([value], dtype=object), c).iloc[0]), None)
        if position is not None:
            return (-1, position)
    if isinstance(value, (bool, np.bool_)):
        return (1, str(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return (0, float(value))
    return (1, str(value))


def build_ablation(study: StudyResult, what: str, draws: int = DRAWS, seed: int = SEED) -> AblationResult:
    result = AblationResult(study, what)
    if study.state != "ok":
        return result
    report, board = study.report, study.board
    result.knobs = [k.path for k in report.study.knobs.values() if k.column in board.columns]
    result.reference = reference = report.reference
    spread = report.seed_spread[0]
    rows = []
    for trial, r in board.iterrows():
        role = ", ".join(x for x, t in (("baseline", report.baseline), ("best", report.best)) if t == trial)
        row = {"trial_id": trial, **{k: r[f"param.{k}"] for k in result.knobs}, "status": r["status"], "role": role,
               "folds": r["folds"], "seeds": r["seeds"], "runs": r["runs"], **{f"{m}_{s}": r[f"{m}_{s}"] for m in NAMES for s in ("mean", "std")},
               "reference": reference or "", "select": r["select"]}
        if reference is not None and trial != reference:
            tests = compare(study, trial, reference)
            tests["paired_runs"] = tests.pop("runs")
            row.update(tests)
        d = row.get(f"d_{report.study.metric}", np.nan)
        row["seed_spread"] = spread
        row["within_seed_noise"] = bool(abs(d) < spread) if np.isfinite(spread) and np.isfinite(d) else None
        rows.append(row)
    for row, boot in zip(rows, image_bootstrap(study, [r["trial_id"] for r in rows], reference, 1, draws, seed)):
        row.update(boot)
    frame = pd.DataFrame(rows, columns=["trial_id", *result.knobs, *ABLATION_COLUMNS_TAIL])
    if result.knobs:
        choices = {k: report.study.knobs[k].choices for k in result.knobs}
        order = sorted(range(len(frame)), key=lambda i: tuple(sort_key(frame.at[i, k], choices[k]) for k in result.knobs))
        frame = frame.iloc[order].reset_index(drop=True)
    result.frame = frame
    return result


# --- beyond the paper -------------------------------------------------------------------------

BEYOND_COLUMNS = ["study", *BEYOND_CELL, "arm", "combo_trial", "l1_trial", "pc_combo", "pc_combo_std", "pc_l1", "pc_l1_std", *TEST_COLUMNS]


@dataclass
class BeyondResult:
    studies: list[StudyResult]
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)  # BEYOND_COLUMNS: one row per (study, backbone, protocol, arm)


def build_beyond(studies: list[StudyResult], draws: int = DRAWS, seed: int = SEED) -> BeyondResult:
    """In every (backbone, protocol, arm) cell the studies ran, ComboLoss against L1: each one's
    test PC over its (fold, seed) runs, and the paired tests of ComboLoss - L1 over the folds
    both completed (`compare`), with the image bootstrap of the pooled PC difference."""
    frames = [_beyond_cells(study, draws, seed) for study in studies if study.state == "ok"]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=BEYOND_COLUMNS)
    return BeyondResult(studies, frame)


def _beyond_cells(study: StudyResult, draws: int, seed: int) -> pd.DataFrame:
    board = study.board
    values = {path: study.value_at(path) for path in (*BEYOND_CELL, ARM_PATH)}
    cells = sorted({tuple(values[p].loc[t] for p in (*BEYOND_CELL, ARM_PATH)) for t in board.index}, key=lambda c: tuple(str(v) for v in c))
    rows = []
    for *cell, on in cells:
        on = bool(on)
        config = {**dict(zip(BEYOND_CELL, cell)), ARM_PATH: on}
        trials = {loss: (study.matching({**config, "loss.name": loss}) or [None])[0] for loss in BEYOND_LOSSES}
        a, b = trials["combo"], trials["l1"]
        arm = next(name for name, value in ARMS.items() if value == on)
        row = {"study": study.name, **dict(zip(BEYOND_CELL, cell)), "arm": arm, "combo_trial": a or "", "l1_trial": b or ""}
        for loss, trial in trials.items():
            row[f"pc_{loss}"], row[f"pc_{loss}_std"] = (board.at[trial, "pc_mean"], board.at[trial, "pc_std"]) if trial else (np.nan, np.nan)
        row.update(compare(study, a, b))
        row.update(image_bootstrap(study, [a], b, 1, draws, seed)[0] if a and b else dict.fromkeys(BOOT_COLUMNS, np.nan))
        rows.append(row)
    order = {arm: i for i, arm in enumerate(ARMS)}
    frame = pd.DataFrame(rows, columns=BEYOND_COLUMNS)
    return frame.sort_values(["arm", *BEYOND_CELL], key=lambda c: c.map(order) if c.name == "arm" else c.astype(str), kind="stable").reset_index(drop=True)


# --- the whole document -----------------------------------------------------------------------


@dataclass
class Paper:
    root: Path
    studies: dict[str, StudyResult]
    tables: list[TableResult]
    figure2: Figure2
    ablations: list[AblationResult]
    beyond: list[BeyondResult] = field(default_factory=list)
    alpha: float = ALPHA
    rehearsal: dict | None = None  # the record of a rehearsal (search.rehearsal.read_record); None for real results
    draws: int = DRAWS  # the image bootstrap's draws and seed
    seed: int = SEED

    @property
    def missing(self) -> list[StudyResult]:
        return [s for s in self.studies.values() if s.state == "missing"]


def check_root(root: Path) -> None:
    if not root.exists():
        raise InputError(f"results root not found: {root} (give the folder that holds one results directory per study, e.g. results/)")
    if not root.is_dir():
        raise InputError(f"not a directory: {root} (give the folder that holds one results directory per study)")
    if (root / "study.yaml").is_file():
        raise InputError(f"{root} is one study's results directory; give the folder above it, which holds one per study "
                         f"({', '.join(STUDIES[:3])}, ...): `fbp-search report {root}` reports this one")


def build_paper(root: Path, alpha: float = ALPHA, cache: bool = True, draws: int = DRAWS, seed: int = SEED) -> Paper:
    from search.rehearsal import read_record

    root = Path(root)
    check_root(root)
    rehearsal = read_record(root)
    studies = {name: load_study_result(root, name, cache, rehearsal) for name in STUDIES}
    built = [build_table(n, paper.TABLES[n], studies[name], alpha, draws, seed) for n, name in TABLE_STUDIES.items()]
    by_number = {t.number: t for t in built}
    figure = build_figure2(by_number[FIGURE_TABLE])
    ablations = [build_ablation(studies[name], what, draws, seed) for name, what in ABLATIONS.items()]
    beyond = [build_beyond([studies[name] for name in BEYOND], draws, seed)]
    return Paper(root, studies, built, figure, ablations, beyond, alpha, rehearsal, draws, seed)
