"""What `resume` rebuilds from the Parquet tables, the record of what was trained, rather than train again.

    journal   optuna.journal damaged (a line cut short or not JSON): the file moves aside to
              optuna.journal.damaged-<time>; the fresh journal keeps its lines before the damage
              (trial numbers stay what Tune's saved searcher knows) and gets each trial the folds
              table shows finished (COMPLETE, PRUNED, FAIL) that it lacks or holds unfinished:
              params and distributions from the study's space, each fold's objective value as the
              intermediate value at step = fold, the state, and for COMPLETE the folds' mean. TPE
              and ASHA's recall (search.tuner.FoldASHA) learn from them as before.
    folds     folds rows lost (a damaged compacted part moved aside): a fold whose epochs and
              predictions parts are there gets its row back: the test metrics recomputed from
              the predictions, the selected epoch the one whose test metrics they are, its
              validation metrics from that epoch's row, the params from the trial's other rows,
              Tune's config or the journal; PRUNED and FAIL marks come back from the journal.
              Columns nothing recorded elsewhere (n_train, timings, device, host) stay empty.

A journal trial is found by the Tune trial id the searcher stores in its user attributes
(`trial_id`, search.searcher), else by equal params.
"""

from __future__ import annotations

import math
import os
import time

import pandas as pd

from fbp.files import write_atomic
from fbp.metrics import NAMES, TEST_CURVES, curve_name, scores, val_name
from search.journal import damage
from search.results import FOLD_COLUMNS, TUNE_TRIAL_ID, ResultsDir, fold_of, marks_frame, params_of, part_name, trial_status
from search.spec import StudySpec

DAMAGED = "damaged"
"""RESULTS/damaged/<table>/: where resume moves the part files it cannot read."""


def mend(results: ResultsDir, spec: StudySpec, fold_numbers: list[int]) -> list[str]:
    """Before a resume restores Tune: folds parts that cannot be read moved aside, the journal
    rebuilt if damaged, the folds rows that can be rebuilt rebuilt. One line per thing done."""
    lines = [f"{name}: damaged, moved to {DAMAGED}/folds/; its rows are rebuilt from the epochs and predictions tables and the journal"
             for name in set_aside_damaged(results, "folds")]
    if (line := rebuild_journal(results, spec, len(fold_numbers))) is not None:
        lines.append(line)
    if rebuilt := rebuild_folds(results, spec, fold_numbers):
        lines.append(f"{rebuilt} folds rows rebuilt from the epochs and predictions tables (not trained again)")
    return lines


