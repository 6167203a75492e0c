"""From a results directory to the report's tables, as numbers (rendering is `_render`).

    load study.yaml + folds -> leaderboard (one row per trial, ranked by the objective: the
      validation parts' metric or the test folds') -> best and baseline
      -> paper-format table (best per level of --by, published rows beside)
      -> ablation (best per level of each categorical knob vs the baseline; paired tests over
         folds, each fold's seeds averaged (_stats.paired_by_fold), the baseline's seed-to-seed
         spread, the image bootstrap CI on out-of-fold predictions)
      -> pooled and per-subset metrics -> importance (journal) and edge-of-space check
      -> trials and fold rows by status, the distinct errors of failed trials

Everything per trial is a pandas groupby over the folds table; predictions and epochs are read
only for the few trials that are compared. What cannot be computed becomes a note, not an error.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fbp import paper
from fbp.errors import InputError
from fbp.metrics import NAMES, VAL_NAMES
from search.outcome import distinct_errors
from search.report import _io
from search.report._stats import (
    bootstrap_pc_differences,
    fold_summary,
    paired_by_fold,
    pooled,
    seed_spread,
)
from search.results import expected_folds, trial_status

STATUS_ORDER = {"COMPLETE": 0, "INCOMPLETE": 1, "PRUNED": 2, "FAIL": 3}  # a trial's status
ROW_STATUSES = ("COMPLETE", "PRUNED", "FAIL")  # a fold row's status, as the writers set it
ORACLE = "test_oracle"
MAX_LEVELS = 12  # an integer --by knob with more distinct values is cut into quantile bins
BINS, PER_BIN = 5, 3  # quantile bins for --by: at most BINS, of at least PER_BIN trials each
EDGE = 0.05  # the best value within 5% of a bound sits on the edge of the space


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 fold`, `2 folds`, `0 folds`."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


@dataclass
class Report:
    study: _io.Study
    k: int  # folds a complete trial trains
    leaderboard: pd.DataFrame  # one row per trial, ranked (see LEADERBOARD_COLUMNS)
    best: str | None
    baseline: str | None
    by: str | None
    paper: pd.DataFrame
    ablation: pd.DataFrame
    pooled: pd.DataFrame
    importance: pd.DataFrame
    status: pd.DataFrame
    history: pd.DataFrame  # trials in the order they started: order, trial_id, status, objective, best_so_far
    best_predictions: pd.DataFrame
    best_epochs: pd.DataFrame
    best_folds: pd.DataFrame
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)  # error, trials, first_trial
    by_bins: bool = False  # the paper table's levels are quantile bins of a numeric --by knob
    importance_method: str | None = None
    chosen: set[str] = field(default_factory=set)  # the trials the objective chose: the best, the best of each level shown
    seed_spread: tuple[float, int] = (float("nan"), 0)  # the reference's seed-to-seed spread of the test metric, and its seeds
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def objective(self) -> str:
        """The leaderboard column trials are ranked by: `pc_mean`, or `val_pc_mean` when the
        objective reads the validation parts."""
        return f"{self.study.key}_mean"

    @property
    def on_val(self) -> bool:
        """The objective reads the validation parts: its figure is not a test figure."""
        return self.study.key != self.study.metric

    @property
    def selected_on_test(self) -> bool:
        """The objective read the test folds and chose among trials: the test figures of the
        trials it chose are optimistic. A study of one configuration chooses nothing."""
        return self.study.on == "test" and self.study.searched and len(self.leaderboard) > 1

    def chosen_on_test(self, trial_id: str | None) -> bool:
        """Whether this trial's test figures are optimistic because the objective chose it on
        the test folds (the mark § of every table)."""
        return self.selected_on_test and trial_id in self.chosen

    @property
    def knob_columns(self) -> list[str]:
        return [k.column for k in self.study.knobs.values() if k.column in self.leaderboard.columns]

    @property
    def reference(self) -> str | None:
        """What ablation differences are taken against: the baseline trial when it completed
        (a failed or pruned one has no full set of folds to pair with), else the best trial."""
        if self.baseline is not None and self.leaderboard.at[self.baseline, "status"] == "COMPLETE":
            return self.baseline
        return self.best

    @property
    def nothing_completed(self) -> str | None:
        """Why no section that needs a complete trial can be shown; None when one can."""
        if self.best is not None:
            return None
        board = self.leaderboard
        if not len(board):
            return "no trials recorded yet"
        complete = int((board["status"] == "COMPLETE").sum())
        if complete:
            return f"none of the {plural(complete, 'complete trial')} has a finite {self.study.key}"
        return f"nothing completed (none of the {plural(len(board), 'trial')} finished its {plural(self.k, 'fold')})"

    def is_oracle(self, trial_id: str | None) -> bool:
        if trial_id is None or trial_id not in self.leaderboard.index:
            return False
        return self.leaderboard.at[trial_id, "select"] == ORACLE


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


# --- leaderboard ------------------------------------------------------------------------------


def row_status(folds: pd.DataFrame) -> pd.Series:
    """Each fold row's own status, upper case (a table without the column: all COMPLETE)."""
    if "status" not in folds.columns:
        return pd.Series("COMPLETE", index=folds.index, dtype=object)
    return folds["status"].astype(str).str.upper()


