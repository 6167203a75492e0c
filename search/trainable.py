"""The Ray Tune trainable: one trial = `fbp.kfold.run_kfold` on the base config + params.

After each fold it reports the running means over its completed folds (ASHA's rungs are folds)
and the fold's own values (Optuna's intermediate values) of what the objectives read, with the
fold's rows for the Parquet tables and a checkpoint that lists the folds done, so a trial
restarted by Ray (a node died) continues at its next fold instead of starting over. The
checkpoint also carries the fold's selected model (`fbp.export`), which the driver moves into
RESULTS/models while the trial may be among the best (search.keep). The driver, not the
worker, writes the Parquet files and the models: results need no shared file system, only
Tune's storage.

The study arrives validated (the driver checked it once); a trial validates only its own
params set into the base config, trusting the registered names the driver checked.

What trains the folds is `fbp.kfold.run_kfold`, imported when a trial starts (torch comes with
it: the driver, which imports this module, never imports torch); a benchmark or a test names a
stand-in in the study's context (`StudyContext.run_folds`) to run the whole driver with
simulated folds (bench/scale.py).
"""

from __future__ import annotations

import importlib
import json
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import ray
from ray import tune

from fbp.config import TRUSTED
from fbp.export import save_fold_runs
from fbp.metrics import REPORTED
from search.board import poster
from search.results import ResultsDir, fold_frames, fold_parts, free_bytes, is_disk_full
from search.spec import StudySpec

if TYPE_CHECKING:
    from fbp.records import FoldResult

ROWS = "fbp_rows"
"""The key of a fold's report that carries its parts (`search.results.fold_parts`) to the
driver's Parquet writer."""
STATE = "folds_done.json"


DISK_FULL = "fbp_disk_full"
"""The key of a report that says the trial could not save its fold (the disk holding Tune's
storage, or the worker's temporary folder, is full), with the file and the bytes free: the driver stops
the study there (search.callbacks.ParquetWriter), the trial neither failed nor finished, and
`resume` continues it at that fold once space is freed."""


MODELS_KEY = "fbp_models"
"""A report's list of the model files its checkpoint holds (search.keep collects them)."""


def fold_key(metric: str) -> str:
    """The key of a fold's own value in a trial's report (the unprefixed one is the running mean)."""
    return f"fold_{metric}"


@dataclass(frozen=True)
class StudyContext:
    """What every trial is told besides its params: its study, the spec's hash, where the
    results are written and the name of the study's progress board."""

    study: str
    spec_hash: str
    results: str  # absolute: a resumed driver may run elsewhere
    board: str | None = None
    run_folds: str | None = None
    """A stand-in for `fbp.kfold.run_kfold` (None), as `module:function` with its signature and
    results (`fbp.records.FoldResult`): simulated folds for a benchmark or a test."""


def fold_runner(name: str | None) -> Callable[..., list[FoldResult]]:
    """What trains a trial's folds: `fbp.kfold.run_kfold`, or the stand-in `name` names.
    Imported here, in the worker when a trial starts, so that the driver never imports torch."""
    if name is None:
        from fbp.kfold import run_kfold

        return run_kfold
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def _done_folds(results: ResultsDir, trial_id: str, repeats: int) -> list[dict]:
    """Folds this trial finished before a restart: those in its last checkpoint, and those
    whose rows the driver already wrote, where this worker can see the results directory.
    The second matters after a driver is killed between writing a fold's rows and saving
    Tune's state: the restored trial would otherwise train that fold again."""
    done: dict[int, dict] = {}
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            done.update({d["fold"]: d for d in json.loads((Path(folder) / STATE).read_text())})
    rows = results.read("folds", trials={trial_id})
    complete = rows[rows["status"] == "COMPLETE"] if len(rows) else rows
    for fold, runs in complete.groupby("fold") if len(complete) else []:
        if len(runs) >= repeats:  # a fold counts once all its runs are written
            done[int(fold)] = {"fold": int(fold), **{m: float(runs[m].mean()) if m in runs else float("nan") for m in REPORTED}}
    return [done[f] for f in sorted(done)]


def running_means(done: list[dict]) -> dict[str, float]:
    """Mean of each metric over the completed folds (NaN PCs count as NaN, not as zero)."""
    return {m: float(np.mean([d.get(m, float("nan")) for d in done])) for m in REPORTED}