def set_aside_damaged(results: ResultsDir, table: str) -> list[str]:
    """Move each part of `table` that cannot be read (or fails its page checksums) to
    RESULTS/damaged/<table>/; returns their names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    moved = []
    for part in results.parts(table):
        try:
            pq.ParquetFile(part.path, page_checksum_verification=True).read(use_threads=False)
        except (OSError, pa.ArrowException, ValueError):
            folder = results / DAMAGED / table
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(part.path, folder / part.name)
            moved.append(part.name)
    return moved


# --- the journal ---------------------------------------------------------------------------------


def rebuild_journal(results: ResultsDir, spec: StudySpec, num_folds: int) -> str | None:
    """Rebuild a damaged journal (see the module's docstring); returns one line saying what was
    done, or None when the journal is whole (or absent: a study that never started)."""
    path = results / results.JOURNAL
    found = damage(str(path)) if path.is_file() else None
    if found is None:
        return None
    number, offset, what = found
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    while aside.exists():  # a second rebuild within the second keeps the first one's copy
        aside = aside.with_name(aside.name + "+")
    os.replace(path, aside)
    with open(aside, "rb") as f:
        good = f.read(offset)
    write_atomic(path, good)
    added = finish_from_parquet(results, spec, num_folds)
    return f"{path} was damaged (line {number} {what}): moved to {aside.name}; kept its {number - 1} lines before it, {added} finished trials recreated from Parquet"


def _study(results: ResultsDir, spec: StudySpec, storage=None):
    import optuna

    directions = ["maximize" if o.direction == "max" else "minimize" for o in spec.objectives]
    return optuna.create_study(study_name=spec.name, storage=storage or results.journal(), directions=directions, load_if_exists=True)


def match(journal_trials: list, trial_id: str, params: dict):
    """The journal trial of a Tune trial: by its stored id, else by equal params (the first)."""
    for t in journal_trials:
        if t.user_attrs.get(TUNE_TRIAL_ID) == trial_id:
            return t
    return next((t for t in journal_trials if TUNE_TRIAL_ID not in t.user_attrs and t.params == params), None)


def _cut_short(journal_trials: list, params: dict):
    """A RUNNING trial the damage cut off before its Tune id (and maybe some params) was written,
    whose params so far are these params': the trial itself (the first such)."""
    return next((t for t in journal_trials if TUNE_TRIAL_ID not in t.user_attrs and t.state.name == "RUNNING"
                 and all(k in params and params[k] == v for k, v in t.params.items())), None)


def fold_values(rows: pd.DataFrame, key: str) -> dict[int, float]:
    """fold -> the fold's value of `key` (its seeds' mean), over the COMPLETE rows."""
    done = rows[rows["status"] == "COMPLETE"]
    return {int(f): float(v) for f, v in done.groupby("fold")[key].mean().items()}


def finish_from_parquet(results: ResultsDir, spec: StudySpec, num_folds: int) -> int:
    """Give the journal every trial the folds table shows finished; returns how many it was given."""
    import optuna
    from optuna.trial import TrialState

    from search.space import SearchSpace

    folds = results.read("folds")
    if folds.empty:
        return 0
    storage = results.journal()
    study = _study(results, spec, storage)
    space = SearchSpace.of(spec).distributions
    key = spec.objectives[0].key
    single = len(spec.objectives) == 1
    statuses = trial_status(folds, num_folds)
    first = {trial_id: params_of(folds[folds["trial_id"] == trial_id].iloc[0]) for trial_id in statuses.index}
    left = study.get_trials(deepcopy=False)
    found = {}
    for trial_id in statuses.index:  # by id or equal params first, then the trials cut short
        if (t := match(left, trial_id, first[trial_id])) is not None:
            found[trial_id], left = t, [x for x in left if x is not t]
    for trial_id in statuses.index:
        if trial_id not in found and (t := _cut_short(left, first[trial_id])) is not None:
            found[trial_id], left = t, [x for x in left if x is not t]
    added = 0
    for trial_id, status in statuses.items():
        t, params = found.get(trial_id), first[trial_id]
        if status == "INCOMPLETE" or (t is not None and t.state != TrialState.RUNNING):
            continue  # INCOMPLETE: resume continues it, its journal trial stays RUNNING
        rows = folds[folds["trial_id"] == trial_id]
        steps = fold_values(rows, key) if single else {}
        state = TrialState[status]
        values = [float(rows.loc[rows["status"] == "COMPLETE", o.key].mean()) for o in spec.objectives] if state == TrialState.COMPLETE else None
        distributions = {p: space[p] for p in params if p in space}
        if t is not None:  # cut off before it ended: ended where it is, its number (Tune's searcher knows it) kept
            number = t._trial_id  # the storage's id of the trial: FrozenTrial has no public name for it
            for name, value in params.items():
                if name not in t.params and name in distributions:
                    storage.set_trial_param(number, name, distributions[name].to_internal_repr(value), distributions[name])
            storage.set_trial_user_attr(number, TUNE_TRIAL_ID, str(trial_id))
            for step, value in steps.items():
                if step not in t.intermediate_values:
                    storage.set_trial_intermediate_value(number, step, value)
            storage.set_trial_state_values(number, state, values)
        else:
            study.add_trial(optuna.trial.create_trial(state=state, params=params, distributions=distributions, values=values,
                                                      intermediate_values=steps, user_attrs={TUNE_TRIAL_ID: str(trial_id)}))
        added += 1
    return added


# --- the folds table -----------------------------------------------------------------------------


def rebuild_folds(results: ResultsDir, spec: StudySpec, fold_numbers: list[int], known_params: dict[str, dict] | None = None) -> int:
    """Write back the folds rows of every fold whose epochs and predictions parts are there and
    whose row is not, and the PRUNED or FAIL marks the journal holds for trials whose marks are
    gone; returns how many folds rows were rebuilt. `known_params`: trial_id -> params (Tune's
    configs), for a trial none of whose rows is left. Which folds lack a row is found from the
    parts' names: only their trials' epochs and predictions are read."""
    known_params = known_params or {}
    folds = results.read("folds")
    complete = folds[folds["status"] == "COMPLETE"] if len(folds) else folds
    have = set(zip(complete["trial_id"].astype(str), complete["fold"].astype(int))) if len(complete) else set()
    written = {fold_of(p.name) for p in results.parts("epochs")} & {fold_of(p.name) for p in results.parts("predictions")}
    lost = sorted(key for key in written - have if key is not None)
    rebuilt = 0
    if lost:
        trials = {t for t, _ in lost}
        epochs, predictions = results.read("epochs", trials=trials), results.read("predictions", trials=trials)
        journal = _journal_params(results, spec)
        digest = (results.read_study(strict=False) or {}).get("spec_hash")
        for trial_id, fold in lost:
            params = _params(folds, trial_id, known_params, journal)
            if not params and spec.search.space and trial_id not in known_params:
                continue  # its params are nowhere here: repair, which has Tune's configs, rebuilds it
            own = epochs[(epochs["trial_id"] == trial_id) & (epochs["fold"] == fold)]
            shown = predictions[(predictions["trial_id"] == trial_id) & (predictions["fold"] == fold)]
            rows = [fold_row(spec, trial_id, fold, seed, curve, shown[shown["seed"] == seed], params) | {"spec_hash": digest}
                    for seed, curve in own.groupby("seed")]
            results.write("folds", part_name(trial_id, fold), pd.DataFrame(rows))
            results.append_log(trial_id, f"fold {fold}: its folds row was lost; rebuilt from the epochs and predictions tables")
            rebuilt += 1
        folds = results.read("folds")
    _rebuild_marks(results, spec, folds, known_params, fold_numbers)
    return rebuilt


def fold_row(spec: StudySpec, trial_id: str, fold: int, seed: int, curve: pd.DataFrame, predicted: pd.DataFrame, params: dict) -> dict:
    """One run's folds row from its epochs (`curve`) and its test predictions: the metrics are
    the predictions' (what the fold's row held: they were computed from the same predictions),
    the selected epoch the evaluated one whose test metrics those are."""
    test = scores(predicted["y_true"].to_numpy(), predicted["y_pred"].to_numpy())
    evaluated = curve.dropna(subset=[c for c in TEST_CURVES if c in curve.columns])
    gap = sum((evaluated[curve_name(m)] - test[m]).abs().fillna(0) for m in ("mae", "rmse"))
    chosen = evaluated.loc[gap.idxmin()] if len(evaluated) else None
    config = spec.trial_config(params)
    row = {c: None for c in FOLD_COLUMNS} | {
        "study": spec.name, "trial_id": trial_id, "fold": fold, "seed": int(seed), "status": "COMPLETE", **test,
        "n_test": len(predicted), "epochs_run": int(curve["epoch"].max()), "select": config.eval.select,
        "selected_epoch": int(chosen["epoch"]) if chosen is not None else None,
        **{val_name(m): _number(chosen.get(val_name(m))) if chosen is not None else math.nan for m in NAMES},
    }
    return row | {f"param.{p}": v for p, v in params.items()}


def _number(value) -> float:
    return float(value) if value is not None and not pd.isna(value) else math.nan


def _journal_params(results: ResultsDir, spec: StudySpec) -> dict[str, dict]:
    """trial_id -> params, of the journal trials that carry their Tune trial id."""
    try:
        study = _study(results, spec)
    except Exception:  # a journal that cannot be read gives nothing here; resume rebuilds it first
        return {}
    return {t.user_attrs[TUNE_TRIAL_ID]: dict(t.params) for t in study.get_trials(deepcopy=False) if TUNE_TRIAL_ID in t.user_attrs}


def _params(folds: pd.DataFrame, trial_id: str, known: dict[str, dict], journal: dict[str, dict]) -> dict:
    own = folds[folds["trial_id"] == trial_id] if len(folds) else folds
    if len(own):
        return params_of(own.iloc[0])
    return dict(known.get(trial_id) or journal.get(trial_id) or {})


def _rebuild_marks(results: ResultsDir, spec: StudySpec, folds: pd.DataFrame, known_params: dict[str, dict], fold_numbers: list[int]) -> int:
    """PRUNED and FAIL marks for the folds a trial did not complete, where the journal says it
    ended so and the folds table has no mark of it; returns the trials marked."""
    from optuna.trial import TrialState

    try:
        study = _study(results, spec)
    except Exception:
        return 0
    statuses = trial_status(folds, len(fold_numbers)) if len(folds) else pd.Series(dtype=object)
    journal = study.get_trials(deepcopy=False, states=(TrialState.PRUNED, TrialState.FAIL))
    marked = 0
    for trial_id in set(known_params) | set(statuses.index):
        if statuses.get(trial_id) in ("PRUNED", "FAIL", "COMPLETE"):
            continue
        params = _params(folds, trial_id, known_params, {})
        t = match(journal, trial_id, params)
        if t is None:
            continue
        done = set(folds.loc[(folds["trial_id"] == trial_id) & (folds["status"] == "COMPLETE"), "fold"].astype(int)) if len(folds) else set()
        missing = [f for f in fold_numbers if f not in done]
        if missing:
            fields = {"study": spec.name, "spec_hash": (results.read_study(strict=False) or {}).get("spec_hash"), "trial_id": trial_id, **{f"param.{p}": v for p, v in params.items()}}
            results.write_marks(marks_frame(fields, missing, t.state.name, None), trial_id, t.state.name)
            marked += 1
    return marked