def _expected_folds(study: _io.Study, folds: pd.DataFrame) -> int:
    return expected_folds(study.config, folds)


def _started(folds: pd.DataFrame) -> pd.Series:
    """Each row's time (unix seconds): its fold's `started_at`, else (a PRUNED or FAIL mark, a
    row written before the column existed) its part's mtime. Not the mtime alone: compaction
    writes every row into one part, which gives every trial the same mtime."""
    written = folds[_io.WRITTEN].astype(np.float64) / 1e9
    if "started_at" not in folds.columns:
        return written
    started = pd.to_numeric(folds["started_at"], errors="coerce")
    return started.where(started > 0, written)


def build_leaderboard(folds: pd.DataFrame, study: _io.Study) -> tuple[pd.DataFrame, int]:
    """-> (one row per trial indexed by trial_id, ranked best first by the objective's column
    (`Study.key`); k folds expected)."""
    status = row_status(folds)
    complete = folds[status.eq("COMPLETE").to_numpy()]
    summary = fold_summary(complete) if len(complete) else pd.DataFrame(columns=["folds", "runs", "seeds", *(f"{m}_{s}" for m in NAMES for s in ("mean", "std"))])
    select = folds["select"].astype(str) if "select" in folds.columns else pd.Series("", index=folds.index)
    flags = pd.DataFrame({
        "fail": status.eq("FAIL").to_numpy(),
        "pruned": status.eq("PRUNED").to_numpy(),
        "oracle": select.eq(ORACLE).to_numpy(),
        "started": _started(folds).to_numpy(),
    }, index=folds.index).groupby(folds["trial_id"], sort=False).agg(fail=("fail", "any"), pruned=("pruned", "any"), oracle=("oracle", "any"), started=("started", "min"))
    board = flags.join(summary, how="left")
    for c in ("folds", "runs", "seeds"):
        board[c] = board[c].fillna(0).astype(int)
    k = _expected_folds(study, folds)
    board["status"] = trial_status(folds, k).reindex(board.index)  # a fold's seeds count once
    first_select = select.where(select.ne("None") & select.ne("nan") & select.ne("")).groupby(folds["trial_id"], sort=False).first()
    board["select"] = np.where(board["oracle"], ORACLE, first_select.reindex(board.index).fillna("").to_numpy())
    params = [k.column for k in study.knobs.values() if k.column in folds.columns]
    params += [c for c in folds.columns if c.startswith("param.") and c not in params]
    if params:
        board = board.join(folds.groupby("trial_id", sort=False)[params].first())
    if "error" in folds.columns:
        errors = folds.loc[status.eq("FAIL").to_numpy() & folds["error"].notna().to_numpy()].groupby("trial_id", sort=False)["error"].first()
        board["error"] = errors.reindex(board.index)
    for m in (*NAMES, *VAL_NAMES):
        for s in ("mean", "std"):
            if f"{m}_{s}" not in board.columns:
                board[f"{m}_{s}"] = np.nan
    objective = f"{study.key}_mean"
    board["_rank_status"] = board["status"].map(STATUS_ORDER)
    board = board.sort_values(
        ["_rank_status", objective, "started"],
        ascending=[True, study.direction == "min", True],
        na_position="last",
        kind="stable",
    ).drop(columns=["_rank_status", "fail", "pruned", "oracle"])
    board.index = board.index.astype(str)
    board.index.name = "trial_id"
    return board, k


LEADERBOARD_COLUMNS = ["trial_id", "status", "folds", "mae_mean", "mae_std", "rmse_mean", "rmse_std", "pc_mean", "pc_std"]
VAL_COLUMNS = [f"{m}_{s}" for m in VAL_NAMES for s in ("mean", "std")]


def leaderboard_csv(report: Report) -> pd.DataFrame:
    """The CSV contract: fixed columns (test figures), seeds (runs per fold), the validation
    parts' figures when the rows carry any (eval.holdout), one param.<path> column per knob,
    then select and selected_on_test (the objective chose it on the test folds)."""
    board = report.leaderboard.reset_index()
    params = [c for c in board.columns if c.startswith("param.")]
    val = VAL_COLUMNS if board[VAL_COLUMNS].notna().any().any() else []
    board["selected_on_test"] = board["trial_id"].map(report.chosen_on_test).astype(bool)
    return board[[*LEADERBOARD_COLUMNS, "seeds", *val, *params, "select", "selected_on_test"]]


# --- best, baseline ---------------------------------------------------------------------------


