"""What `resume` mends after Tune has finished: folds whose rows are gone, and trials Tune lost.

Two ways a completed or started fold can be missing from a finished study:

- its rows were lost: a damaged part file the user moved out of the way. The trial's last
  checkpoint still lists the fold as done, so the fold is trained again.
- its trial is an orphan: the driver was killed after the trial started (and wrote folds) but
  before Tune's next state snapshot, so the restored Tune does not know it, and the searcher
  proposes another trial in its place. The orphan's completed folds stay; its remaining folds
  are trained (none, when the kill came after its last fold was written), and its Optuna
  trial, left RUNNING, is told the result. An orphan whose Optuna
  trial the killed driver had already ended (ASHA stopped it: PRUNED; it raised: FAIL) in the
  moment between telling Optuna and writing the trial's marks gets its marks, not training:
  the decision stands, and the journal and the Parquet rows agree.

Rows that can be rebuilt (the folds row of a fold whose epochs and predictions parts are there,
a trial's PRUNED or FAIL marks that the journal holds) are rebuilt first (search.rebuild), not
trained. Each fold seeds itself from the config and its index alone, so a fold trained again gives the
same numbers where the device is deterministic. The work runs as Ray tasks with the trials'
resources; the driver writes the rows, as it does during the study, and the folds' selected
models into RESULTS/models (the study's end keeps only the best trials', search.keep).
"""

from __future__ import annotations

import json
from pathlib import Path

from fbp.export import save_fold_runs
from search.rebuild import rebuild_folds
from search.results import ResultsDir, fold_frames, fold_parts, marks_frame, params_of
from search.spec import StudySpec
from search.trainable import STATE, StudyContext


def missing_folds(grid, results: ResultsDir, fold_numbers: list[int], folds=None) -> tuple[dict[str, tuple[dict, list[int]]], set[str]]:
    """trial_id -> (params, folds to train) for lost rows and orphan trials; and the orphans.
    `folds`: the folds table, when read already."""
    folds = results.read("folds") if folds is None else folds
    complete = folds[folds["status"] == "COMPLETE"] if len(folds) else folds
    done = set(zip(complete["trial_id"], complete["fold"].astype(int)))

    def whole(trial_id: str, fold: int) -> bool:
        return (trial_id, fold) in done and results.has_part("epochs", trial_id, fold) and results.has_part("predictions", trial_id, fold)

    todo: dict[str, tuple[dict, list[int]]] = {}
    known = set()
    for result in grid:
        trial_id = (result.metrics or {}).get("trial_id")
        if trial_id is None:
            continue
        known.add(trial_id)
        if result.checkpoint is None:
            continue
        with result.checkpoint.as_directory() as folder:
            listed = [d["fold"] for d in json.loads((Path(folder) / STATE).read_text())]
        lost = [f for f in listed if not whole(trial_id, f)]
        if lost:
            todo[trial_id] = (dict(result.config), sorted(lost))
    orphans = set()
    marked = set(folds.loc[folds["status"].isin(["PRUNED", "FAIL"]), "trial_id"]) if len(folds) else set()  # ended, and its marks written
    for trial_id, rows in complete.groupby("trial_id") if len(complete) else []:
        if trial_id not in known and trial_id not in marked:
            orphans.add(trial_id)  # its Optuna trial may be RUNNING even with every fold written
            left = [f for f in fold_numbers if not whole(trial_id, f)]
            if left:
                todo[trial_id] = (params_of(rows.iloc[0]), left)
    return todo, orphans


def _close_ended_orphans(results: ResultsDir, spec: StudySpec, todo: dict, orphans: set[str], fold_numbers: list[int], folds) -> set[str]:
    """Mark the folds of each orphan whose Optuna trial (found by its params) is PRUNED or FAIL
    already, as the driver would have, and take it out of `todo`; returns the orphans left."""
    import optuna

    if not orphans:
        return orphans
    ended = optuna.load_study(study_name=spec.name, storage=results.journal()).get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL))
    if not ended:
        return orphans
    left = set()
    for trial_id in sorted(orphans):
        rows = folds[(folds["trial_id"] == trial_id) & (folds["status"] == "COMPLETE")]
        params = params_of(rows.iloc[0])
        match = next((t for t in ended if t.params == params), None)
        if match is None:
            left.add(trial_id)
            continue
        first = rows.iloc[0]
        fields = {"study": first["study"], "spec_hash": first["spec_hash"], "trial_id": trial_id, **{c: first[c] for c in rows.columns if c.startswith("param.")}}
        done = set(rows["fold"].astype(int))
        if missing := [f for f in fold_numbers if f not in done]:
            results.write_marks(marks_frame(fields, missing, match.state.name, None), trial_id, match.state.name)
        todo.pop(trial_id, None)
        ended = [t for t in ended if t.number != match.number]
    return left


def _tell_orphans(results: ResultsDir, spec: StudySpec, orphans: set[str]) -> None:
    """Give each orphan's Optuna trial (RUNNING, found by its params) the orphan's result."""
    import optuna

    if not orphans:
        return
    study = optuna.load_study(study_name=spec.name, storage=results.journal())
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    folds = results.read("folds", trials=orphans)  # with the folds just trained
    for trial_id in orphans:
        rows = folds[(folds["trial_id"] == trial_id) & (folds["status"] == "COMPLETE")]
        params = params_of(rows.iloc[0])
        match = next((t for t in running if t.params == params), None)
        if match is not None:
            values = [float(rows[o.key].mean()) for o in spec.objectives]  # what the objective reads: val_pc or pc
            study.tell(match.number, values if len(values) > 1 else values[0])
            running = [t for t in running if t.number != match.number]


def repair(grid, results: ResultsDir, spec: StudySpec, context: StudyContext, fold_numbers: list[int]) -> int:
    """Train every missing fold; returns how many were trained."""
    import ray

    from search.trainable import retrain_folds

    results.compact("folds")  # Tune is done: one part to read, not one per fold (a study of 10,000 trials has ~30,000)
    # rows that can be rebuilt from the epochs and predictions tables are, rather than trained again
    # a restored trial the scheduler stopped before it ran (search.tuner.LiveFIFO) has no config: its params are in Parquet and the journal
    rebuild_folds(results, spec, fold_numbers, {r.metrics["trial_id"]: dict(r.config) for r in grid if (r.metrics or {}).get("trial_id") and r.config})
    folds = results.read("folds")
    todo, orphans = missing_folds(grid, results, fold_numbers, folds)
    orphans = _close_ended_orphans(results, spec, todo, orphans, fold_numbers, folds)
    if not todo:
        _tell_orphans(results, spec, orphans)
        return 0
    task = ray.remote(num_cpus=spec.resources.cpu, num_gpus=spec.resources.gpu)(retrain_folds)
    pending = [task.remote(params, spec, context, trial_id, folds) for trial_id, (params, folds) in todo.items()]
    trained = 0
    for (trial_id, (params, _)), rows in zip(todo.items(), ray.get(pending)):
        by_fold: dict[int, list] = {}
        for result, _ in rows:  # a fold's runs (train.repeats seeds) share its parts
            by_fold.setdefault(result.fold, []).append(result)
        trial = rows[0][1] if rows else None
        config = spec.trial_config(params)  # the whole trial's (the task's names only these folds)
        for fold, runs in by_fold.items():
            save_fold_runs(results.model_dir(trial_id), runs, config)  # the model first, as during the study
            results.write_fold(fold_parts(fold_frames(runs, trial), list(spec.search.space)), trial["trial_id"], fold)
            trained += 1
    _tell_orphans(results, spec, orphans)
    return trained