def trial_fields(context: StudyContext, trial_id: str, params: dict) -> dict:
    """The per-trial values of a fold's row, with where this process runs."""
    return {
        "study": context.study, "spec_hash": context.spec_hash, "trial_id": trial_id,
        "host": socket.gethostname(), "node_id": ray.get_runtime_context().get_node_id(),
        **{f"param.{k}": v for k, v in params.items()},
    }


def reported(spec: StudySpec, values: dict[str, float]) -> dict[str, float]:
    """What a trial's report carries of `values`: the objectives' keys only. The rows carry
    every metric to Parquet; Tune keeps ~20 numbers of bookkeeping per reported key and trial,
    in memory and in every state snapshot (re-serialized, all trials, when a study resumes)."""
    return {o.key: values[o.key] for o in spec.objectives}


def train_trial(params: dict, spec: StudySpec, context: StudyContext) -> None:
    config = spec.trial_config(params, context=TRUSTED)
    trial_id = tune.get_context().get_trial_id()
    repeats = config.train.repeats
    done = _done_folds(ResultsDir(context.results), trial_id, repeats)
    runs: dict[int, list[FoldResult]] = {}  # a fold's runs (train.repeats seeds) until it has them all

    def on_fold(result: FoldResult) -> None:
        runs.setdefault(result.fold, []).append(result)
        if len(runs[result.fold]) < repeats:
            return
        fold_runs = runs.pop(result.fold)
        own = {m: float(np.mean([getattr(r, m) for r in fold_runs])) for m in REPORTED}  # the fold's value: its seeds' mean
        done.append({"fold": result.fold, **own})
        trial = trial_fields(context, trial_id, params)
        parts = fold_parts(fold_frames(fold_runs, trial), list(spec.search.space))
        try:
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / STATE).write_text(json.dumps(done))
                models = save_fold_runs(Path(folder), fold_runs, config)  # search.keep moves them to RESULTS/models
                for r in fold_runs:
                    r.model = None  # on disk now: the weights need not stay in memory
                tune.report(
                    {**reported(spec, running_means(done)), **{fold_key(m): v for m, v in reported(spec, own).items()},
                     "folds_done": len(done), "fold": result.fold, ROWS: parts, MODELS_KEY: models},
                    checkpoint=tune.Checkpoint.from_directory(folder),
                )
        except OSError as e:
            if not is_disk_full(e):
                raise
            done.pop()  # not saved: the fold is not done
            # a report without a checkpoint needs no disk; raising instead would make the trial FAIL
            storage = tune.get_context().get_storage()
            _remove_partial(storage)
            # the file: the error's own, else the trial's folder in Tune's storage (pyarrow's copy names none)
            where = getattr(e, "filename", None) or storage.trial_fs_path
            tune.report({**reported(spec, running_means(done)), "folds_done": len(done), DISK_FULL: [str(where), free_bytes(where)]})
            raise

    trained = fold_runner(context.run_folds)(config, on_fold=on_fold, skip={d["fold"] for d in done}, on_progress=poster(context.board, trial_id), keep_models=True)
    if done and not trained:
        # restarted with every fold already written (the driver died before Tune recorded the
        # last ones): report the result once, so the scheduler and Optuna receive it
        tune.report({**reported(spec, running_means(done)), "folds_done": len(done), "fold": done[-1]["fold"]})


def _remove_partial(storage) -> None:
    """The checkpoint folder a full disk cut short (its files empty or truncated) goes: no
    partial file stays to be taken for a fold's checkpoint. Tune never recorded it; the trial
    writes the same folder again when it saves that fold after a resume."""
    try:
        storage.storage_filesystem.delete_dir(storage.checkpoint_fs_path)
    except (OSError, ValueError):
        pass  # none was started (the temporary folder filled first)


def retrain_folds(params: dict, spec: StudySpec, context: StudyContext, trial_id: str, folds: list[int]) -> list[tuple[FoldResult, dict]]:
    """Train these folds of a finished trial again (a Ray task: `resume` runs it for folds whose
    rows were lost). Each fold seeds itself from the config and its index alone, so the same
    folds give the same numbers where the device is deterministic."""
    config = spec.trial_config({**params, "data.folds": sorted(folds)}, context=TRUSTED)
    return [(r, trial_fields(context, trial_id, params)) for r in fold_runner(context.run_folds)(config, keep_models=True)]