def _same(values: pd.Series, wanted: Any) -> pd.Series:
    """values == wanted, numbers compared with a tolerance, text case-sensitively."""
    if isinstance(wanted, bool) or wanted is None:
        return values.map(lambda v: v is wanted or (isinstance(v, (bool, np.bool_)) and bool(v) == wanted) or str(v) == str(wanted)).astype(bool)
    if isinstance(wanted, (int, float)):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
        return pd.Series(np.isclose(numbers, float(wanted), rtol=1e-9, atol=1e-12), index=values.index)
    return values.astype(str).eq(str(wanted))


def find_baseline(board: pd.DataFrame, folds: pd.DataFrame, study: _io.Study, notes: list[str]) -> str | None:
    candidates: pd.Index | None = None
    if "baseline" in folds.columns:
        flagged = folds.loc[folds["baseline"].fillna(False).astype(bool).to_numpy(), "trial_id"].astype(str).unique()
        candidates = board.index[board.index.isin(flagged)]
    elif study.baseline:
        mask = pd.Series(True, index=board.index)
        for path, value in study.baseline.items():
            column = f"param.{path}"
            if column not in board.columns:
                _note(notes, f"baseline point {study.baseline}: no column {column} in folds.parquet, so no trial is the baseline")
                return None
            mask &= _same(board[column], value)
        candidates = board.index[mask.to_numpy()]
    else:
        if study.searched:
            _note(notes, "the study names no baseline point (search.baseline): ablation differences are against the best trial")
        return None
    if not len(candidates):
        _note(notes, f"no trial matches the baseline point {study.baseline}: ablation differences are against the best trial")
        return None
    complete = [t for t in candidates if board.at[t, "status"] == "COMPLETE"]
    return complete[0] if complete else candidates[0]


def best_trial(board: pd.DataFrame, objective: str) -> str | None:
    ok = board[(board["status"] == "COMPLETE") & board[objective].notna()]
    return ok.index[0] if len(ok) else None


# --- paper format -----------------------------------------------------------------------------


def _by_column(by: str | None, study: _io.Study, board: pd.DataFrame) -> tuple[str | None, str | None]:
    """-> (dotted path, param column or None when the path is fixed in the config)."""
    if by is None:
        choice = [k for k in study.knobs.values() if k.kind == "choice" and k.column in board.columns]
        return (choice[0].path, choice[0].column) if choice else (None, None)
    path = by.removeprefix("param.")
    if f"param.{path}" in board.columns:
        return path, f"param.{path}"
    try:
        study.fixed(path)
    except KeyError:
        searched = ", ".join(k.path for k in study.knobs.values()) or "none"
        raise InputError(f"--by {by}: neither a searched knob of {study.results} (searched: {searched}) nor a path of its config") from None
    return path, None


