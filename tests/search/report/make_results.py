"""Small results directories for the report's tests, written through `search.results.write_part`
exactly as the runner writes them, with a real Optuna journal.

Predictions are drawn first (true scores, a per-trial noise level set by its params), and every
fold metric in folds.parquet is computed from that fold's predictions, so a test can recompute
anything from predictions.parquet and compare.

Without the newer options the directory is laid out as before objective.on and train.repeats
existed: no `on` in study.yaml, no val_* metrics, one run per fold and no seed in epochs or
predictions. `on` writes objective.on; `holdout` (default: on == "val") adds the val_* metrics of
a validation part drawn with each trial's `val_noise`; `repeats` runs every fold once per seed
0..repeats-1, with the seed in every table. `test_share` with k = 1 tests only that share of the
images (one split, as SCUT-FBP5500's 60-40), the rest only ever trains. `data_root` is recorded
as data.root; with `stand_in_images` a SCUT-FBP5500 layout is written there (All_labels.txt with
the true scores, a small JPEG per image, named as SCUT-FBP5500 names them: AF1.jpg, AM2.jpg, ...).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from search.results import ResultsDir

SUBSETS = ("AF", "AM", "CF", "CM")


@dataclass
class T:
    """One trial: its params, status and how many folds it finished."""

    trial_id: str
    params: dict[str, Any]
    status: str = "COMPLETE"  # COMPLETE | PRUNED | FAIL
    folds_done: int | None = None  # default: all for COMPLETE, 1 for PRUNED, 0 for FAIL
    noise: float | None = None  # prediction noise sd; default from params
    val_noise: float | None = None  # the validation part's prediction noise sd (holdout); default: noise
    select: str = "last"
    error: str = "RuntimeError: loss is NaN at epoch 3"
    extra: dict[str, Any] = field(default_factory=dict)


SPACE = {
    "loss.name": {"choice": ["combo", "l1", "mse"]},
    "loss.alpha": {"float": [0.0, 4.0]},
    "train.lr": {"float": [0.001, 0.1], "log": True},
}


def default_noise(params: dict[str, Any]) -> float:
    base = {"combo": 0.30, "l1": 0.36, "mse": 0.40}.get(params.get("loss.name"), 0.35)
    return base + 0.03 * abs(float(params.get("loss.alpha", 2.0)) - 2.0)


def make_results(
    root: Path,
    trials: list[T],
    *,
    space: dict | None = None,
    baseline: dict | None = None,
    k: int = 5,
    n_images: int = 80,
    epochs: int = 4,
    eval_every: int = 1,
    dataset: str = "scut-fbp5500",
    protocol: str = "5fold",
    journal: bool = True,
    seed: int = 0,
    name: str = "toy",
    on: str | None = None,
    holdout: bool | None = None,
    repeats: int | None = None,
    test_share: float = 1.0,
    data_root: Path | None = None,
    stand_in_images: bool = False,
) -> Path:
    space = SPACE if space is None else space
    holdout = on == "val" if holdout is None else holdout
    seeds = list(range(repeats or 1))
    root.mkdir(parents=True, exist_ok=True)
    study = {
        "name": name,
        "data": {"dataset": dataset, "protocol": protocol, "folds": None, **({"root": str(data_root)} if data_root is not None else {})},
        "model": {"backbone": "seresnext50_32x4d"},
        "loss": {"name": "combo", "alpha": 2.0, "beta": 1.0, "gamma": 1.0},
        "train": {"epochs": epochs, "seed": 0, **({"repeats": repeats} if repeats else {})},
        "eval": {"select": trials[0].select if trials else "last", **({"holdout": True} if holdout else {})},
        "search": {"sampler": "tpe", "num_trials": max(1, len(trials)), "space": space, "baseline": [baseline] if baseline else []},
        "objective": {"metric": "pc", "mode": "max", **({"on": on} if on else {})},
        "spec_hash": "0123456789abcdef",
    }
    (root / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))

    rng = np.random.default_rng(seed)
    subsets = np.array([SUBSETS[i % 4] for i in range(n_images)])
    images = [f"{subsets[i]}{i + 1}.jpg" if stand_in_images else f"img{i:04d}.jpg" for i in range(n_images)]
    y_true = np.round(rng.uniform(1.2, 4.8, n_images), 4)
    fold_of = np.arange(n_images) % k + 1  # image i is tested in fold fold_of[i]
    if k == 1 and test_share < 1:  # one split: the other images only ever train (fold 0, never tested)
        fold_of = np.where(np.arange(n_images) % 5 < round(5 * test_share), 1, 0)
    if stand_in_images:
        write_dataset_root(Path(data_root), images, y_true)

    # test_* metrics only at the epochs fbp.kfold evaluates (every eval_every-th and the last)
    evaluated = np.array([e % eval_every == 0 or e == epochs for e in range(1, epochs + 1)])
    for t in trials:
        done = t.folds_done if t.folds_done is not None else {"COMPLETE": k, "PRUNED": 1, "FAIL": 0}[t.status]
        noise = t.noise if t.noise is not None else default_noise(t.params)
        val_noise = t.val_noise if t.val_noise is not None else noise
        trng = np.random.default_rng(zlib.crc32(t.trial_id.encode()))
        vrng = np.random.default_rng(zlib.crc32(f"{t.trial_id}/val".encode()))  # its own stream: the test draws stay as they were
        meta = {"study": name, "spec_hash": study["spec_hash"], "trial_id": t.trial_id, **{f"param.{p}": t.params.get(p) for p in space}}
        for fold in range(1, done + 1):
            m = fold_of == fold
            y = y_true[m]
            val_y = y_true[~m][::4]  # the validation part: a quarter of the training split
            epochs_rows, prediction_rows, fold_rows = [], [], []
            for run in seeds:
                key = {"trial_id": t.trial_id, "fold": fold, **({"seed": run} if repeats else {})}
                pred = y + trng.normal(0, noise, m.sum())
                e = pred - y
                pc = float(np.corrcoef(y, pred)[0, 1])
                val = {}
                if holdout:
                    val_pred = val_y + vrng.normal(0, val_noise, len(val_y))
                    val_e = val_pred - val_y
                    val = {"val_mae": float(np.abs(val_e).mean()), "val_rmse": float(np.sqrt((val_e**2).mean())), "val_pc": float(np.corrcoef(val_y, val_pred)[0, 1])}
                epochs_rows.append(pd.DataFrame({
                    **key, "epoch": np.arange(1, epochs + 1), "lr": 0.01,
                    "train_loss": np.linspace(2.0, 0.5, epochs) + 0.1 * fold,
                    "test_mae": np.where(evaluated, np.linspace(0.6, np.abs(e).mean(), epochs), np.nan),
                    "test_rmse": np.where(evaluated, np.linspace(0.7, np.sqrt((e**2).mean()), epochs), np.nan),
                    "test_pc": np.where(evaluated, np.linspace(0.3, pc, epochs), np.nan),
                    **{k: np.where(evaluated, v, np.nan) for k, v in val.items()},
                }))
                prediction_rows.append(pd.DataFrame({
                    **key, "image": np.array(images)[m], "subset": subsets[m],
                    "y_true": y, "y_pred": pred, "y_reg": pred, "y_exp": pred + 0.01,
                }))
                fold_rows.append({
                    **meta, "fold": fold, "seed": run, "status": "COMPLETE", "error": None,
                    "mae": float(np.abs(e).mean()), "rmse": float(np.sqrt((e**2).mean())), "pc": pc, **val,
                    "n_train": int((~m).sum()), "n_test": int(m.sum()), "epochs_run": epochs, "selected_epoch": epochs,
                    "select": t.select, "train_seconds": 1.5, "images_per_second": 100.0, "device": "cpu", **t.extra,
                })
            part = f"{t.trial_id}-fold{fold}"  # a fold's runs, every seed, in one part (as search.results.fold_frames)
            ResultsDir(root).write("epochs", part, pd.concat(epochs_rows, ignore_index=True))
            ResultsDir(root).write("predictions", part, pd.concat(prediction_rows, ignore_index=True))
            ResultsDir(root).write("folds", part, pd.DataFrame(fold_rows))
        if t.status in ("PRUNED", "FAIL"):
            missing = list(range(done + 1, k + 1)) or [-1]
            ResultsDir(root).write("folds", f"{t.trial_id}-{t.status.lower()}", pd.DataFrame([
                {**meta, "fold": f, "seed": None, "status": t.status, "error": t.error if t.status == "FAIL" else None} for f in missing
            ]))
    if journal:
        write_journal(root, name, trials, space, k, "val_pc" if on == "val" else "pc")
    return root


def write_dataset_root(root: Path, images: list[str], scores: np.ndarray, side: int = 32) -> None:
    """A SCUT-FBP5500 layout that `fbp.data.load_dataset` reads: the labels, and a flat-colour
    JPEG per image (tests.conftest's stand-ins)."""
    from tests.conftest import write_stand_in_images

    labels = root / "train_test_files" / "All_labels.txt"
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text("".join(f"{name} {score:.4f}\n" for name, score in zip(images, scores)))
    write_stand_in_images(root / "Images", images, side=side)


def write_journal(root: Path, name: str, trials: list[T], space: dict, k: int, key: str = "pc") -> None:
    """The Optuna journal the search would have written: each complete trial's mean `key` (what
    the objective read)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {}
    for path, dim in space.items():
        if "choice" in dim:
            dists[path] = CategoricalDistribution(dim["choice"])
        elif "int" in dim:
            dists[path] = IntDistribution(*dim["int"], log=bool(dim.get("log")))
        else:
            dists[path] = FloatDistribution(*dim["float"], log=bool(dim.get("log")))
    from search.report._io import read_table

    folds = read_table(root, "folds")
    # a study in which nothing completed has no metric columns at all (FAIL rows carry none)
    means = folds[folds["status"] == "COMPLETE"].groupby("trial_id")[key].mean() if key in folds.columns else pd.Series(dtype=float)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(root / "optuna.journal")))
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    frozen = []
    for t in trials:
        params = {p: v for p, v in t.params.items() if p in dists}
        if t.status == "FAIL":
            frozen.append(optuna.trial.create_trial(params=params, distributions={p: dists[p] for p in params}, state=optuna.trial.TrialState.FAIL))
        elif t.trial_id in means.index:
            frozen.append(optuna.trial.create_trial(params=params, distributions={p: dists[p] for p in params}, value=float(means[t.trial_id])))
    study.add_trials(frozen)


def standard_trials() -> list[T]:
    """Eight trials over SPACE: a baseline, a clear best, a test_oracle one, two PRUNED, one FAIL."""
    return [
        T("base_00000", {"loss.name": "combo", "loss.alpha": 2.0, "train.lr": 0.01}, noise=0.30),
        T("tr_00001", {"loss.name": "l1", "loss.alpha": 1.0, "train.lr": 0.003}),
        T("tr_00002", {"loss.name": "mse", "loss.alpha": 3.0, "train.lr": 0.05}),
        T("tr_00003", {"loss.name": "combo", "loss.alpha": 3.9, "train.lr": 0.02}, noise=0.12),  # best, at alpha's upper edge
        T("tr_00004", {"loss.name": "l1", "loss.alpha": 2.5, "train.lr": 0.01}, noise=0.25, select="test_oracle"),
        T("tr_00005", {"loss.name": "mse", "loss.alpha": 0.5, "train.lr": 0.002}, status="PRUNED", folds_done=2),
        T("tr_00006", {"loss.name": "combo", "loss.alpha": 1.5, "train.lr": 0.08}, status="PRUNED", folds_done=1),
        T("tr_00007", {"loss.name": "l1", "loss.alpha": 0.2, "train.lr": 0.09}, status="FAIL", folds_done=0),
    ]
