"""How long `fbp-search report` takes on a large study.

    python bench/report_bench.py                       # 10,000 trials x 5 folds, one part per fold
    python bench/report_bench.py --trials 2000 --layout per-trial --keep results/report-bench

Generates, in a temporary folder, a results directory in the layout the runner writes:
study.yaml; folds.parquet/ with one part file per (trial, fold) (`--layout per-fold`, what
`search.results.write_fold` and the Tune callback do) or one per trial; about 5% of trials
PRUNED by "ASHA" after 1-2 folds and 1% FAIL; predictions and epochs for a sample of trials
(always including the ones the report compares); and an Optuna journal of every trial. Then it
runs the report twice, cold (nothing cached) and warm (the folds snapshot in report/.cache),
and prints where the time goes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.results import ResultsDir, marks_name, part_name  # noqa: E402

LOSSES = ["combo", "l1", "mse", "smooth_l1"]
SPACE = {
    "loss.name": {"choice": LOSSES},
    "loss.alpha": {"float": [0.0, 4.0]},
    "loss.beta": {"float": [0.0, 4.0]},
    "train.lr": {"float": [0.001, 0.1], "log": True},
    "train.epochs": {"int": [10, 200]},
}
BASELINE = {"loss.name": "combo", "loss.alpha": 2.0, "loss.beta": 1.0, "train.lr": 0.01, "train.epochs": 100}
SUBSETS = np.array(["AF", "AM", "CF", "CM"])


def _write(folder: Path, name: str, table: pa.Table) -> None:
    pq.write_table(table, folder / f"{name}.parquet")


def generate(root: Path, trials: int, k: int, sample: int, images: int, epochs: int, layout: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    study = {
        "name": "bench", "spec_hash": "bench000000000000",
        "data": {"dataset": "scut-fbp5500", "protocol": "5fold", "folds": None},
        "model": {"backbone": "seresnext50_32x4d"}, "loss": {"name": "combo", "alpha": 2.0, "beta": 1.0, "gamma": 1.0},
        "train": {"epochs": 100, "lr": 0.01}, "eval": {"select": "last"},
        "search": {"sampler": "tpe", "num_trials": trials, "space": SPACE, "baseline": [BASELINE]},
        "objective": {"metric": "pc", "mode": "max"},
    }
    (root / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))

    # 1) trials: params, a quality, a status
    ids = np.array([f"bench_{i:05d}" for i in range(trials)])
    params = pd.DataFrame({
        "param.loss.name": rng.choice(LOSSES, trials),
        "param.loss.alpha": rng.uniform(0, 4, trials),
        "param.loss.beta": rng.uniform(0, 4, trials),
        "param.train.lr": np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), trials)),
        "param.train.epochs": rng.integers(10, 201, trials),
    })
    for path, value in BASELINE.items():
        params.loc[0, f"param.{path}"] = value
    quality = 0.90 - 0.004 * (params["param.loss.alpha"] - 2.5) ** 2 - 0.002 * np.log10(params["param.train.lr"] / 0.02) ** 2
    quality += params["param.loss.name"].map({"combo": 0.01, "l1": 0.0, "mse": -0.005, "smooth_l1": 0.002})
    u = rng.random(trials)
    status = np.where(u < 0.01, "FAIL", np.where(u < 0.06, "PRUNED", "COMPLETE"))
    status[0] = "COMPLETE"
    done = np.where(status == "COMPLETE", k, np.where(status == "PRUNED", rng.integers(1, 3, trials), 0))

    # 2) fold rows (COMPLETE), then the PRUNED / FAIL markers for the folds not done
    t_idx = np.repeat(np.arange(trials), done)
    fold = np.concatenate([np.arange(1, d + 1) for d in done]) if done.sum() else np.array([], int)
    n = len(t_idx)
    pc = np.clip(quality.to_numpy()[t_idx] + rng.normal(0, 0.006, n), -1, 1)
    folds = pd.DataFrame({
        "study": "bench", "spec_hash": study["spec_hash"], "trial_id": ids[t_idx], "fold": fold, "seed": 0,
        "status": "COMPLETE", "error": None,
        "mae": 0.2 + (0.93 - pc) * 1.5 + rng.normal(0, 0.004, n), "rmse": 0.27 + (0.93 - pc) * 2 + rng.normal(0, 0.005, n), "pc": pc,
        "n_train": images - images // k, "n_test": images // k, "epochs_run": params["param.train.epochs"].to_numpy()[t_idx],
        "selected_epoch": params["param.train.epochs"].to_numpy()[t_idx], "select": "last",
        "train_seconds": rng.uniform(600, 1800, n), "images_per_second": rng.uniform(2500, 3200, n), "device": "cuda:0",
        **{c: params[c].to_numpy()[t_idx] for c in params.columns},
    })
    folds["error"] = folds["error"].astype("string")
    markers = []
    for i in np.flatnonzero(status != "COMPLETE"):
        missing = list(range(int(done[i]) + 1, k + 1))
        markers.append(pd.DataFrame({
            "study": "bench", "spec_hash": study["spec_hash"], "trial_id": ids[i], "fold": missing, "seed": None, "status": status[i],
            "error": "RuntimeError: CUDA out of memory" if status[i] == "FAIL" else None,
            **{c: params.at[i, c] for c in params.columns},
        }))
    fdir = root / "folds.parquet"
    fdir.mkdir()
    table = pa.Table.from_pandas(folds, preserve_index=False)
    if layout == "per-fold":
        for j in range(n):
            _write(fdir, part_name(ids[t_idx[j]], fold[j]), table.slice(j, 1))
    else:
        starts = np.r_[0, np.cumsum(done)]
        for i in range(trials):
            if done[i]:
                _write(fdir, ids[i], table.slice(starts[i], done[i]))
    for m in markers:
        tid = m["trial_id"].iloc[0]
        _write(fdir, marks_name(tid, m["status"].iloc[0]), pa.Table.from_pandas(m.astype({"error": "string"}), preserve_index=False))

    # 3) predictions and epochs for a sample that holds what the report compares
    means = folds.groupby("trial_id")["pc"].mean()
    complete_ids = set(ids[status == "COMPLETE"])
    means = means[means.index.isin(complete_ids)]
    by_level = pd.DataFrame({"pc": means, "loss": params.set_index(ids).loc[means.index, "param.loss.name"]})
    chosen = {ids[0], *by_level.sort_values("pc", ascending=False).groupby("loss").head(1).index}
    rest = [t for t in rng.permutation(ids[status == "COMPLETE"]) if t not in chosen]
    chosen |= set(rest[: max(0, sample - len(chosen))])
    y_true = rng.uniform(1.0, 5.0, images)
    subset = SUBSETS[np.arange(images) % 4]
    image_names = np.array([f"img{i:05d}.jpg" for i in range(images)])
    fold_of = np.arange(images) % k + 1
    pdir, edir = root / "predictions.parquet", root / "epochs.parquet"
    pdir.mkdir()
    edir.mkdir()
    q = dict(zip(means.index, means.to_numpy()))
    for tid in sorted(chosen):
        noise = max(0.05, 0.27 + (0.93 - q[tid]) * 2.0)
        for f in range(1, k + 1):
            m = fold_of == f
            y = y_true[m]
            _write(pdir, part_name(tid, f), pa.table({
                "trial_id": [tid] * int(m.sum()), "fold": np.full(m.sum(), f), "image": image_names[m], "subset": subset[m],
                "y_true": y, "y_pred": y + rng.normal(0, noise, m.sum()), "y_reg": y, "y_exp": y,
            }))
            e = np.arange(1, epochs + 1)
            _write(edir, part_name(tid, f), pa.table({
                "trial_id": [tid] * epochs, "fold": np.full(epochs, f), "epoch": e, "lr": 0.01 * 0.1 ** (e // 50),
                "train_loss": 2.0 / np.sqrt(e) + rng.normal(0, 0.01, epochs), "test_mae": 0.4 - 0.1 * np.log1p(e) / np.log1p(epochs),
                "test_rmse": 0.5 - 0.1 * np.log1p(e) / np.log1p(epochs), "test_pc": q[tid] * (1 - np.exp(-e / 5)),
            }))

    # 4) the journal, built in memory and written in one go (a file backend fsyncs every trial)
    write_journal(root / ResultsDir.JOURNAL, "bench", ids, params, status, means)
    return {"trials": trials, "fold_parts": len(list(fdir.iterdir())), "predicted_trials": len(chosen)}


def write_journal(path: Path, name: str, ids, params: pd.DataFrame, status, means: pd.Series) -> None:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.storages.journal import BaseJournalBackend

    class Memory(BaseJournalBackend):
        def __init__(self):
            self.logs = []

        def read_logs(self, log_number_from):
            return self.logs[log_number_from:]

        def append_logs(self, logs):
            self.logs.extend(logs)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {
        "loss.name": CategoricalDistribution(LOSSES), "loss.alpha": FloatDistribution(0, 4), "loss.beta": FloatDistribution(0, 4),
        "train.lr": FloatDistribution(1e-3, 1e-1, log=True), "train.epochs": IntDistribution(10, 200),
    }
    backend = Memory()
    study = optuna.create_study(study_name=name, storage=optuna.storages.JournalStorage(backend), direction="maximize")
    records = params.to_dict("records")
    frozen = []
    for i, tid in enumerate(ids):
        p = {k.removeprefix("param."): (v.item() if hasattr(v, "item") else v) for k, v in records[i].items()}
        if status[i] == "FAIL":
            frozen.append(optuna.trial.create_trial(params=p, distributions=dists, state=optuna.trial.TrialState.FAIL))
        else:  # OptunaSearch records an ASHA-stopped trial as complete, with its partial mean
            frozen.append(optuna.trial.create_trial(params=p, distributions=dists, value=float(means.get(tid, 0.0))))
    study.add_trials(frozen)
    path.write_text("".join(json.dumps(log, separators=(",", ":")) + "\n" for log in backend.logs))


def run_report(root: Path, cache: bool) -> tuple[float, dict]:
    from search.report import build_report, write_report

    start = time.perf_counter()
    report = build_report(root, cache=cache)
    write_report(report, root / "report")
    return time.perf_counter() - start, report.timings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--sample", type=int, default=50, help="trials with predictions and epochs")
    ap.add_argument("--images", type=int, default=5500)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--layout", choices=["compacted", "per-fold", "per-trial"], default="compacted",
                    help="compacted: one folds part, as a finished study leaves it (default); per-fold: as a running study writes it; per-trial")
    ap.add_argument("--keep", type=Path, help="generate here and keep it (default: a temporary folder)")
    args = ap.parse_args()

    start = time.perf_counter()
    import matplotlib.figure  # noqa: F401
    import optuna  # noqa: F401

    import search.report._build  # noqa: F401  (import cost, counted apart)
    import search.report._plots  # noqa: F401
    print(f"imports: {time.perf_counter() - start:.1f} s")

    root = args.keep or Path(tempfile.mkdtemp(prefix="fbp-report-bench-")) / "bench"
    if root.exists():
        shutil.rmtree(root)
    start = time.perf_counter()
    info = generate(root, args.trials, args.folds, args.sample, args.images, args.epochs, "per-fold" if args.layout == "compacted" else args.layout)
    if args.layout == "compacted":
        ResultsDir(root).compact("folds")
    print(f"generated {info['trials']} trials x {args.folds} folds ({info['fold_parts']} folds parts, {args.layout}), "
          f"predictions and epochs for {info['predicted_trials']} trials, in {time.perf_counter() - start:.1f} s: {root}")
    try:
        for label, cache in (("cold (no snapshot)", True), ("warm (folds snapshot)", True)):
            seconds, timings = run_report(root, cache)
            parts = ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
            print(f"report {label}: {seconds:.2f} s  [{parts}]")
    finally:
        if args.keep is None:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