def _levels(column: pd.Series, knob: _io.Knob | None, notes: list[str], path: str) -> tuple[pd.Series, list[str] | None]:
    """Level of each trial, and their order when it is not the values' own.

    A float knob (a continuous range) is cut into quantile bins, as is an integer knob with
    more than MAX_LEVELS distinct values. Why bins and not a refusal: a float knob is sampled
    from a range, so every trial has its own value and one row per value would only be the
    leaderboard sorted by that knob; what a researcher asks with --by loss.alpha is "how good
    can it get in each part of the range". Quantile bins hold equal numbers of trials, so each
    bin's best is a best of as many tries as the others' (equal-width bins would pit a bin of
    one trial against a bin of twenty, and the maximum grows with the count), and they follow
    a log-sampled knob without a scale to choose. At most BINS bins, fewer when there are few
    trials, so that each holds at least PER_BIN. knobs.png shows every trial."""
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    continuous = knob is not None and knob.kind == "float"
    if not numeric or column.nunique() < 2 or not (continuous or column.nunique() > MAX_LEVELS):
        return column, None
    bins = max(1, min(BINS, int(column.notna().sum()) // PER_BIN))
    codes, edges = pd.qcut(column, bins, labels=False, retbins=True, duplicates="drop")
    # qcut's intervals: (low, high], the first one closed on the left too
    labels = [f"{'[' if i == 0 else '('}{edges[i]:.4g}, {edges[i + 1]:.4g}]" for i in range(len(edges) - 1)]
    kind = "a continuous knob (float range)" if continuous else f"{column.nunique()} distinct values"
    _note(notes, f"--by {path}: {kind}: the best trial in each of {plural(len(labels), 'quantile bin')} of its values; knobs.png shows every trial")
    return codes.map(dict(enumerate(labels))), labels


def _by_level(ok: pd.DataFrame, levels: pd.Series, knob: _io.Knob | None, order: list[str] | None = None) -> list[tuple[Any, str, int]]:
    """(level, its best trial, trials at that level), levels in the space's order. `ok` is
    ranked best first, so the first trial of each level is its best."""
    levels = levels.astype(object).where(levels.notna(), "(not set)")
    first = ~levels.duplicated()
    counts = levels.value_counts()
    pairs = [(level, trial, int(counts[level])) for level, trial in zip(levels[first.to_numpy()], ok.index[first.to_numpy()])]
    if order is None and knob is not None and knob.choices:
        order = list(knob.choices)
    if order is not None:
        rank = {str(c): i for i, c in enumerate(order)}
        return sorted(pairs, key=lambda p: (rank.get(str(p[0]), len(rank)), str(p[0])))
    try:
        return sorted(pairs, key=lambda p: p[0])
    except TypeError:
        return sorted(pairs, key=lambda p: str(p[0]))


def paper_table(report: Report, by: str | None) -> pd.DataFrame:
    study, board, notes = report.study, report.leaderboard, report.notes
    path, column = _by_column(by, study, board)
    report.by = path
    ok = board[(board["status"] == "COMPLETE") & board[report.objective].notna()]
    rows: list[dict] = []
    shown = [*NAMES, *([study.key] if report.on_val else [])]  # test figures; the objective's validation figure beside

    def ours(level: Any, trial: str, n: int, binned: bool = False) -> dict:
        r = board.loc[trial]
        return {
            "source": "ours", "level": "" if level is None else str(level), "method": (f"{path} in {level}" if binned else f"{path} = {level}") if path else "best trial",
            "trial_id": trial, "trials": n, "select": r["select"], "differs": "",
            **{f"{m}_{s}": r[f"{m}_{s}"] for m in shown for s in ("mean", "std")},
        }

    if column is not None:
        levels, order = _levels(ok[column], study.knobs.get(path), notes, path)
        report.by_bins = order is not None
        for level, trial, n in _by_level(ok, levels, study.knobs.get(path), order):
            rows.append(ours(level, trial, n, binned=order is not None and level != "(not set)"))
    elif len(ok):
        if path:
            _note(notes, f"--by {path}: not searched in this study (fixed at {study.fixed(path)!r}): one row")
        level = study.fixed(path) if path else None
        rows.append(ours(level, ok.index[0], len(ok)))

    # the paper's rows first, so that a level meets its paper figure before the README's
    where = (study.dataset or "", study.protocol or "")
    published = [*paper.published(*where), *paper.published(*where, source="readme")]
    if study.dataset and not published:
        _note(notes, f"no published ComboLoss figures for dataset {study.dataset}, protocol {study.protocol}: the paper reports scut-fbp5500 (5fold, 60-40), scut-fbp (5fold) and hotornot (5split)")
    placed: set[int] = set()
    out: list[dict] = []
    for row in rows:
        out.append(row)
        if path is None:
            continue
        for i, p in enumerate(published):
            if i not in placed and path in p.config and _same(pd.Series([p.config[path]]), _parse(row["level"])).iloc[0]:
                out.append(_published_row(p, row["level"], config_differences(report, row["trial_id"], p)))
                placed.add(i)
    # no level to pair by: our one row stands beside every published row, each compared with it
    alone = rows[0]["trial_id"] if path is None and len(rows) == 1 else None
    out += [_published_row(p, "", config_differences(report, alone, p) if alone else "") for i, p in enumerate(published) if i not in placed]
    columns = ["source", "level", "method", "trial_id", "trials", *(f"{m}_{s}" for m in shown for s in ("mean", "std")), "select", "reference", "differs"]
    return pd.DataFrame(out, columns=columns)


def config_differences(report: Report, trial: str, p: paper.PublishedRow) -> str:
    """How our `trial`'s configuration differs from what defines the published row `p` (its
    `config`: backbone, loss, weights), e.g. `model.backbone: ours resnet18, published
    seresnext50_32x4d`; "" when it does not. A study run with `--set model.backbone=resnet18`
    put its rows beside the SEResNeXt50 figures unmarked."""
    board, study = report.leaderboard, report.study
    differences = []
    for key, theirs in p.config.items():
        column = f"param.{key}"
        if column in board.columns and pd.notna(board.at[trial, column]):
            ours = board.at[trial, column]
        else:
            try:
                ours = study.fixed(key)
            except KeyError:  # a path this study's config does not record: nothing to compare
                continue
        if not _same(pd.Series([ours], dtype=object), theirs).iloc[0]:
            differences.append(f"{key}: ours {_plain(ours)}, published {_plain(theirs)}")
    return "; ".join(differences)


def _plain(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def _parse(text: str) -> Any:
    try:
        return float(text) if text not in ("True", "False") else text == "True"
    except ValueError:
        return text


def _published_row(p: paper.PublishedRow, level: str, differs: str = "") -> dict:
    return {
        "source": "published", "level": level, "method": f"{p.where}: {p.name}", "trial_id": "", "trials": np.nan,
        "mae_mean": p.mae, "mae_std": np.nan, "rmse_mean": p.rmse, "rmse_std": np.nan, "pc_mean": p.pc, "pc_std": np.nan,
        "select": paper.EPOCH_SELECTION, "reference": p.citation, "differs": differs,
    }


# --- ablation, pooled -------------------------------------------------------------------------


def _comparisons(report: Report) -> list[tuple[str, str, str]]:
    """(knob, level, trial) to compare with the reference: the best trial, then the best
    trial of each level of each categorical knob."""
    board = report.leaderboard
    ok = board[(board["status"] == "COMPLETE") & board[report.objective].notna()]
    reference = report.reference
    out = [("best trial", "", report.best)] if report.best and report.best != reference else []
    for knob in report.study.knobs.values():
        if knob.kind != "choice" or knob.column not in ok.columns:
            continue
        for level, trial, _ in _by_level(ok, ok[knob.column], knob):
            out.append((knob.path, str(level), trial))
    return out


def _runs(complete: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """COMPLETE rows indexed by (trial_id, fold, seed), one per run of a fold, the `columns` as
    floats: what two trials are paired on."""
    runs = complete.assign(trial_id=complete["trial_id"].astype(str)).set_index(["trial_id", "fold", "seed"])[columns]
    return runs.apply(pd.to_numeric, errors="coerce").astype(np.float64).sort_index()


def ablation_table(report: Report, complete: pd.DataFrame, predictions: pd.DataFrame, draws: int, seed: int) -> pd.DataFrame:
    """One row per comparison (`_comparisons`) with the reference: paired differences and tests
    over the folds both trials finished (`paired_by_fold`: k folds, each the mean of its runs
    both finished), the t test's CI of the PC difference, the reference's seed-to-seed spread of
    the objective's test metric, and the image bootstrap CI of the pooled PC difference."""
    reference = report.reference
    m = report.study.metric
    compared = [*NAMES, *([report.study.key] if report.on_val else [])]  # test metrics; the objective's validation metric beside
    columns = ["knob", "level", "trial_id", "reference", "k", "runs", *(f"d_{c}" for c in compared), "ci_low_pc", "ci_high_pc",
               *(f"{t}_p_{c}" for c in NAMES for t in ("t", "wilcoxon")), "seed_spread", "seeds", "within_seed_noise", "oof_n", "oof_d_pc", "oof_ci_low", "oof_ci_high", "select"]
    if reference is None:
        _note(report.notes, "ablation: no completed trial to compare against")
        return pd.DataFrame(columns=columns)
    per_run = _runs(complete, compared)
    spread, seeds = report.seed_spread = seed_spread(complete[complete["trial_id"].astype(str) == reference], m)
    preds = {t: g for t, g in predictions.groupby("trial_id", sort=False)} if len(predictions) else {}
    rows = []
    comparisons = _comparisons(report)
    board = report.leaderboard
    if ((board["status"] == "COMPLETE") & board[report.objective].notna()).sum() < 2:
        _note(report.notes, "ablation: only one completed trial, nothing to compare")
    for knob, level, trial in comparisons:
        row: dict[str, Any] = {"knob": knob, "level": level, "trial_id": trial, "reference": reference, "select": report.leaderboard.at[trial, "select"]}
        a, b = per_run.loc[trial], per_run.loc[reference]
        for c in compared:
            t = paired_by_fold(a[c], b[c])
            row[f"d_{c}"] = t["diff"]
            if c in NAMES:
                row.update({"k": t["k"], "runs": t["runs"], f"t_p_{c}": t["t_p"], f"wilcoxon_p_{c}": t["wilcoxon_p"]})
            if c == "pc":
                row.update(ci_low_pc=t["ci_low"], ci_high_pc=t["ci_high"])
        d = row[f"d_{m}"]
        inside = bool(abs(d) < spread) if np.isfinite(spread) and np.isfinite(d) and trial != reference else None
        row.update({"seed_spread": spread, "seeds": seeds, "within_seed_noise": inside})
        rows.append(row)
    for row, boot in zip(rows, _bootstraps([r["trial_id"] for r in rows], reference, preds, draws, seed)):
        row.update(boot)
    frame = pd.DataFrame(rows, columns=columns)
    if len(frame) and frame["oof_n"].isna().all() and (frame["trial_id"] != reference).any():
        _note(report.notes, "ablation: no out-of-fold predictions for the compared trials, so no bootstrap CI")
    return frame


def _bootstraps(trials: list[str], reference: str, preds: dict[str, pd.DataFrame], draws: int, seed: int) -> list[dict[str, float]]:
    """Bootstrap of PC(trial) - PC(reference) for each trial, over the (fold, seed, image)
    predictions both made; with several seeds an image's runs are resampled together."""
    empty = {"oof_n": np.nan, "oof_d_pc": np.nan, "oof_ci_low": np.nan, "oof_ci_high": np.nan}
    b = preds.get(reference)
    pairs, where = [], {}
    key = ["fold", "seed", "image"]
    for trial in dict.fromkeys(trials):  # each distinct trial once
        a = preds.get(trial)
        if a is None or b is None or trial == reference:
            continue
        merged = a[[*key, "y_true", "y_pred"]].merge(b[[*key, "y_pred"]], on=key, suffixes=("_a", "_b"))
        if len(merged):
            where[trial] = len(pairs)
            image = merged["fold"].astype(str) + "/" + merged["image"].astype(str)
            groups = (image.to_numpy(),) if image.duplicated().any() else ()  # one run per image: rows are images
            pairs.append((merged["y_true"].to_numpy(), merged["y_pred_a"].to_numpy(), merged["y_pred_b"].to_numpy(), *groups))
    results = bootstrap_pc_differences(pairs, draws=draws, seed=seed)
    out = []
    for trial in trials:
        if trial == reference and b is not None:
            out.append({"oof_n": len(b), "oof_d_pc": 0.0, "oof_ci_low": 0.0, "oof_ci_high": 0.0})
        elif trial in where:
            r = results[where[trial]]
            out.append({"oof_n": r["n"], "oof_d_pc": r["pc_diff"], "oof_ci_low": r["ci_low"], "oof_ci_high": r["ci_high"]})
        else:
            out.append(dict(empty))
    return out


def pooled_table(report: Report, predictions: pd.DataFrame) -> pd.DataFrame:
    columns = ["role", "trial_id", "subset", "n", *NAMES, "select"]
    roles = [("best", report.best), ("baseline", report.baseline)]
    frames = []
    for role, trial in roles:
        if trial is None:
            continue
        if role == "baseline" and trial == report.best:
            role = "best = baseline"
            frames = [f.assign(role=role) for f in frames]
            continue
        p = predictions[predictions["trial_id"].astype(str) == trial] if len(predictions) else predictions
        if not len(p):
            _note(report.notes, f"pooled metrics: no out-of-fold predictions for trial {trial} ({role})")
            continue
        frames.append(pooled(p).assign(role=role, trial_id=trial, select=report.leaderboard.at[trial, "select"]))
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


# --- importance and the edge of the space -----------------------------------------------------


def _evaluator():
    import optuna

    try:
        import sklearn  # noqa: F401  (fANOVA's random forest)

        return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA (optuna)"
    except ImportError:
        return optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA (optuna; fANOVA needs scikit-learn, not installed)"


_TARGET_WARNING = "computes the importances of params to achieve low `target` values"  # the sign is handled: see journal_importance


@contextlib.contextmanager
def _optuna_warnings(notes: list[str]):
    """Optuna's warnings while it reads the journal and weighs the knobs, as report notes (each
    once) instead of Python warnings on stderr: they leaked into `fbp-search paper` as
    multi-line `UserWarning` blocks. Its ExperimentalWarnings say nothing about the study."""
    import optuna

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = str(w.message).strip()
        if issubclass(w.category, optuna.exceptions.ExperimentalWarning) or _TARGET_WARNING in text:
            continue
        _note(notes, f"importance: optuna warns: {' '.join(text.split())}")


def journal_importance(report: Report) -> dict[str, float]:
    with _optuna_warnings(report.notes):
        return _journal_importance(report)


def _journal_importance(report: Report) -> dict[str, float]:
    study, notes = report.study, report.notes
    jstudy, note = _io.load_journal_study(study.results, study.name)
    if jstudy is None:
        _note(notes, note)
        return {}
    import optuna

    trials = jstudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    for t in trials[:1] + trials[-1:]:  # ranges the yaml did not give
        for name, d in t.distributions.items():
            knob = study.knobs.get(name)
            if knob is not None and knob.numeric and knob.low is None and hasattr(d, "low"):
                knob.low, knob.high, knob.log = float(d.low), float(d.high), bool(getattr(d, "log", False))
    if len(trials) < 2:
        _note(notes, f"importance needs at least 2 completed trials (the journal has {len(trials)})")
        return {}
    if not study.knobs and not trials[0].params:
        _note(notes, "importance: the study searches no knobs")
        return {}
    if len(trials) < 10:
        _note(notes, f"importance from only {len(trials)} completed trials in the journal: little evidence either way")
    evaluator, report.importance_method = _evaluator()
    # several objectives: weigh the knobs for the first. With a target, PED-ANOVA takes low values
    # as good, so a maximized one is negated (it weighed the knobs for a low PC); fANOVA
    # explains the target's variance, which the sign does not change
    sign = -1.0 if jstudy.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    target = (lambda t: sign * t.values[0]) if len(jstudy.directions) > 1 else None
    try:
        return dict(optuna.importance.get_param_importances(jstudy, evaluator=evaluator, target=target))
    except Exception as e:  # e.g. every trial has the same params, or conditional knobs only
        _note(notes, f"importance could not be computed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        report.importance_method = None
        return {}


def importance_table(report: Report, importances: dict[str, float]) -> pd.DataFrame:
    rows = []
    best = report.leaderboard.loc[report.best] if report.best else None
    for knob in report.study.knobs.values():
        value = best.get(knob.column) if best is not None else None
        position, edge = np.nan, ""
        if knob.numeric and knob.low is not None and value is not None and pd.notna(value):
            low, high, v = knob.low, knob.high, float(value)
            if knob.log and low > 0 and v > 0:
                low, high, v = np.log(low), np.log(high), np.log(v)
            if high > low:
                position = (v - low) / (high - low)
                edge = "lower edge" if position <= EDGE else "upper edge" if position >= 1 - EDGE else "inside"
                if edge != "inside":
                    _note(report.notes, f"the best {knob.path} = {value:.6g} sits at the {edge} of [{knob.low:g}, {knob.high:g}]: the optimum may lie outside the space; widen it")
        rows.append({
            "knob": knob.path, "kind": knob.kind, "low": knob.low, "high": knob.high, "log": knob.log,
            "choices": "|".join(map(str, knob.choices)) if knob.choices else "",
            "importance": importances.get(knob.path, np.nan), "best_value": value, "position": position, "edge": edge,
        })
    frame = pd.DataFrame(rows, columns=["knob", "kind", "low", "high", "log", "choices", "importance", "best_value", "position", "edge"])
    if importances:
        missing = [k for k in report.study.knobs if k not in importances]
        if missing:
            _note(report.notes, f"importance: optuna leaves out knobs not set in every completed trial (conditional ones): {', '.join(missing)}")
        frame = frame.sort_values("importance", ascending=False, na_position="last", kind="stable")
    return frame.reset_index(drop=True)


# --- status, history --------------------------------------------------------------------------


def status_table(board: pd.DataFrame, folds: pd.DataFrame, report: Report) -> pd.DataFrame:
    """One row per trial status (COMPLETE: all k folds completed; INCOMPLETE, PRUNED, FAIL):
    how many trials, and their rows in folds.parquet by each row's own status. The two differ:
    a PRUNED trial's finished first fold is a COMPLETE row of a PRUNED trial, not a COMPLETE
    trial. Columns: status, trials, fold_rows_<row status> (complete, pruned, fail, then any
    other status the rows carry)."""
    trials = board["status"].value_counts()
    rows = row_status(folds)
    trial_status = folds["trial_id"].map(board["status"]) if len(folds) else pd.Series(dtype=object)
    cross = pd.crosstab(trial_status, rows) if len(folds) else pd.DataFrame()
    out = pd.DataFrame({"status": list(STATUS_ORDER)})
    out["trials"] = out["status"].map(trials).fillna(0).astype(int)
    for s in [*ROW_STATUSES, *sorted(set(cross.columns) - set(ROW_STATUSES))]:
        counts = cross[s] if s in cross.columns else pd.Series(dtype=int)
        out[f"fold_rows_{s.lower()}"] = out["status"].map(counts).fillna(0).astype(int)
    counts = dict(zip(out["status"], out["trials"]))
    if counts["PRUNED"]:
        _note(report.notes, f"{plural(counts['PRUNED'], 'trial')} PRUNED: stopped by ASHA after some folds; their means cover only the folds they finished and they rank below complete trials")
    if counts["INCOMPLETE"]:
        _note(report.notes, f"{plural(counts['INCOMPLETE'], 'trial')} with fewer than {plural(report.k, 'fold')} and no PRUNED or FAIL mark (still running, or killed)")
    if counts["FAIL"]:
        top = report.errors.head(3)
        _note(report.notes, f"{plural(counts['FAIL'], 'trial')} FAILED; most common errors: " + "; ".join(f"{n}x {e}" for e, n in zip(top["error"], top["trials"])))
    return out


def errors_table(folds: pd.DataFrame) -> pd.DataFrame:
    """The distinct errors of FAIL trials, as the run's closing lines give them (search.outcome)."""
    rows = [{"error": e.line, "trials": e.trials, "first_trial": e.first_trial} for e in distinct_errors(folds)]
    return pd.DataFrame(rows, columns=["error", "trials", "first_trial"])


def history_table(board: pd.DataFrame, objective: str, direction: str) -> pd.DataFrame:
    """The trials in the order they started (their first fold's `started_at`), numbered from 1,
    with the best complete objective so far: the optimization history. The board is ranked best
    first, so any other order (a tie of times) would draw a flat best-so-far line."""
    h = board[["status", objective, "started"]].sort_values("started", kind="stable").reset_index()
    h.insert(0, "order", np.arange(1, len(h) + 1))
    values = h[objective].where(h["status"] == "COMPLETE")
    h["best_so_far"] = (values.cummax() if direction == "max" else values.cummin()).ffill()
    return h.rename(columns={objective: "objective"}).drop(columns=["started"])


# --- the whole report -------------------------------------------------------------------------

NO_SEED = -1  # the seed of a row that names none: the one run of its fold


def _with_seed(frame: pd.DataFrame) -> pd.DataFrame:
    """A `seed` column on every row: rows written before train.repeats (predictions, epochs) or
    by hand may have none, and a PRUNED or FAIL mark has none; each stands for one run."""
    seed = pd.to_numeric(frame["seed"], errors="coerce") if "seed" in frame.columns else pd.Series(np.nan, index=frame.index)
    return frame.assign(seed=seed.fillna(NO_SEED).astype(np.int64))


def objective_split(study: _io.Study, folds: pd.DataFrame, notes: list[str]) -> None:
    """An objective on the validation parts whose rows carry no validation metric: study.yaml
    was written before objective.on existed (the schema now resolves a searched study to val),
    when every search read the test folds. Rank by the test metric, and say so."""
    if study.on != "val":
        return
    complete = folds[row_status(folds).eq("COMPLETE").to_numpy()]
    val = pd.to_numeric(complete[study.key], errors="coerce") if study.key in complete.columns else pd.Series(dtype=np.float64)
    if val.notna().any() or not pd.to_numeric(complete[study.metric], errors="coerce").notna().any():
        return
    _note(notes, f"objective.on is val, but no row carries a validation {study.metric} ({study.key}): these rows were written before objective.on existed, "
                 f"when the search read the test folds; trials are ranked by test {study.metric}")
    study.on = "test"


def build_report(results: Path, by: str | None = None, draws: int = 2000, seed: int = 0, cache: bool = True) -> Report:
    """All tables of the report, as numbers. With `cache`, RESULTS/report/.cache holds a
    snapshot of the folds table that makes the next report read only the parts written since
    (wherever --out points; a results directory that cannot be written just gets no snapshot)."""
    results = Path(results)
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    study = _io.load_study(results)
    snapshot = results / "report" / ".cache" if cache else None
    folds = _io.read_table(results, "folds", cache=snapshot)
    lap("read folds")
    notes = list(study.notes)
    if "trial_id" in folds.columns:
        folds["trial_id"] = folds["trial_id"].astype(str)
    for m in NAMES:  # PRUNED and FAIL rows carry no metrics: a study in which nothing completed has no such column
        if m not in folds.columns:
            folds[m] = np.nan
    folds = _with_seed(folds)
    objective_split(study, folds, notes)
    _io.add_column_knobs(study, folds)
    board, k = build_leaderboard(folds, study)
    report = Report(study, k, board, None, None, None, *(pd.DataFrame() for _ in range(9)), notes=notes, timings=timings)
    if not len(board):
        _note(notes, f"no trials recorded yet in {results / 'folds.parquet'}")
    report.best = best_trial(board, report.objective)
    report.baseline = find_baseline(board, folds, study, notes) if len(board) else None
    if report.baseline is not None and report.reference != report.baseline:
        status = board.at[report.baseline, "status"]
        against = f"ablation differences are against the best trial {report.best}" if report.best else "nothing to compare"
        _note(notes, f"the baseline trial {report.baseline} did not complete ({status}): {against}")
    report.errors = errors_table(folds)
    report.status = status_table(board, folds, report)
    report.history = history_table(board, report.objective, study.direction)
    lap("leaderboard")

    report.paper = paper_table(report, by)
    levels = {t for _, _, t in _comparisons(report)}  # the best trial, and the best of each level of each categorical knob
    report.chosen = (levels | set(report.paper.loc[report.paper["source"] == "ours", "trial_id"]) | {report.best}) - {None}
    compared = (levels | {report.baseline, report.best}) - {None}
    predictions = _io.read_table(results, "predictions", trials=compared) if compared else pd.DataFrame()
    if len(predictions):
        predictions = _with_seed(predictions)
        predictions["trial_id"] = predictions["trial_id"].astype(str)
    lap("read predictions")
    complete = folds[row_status(folds).eq("COMPLETE").to_numpy()]
    report.ablation = ablation_table(report, complete, predictions, draws, seed)
    report.pooled = pooled_table(report, predictions)
    lap("ablation, pooled")
    report.importance = importance_table(report, journal_importance(report) if len(board) else {})
    lap("importance")
    if report.best is not None:
        report.best_predictions = predictions[predictions["trial_id"] == report.best] if len(predictions) else predictions
        report.best_epochs = _with_seed(_io.read_table(results, "epochs", trials={report.best}))
        report.best_folds = complete[complete["trial_id"] == report.best]
        if not len(report.best_epochs):
            _note(notes, f"no epochs.parquet rows for the best trial {report.best}: no learning curves")
    if any(board["select"] == ORACLE) if len(board) else False:
        _note(notes, "† marks trials whose epoch was chosen on the test fold (eval.select: test_oracle): their figures are optimistic")
    for frame in (report.paper, report.ablation, report.pooled):
        frame["selected_on_test"] = frame["trial_id"].map(report.chosen_on_test).astype(bool) if len(frame) else pd.Series(dtype=bool)
    lap("epochs")
    return report
