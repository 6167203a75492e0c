"""RESULTS/models: the selected fold models of a study's best trials, kept while it runs.

    models/<trial_id>/fold<k>.safetensors   fold k's selected model (format: fbp.export)
    models/<trial_id>/config.yaml           the trial's resolved config

Which trials: the best `search.keep_models` complete trials by the study's (first) objective,
and the baseline's (`search.baseline`). A trial that drops out of them is deleted when another
finishes, and unfinished ones when the study ends, so the folder holds at most (keep_models +
baselines + trials running) trials' models.

How a model gets here: a trial writes each finished fold's model into the checkpoint it
reports (search.trainable), which Tune persists to its storage (RESULTS/tune, or `--storage`:
a shared path or an object store every node reaches); the driver copies it from there into
models/<trial_id>/ before it writes the fold's rows (a fold row on disk means its model is
here, while its trial is kept) and deletes it from the checkpoint, which keeps only what a
restart needs. `fbp-search train` and the folds `resume` trains again write theirs directly.
"""

from __future__ import annotations

import math
import os
import shutil

import pandas as pd

from fbp.files import atomic_path
from search.results import ResultsDir, params_of, trial_status
from search.spec import StudySpec


def rank_trials(folds: pd.DataFrame, num_folds: int, metric: str, direction: str) -> list[tuple[str, float]]:
    """Complete trials, best first, by the mean over their folds of `metric` (a folds column:
    `pc`, or `val_pc` for an objective on the validation parts); a NaN mean ranks last. Ties
    keep the order the trials were written in."""
    statuses = trial_status(folds, num_folds)
    complete = statuses[statuses == "COMPLETE"].index
    if not len(complete) or metric not in folds.columns:
        return []
    rows = folds[folds["trial_id"].isin(complete) & (folds["status"] == "COMPLETE")]
    means = rows.groupby("trial_id", sort=False)[metric].mean()
    sign = -1.0 if direction == "max" else 1.0

    def order(item: tuple[int, tuple[str, float]]) -> tuple:
        i, (_, value) = item
        return (1, 0.0, i) if math.isnan(value) else (0, sign * value, i)

    ranked = sorted(enumerate(means.items()), key=order)
    return [(str(trial_id), float(value)) for _, (trial_id, value) in ranked]


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


def baseline_trials(folds: pd.DataFrame, baseline: list[dict]) -> set[str]:
    """The trials whose params are one of the baseline points."""
    if not baseline or folds.empty:
        return set()
    found = set()
    for trial_id, rows in folds.groupby("trial_id", sort=False):
        params = params_of(rows.iloc[0])
        if any(params.keys() == point.keys() and all(_same(params[k], v) for k, v in point.items()) for point in baseline):
            found.add(str(trial_id))
    return found


class Standings:
    """The complete trials' objective means and the baseline's trials, kept up to date one
    ended trial at a time: a running study reads the whole folds table once (a resumed one has
    rows already), then only each ended trial's rows. Reading the whole table at every trial's
    end made a study's cost grow with the square of its trials (bench/scale.py)."""

    def __init__(self, spec: StudySpec, num_folds: int):
        self.spec, self.num_folds = spec, num_folds
        self.means: dict[str, float] = {}  # complete trials, in the order they were written
        self.baseline: set[str] = set()
        self.loaded = False

    def add(self, folds: pd.DataFrame) -> None:
        """Take in these rows' trials (whole trials: every row of each)."""
        objective = self.spec.objectives[0]
        for trial_id, value in rank_trials(folds, self.num_folds, objective.key, objective.direction):
            self.means[trial_id] = value
        self.baseline |= baseline_trials(folds, [dict(p) for p in self.spec.search.baseline])

    def update(self, results: ResultsDir, ended: str | None = None) -> None:
        """The whole table the first time, afterwards the rows of the trial that `ended`."""
        if not self.loaded:
            self.add(results.read("folds"))
            self.loaded = True
        elif ended is not None:
            self.add(results.read("folds", trials={ended}))

    def kept(self) -> set[str]:
        """The best `search.keep_models` complete trials and the baseline's."""
        sign = -1.0 if self.spec.objectives[0].direction == "max" else 1.0

        def order(item: tuple[int, tuple[str, float]]) -> tuple:  # as rank_trials: NaN last, ties in written order
            i, (_, value) = item
            return (1, 0.0, i) if math.isnan(value) else (0, sign * value, i)

        ranked = sorted(enumerate(self.means.items()), key=order)
        return {trial_id for _, (trial_id, _) in ranked[: self.spec.search.keep_models]} | self.baseline


def trials_to_keep(results: ResultsDir, spec: StudySpec, num_folds: int) -> set[str]:
    """The best `search.keep_models` complete trials and the baseline's, from the folds table."""
    standings = Standings(spec, num_folds)
    standings.update(results)
    return standings.kept()


def settle(results: ResultsDir, spec: StudySpec, num_folds: int, running: set[str] = frozenset(), keep: set[str] | None = None) -> list[str]:
    """Delete the models of every trial neither kept (`keep`, by default `trials_to_keep`)
    nor still running; returns those trials. A folder is renamed (hidden) before it is
    removed: killed halfway, no half-deleted trial looks kept, and the next settle finishes
    the removal."""
    if keep is None:
        keep = trials_to_keep(results, spec, num_folds)
    keep = keep | set(running)
    dropped = [t for t in results.kept_trials() if t not in keep]
    models = results / results.MODELS
    for trial_id in dropped:
        doomed = models / f".deleting-{trial_id}"
        shutil.rmtree(doomed, ignore_errors=True)
        os.replace(results.model_dir(trial_id), doomed)
    for leftover in models.glob(".deleting-*") if models.is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)
    return dropped


def collect(results: ResultsDir, trial_id: str, filesystem, source: str, names: list[str]) -> None:
    """Copy a reported checkpoint's model files (`names`, in the folder `source` of the pyarrow
    `filesystem` Tune stores it in) into models/<trial_id>/, each under a temporary name and
    renamed into place, then delete them from the checkpoint."""
    import pyarrow.fs as pafs

    folder = results.model_dir(trial_id)
    folder.mkdir(parents=True, exist_ok=True)
    local = pafs.LocalFileSystem()
    for name in names:
        with atomic_path(folder / name) as tmp:
            pafs.copy_files(f"{source}/{name}", str(tmp), source_filesystem=filesystem, destination_filesystem=local)
    for name in names:  # only once all are here: a copy that failed leaves its source for a retry
        filesystem.delete_file(f"{source}/{name}")

