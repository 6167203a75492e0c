"""Cluster scale, measured by simulation: how many GPUs one study driver can feed.

    python bench/scale.py --trials 2000            # about 10 minutes on 2 cores
    python bench/scale.py --trials 10000 --plot    # the curves of docs/scaling.md

The driver is the real one: the study spec, Optuna's TPE and its journal, Ray Tune with ASHA
on folds, the Parquet writer, the kill and `resume`, the report. Only the training is replaced:
`simulated_kfold` (named through `StudyContext.run_folds`) sleeps a drawn fold time and
reports the rows a paper-protocol fold reports (200 epoch rows, 1,100 test-image predictions)
with metrics from a known response surface of the searched knobs. Its workers never import
torch. Ray runs on loopback with 256 logical GPUs, each trial reserving half of one; the
trials at once are bounded (`--concurrency`) so that two cores cope, and the folds are short,
so that training costs next to nothing: the cores go to the driver, to the trial workers' own
overhead (reporting, checkpoints, encoding the rows) and to Ray's services. Each is measured;
the driver's CPU per fold result gives the rate it could absorb alone (its ceiling), whatever
else the machine runs.

It runs the driver as a subprocess, kills it (SIGKILL, by pid) once half the trials have
finished, resumes the study through the real resume path, and prints per `--every` trials:

    results/s   fold results the driver absorbed per second (written to Parquet)
    ask         Optuna's ask for a trial's params (TPE: grows with the trials it models)
    tell        Optuna's tell when a trial ends
    save        Tune's experiment-state snapshot (how many, the longest, its size)
    driver      the driver process's resident memory
    parts       Parquet part files of the folds / epochs / predictions tables

then the resume, the folds table's compaction, the report's time and the accounting: every
simulated fold result in Parquet exactly once, the journal's trial states agreeing with the
Parquet rows, and nothing absorbed before the kill lost. No timing is asserted: the numbers
are for reading (docs/scaling.md); a broken accounting ends with exit code 1.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from fbp.loss_names import COMBO_TERMS, TOTAL, train_name
from fbp.metrics import NAMES, VAL_NAMES, curve_name, val_name
from fbp.records import FoldResult, TrainProgress
from search.processes import descendants, end, stat_fields

ROOT = Path(__file__).resolve().parents[1]
FOLD_MS = "FBP_SCALE_FOLD_MS"  # median simulated fold time, read by the workers
TEST_IMAGES = "FBP_SCALE_TEST_IMAGES"  # predictions rows per fold (the paper's test fold: 1,100)
RUN_FOLDS = "bench.scale:simulated_kfold"
PROFILE = "FBP_SCALE_PROFILE"  # set (--profile): each driver writes a cProfile of its run beside its events
LOGICAL_GPUS = 256
GPU_PER_TRIAL = 0.5

# --- the simulated trial ------------------------------------------------------------------------

SPACE = {
    "loss.alpha": {"float": [0.0, 4.0]},
    "loss.beta": {"float": [0.0, 4.0]},
    "loss.gamma": {"float": [0.0, 4.0]},
    "train.lr": {"float": [1e-4, 1e-1], "log": True},
    "train.weight_decay": {"float": [1e-6, 1e-2], "log": True},
    "train.schedule.name": {"choice": ["step", "cosine", "onecycle"]},
}
BEST_PC = 0.90  # at alpha/beta/gamma 2/1/1, lr 10^-2.5, weight decay 1e-4, onecycle
FOLD_OFFSET = {1: 0.004, 2: -0.006, 3: 0.002, 4: -0.003, 5: 0.003}  # folds differ a little, as real ones do
NOISE = 0.01  # sd of a fold's PC around the surface


def surface(config) -> float:
    """The known PC of a configuration: BEST_PC at the optimum, falling off quadratically in
    each knob (in decades for lr and weight decay), less a penalty for a worse schedule."""
    distance = (((config.loss.alpha - 2) / 2) ** 2 + ((config.loss.beta - 1) / 2) ** 2 + ((config.loss.gamma - 1) / 2) ** 2
                + (math.log10(config.train.lr) + 2.5) ** 2 + 0.25 * (math.log10(config.train.weight_decay) + 4) ** 2)
    return BEST_PC - 0.05 * distance - {"onecycle": 0.0, "cosine": 0.01, "step": 0.03}[config.train.schedule.name]


def _knobs(config) -> list:
    return [config.loss.alpha, config.loss.beta, config.loss.gamma, config.train.lr, config.train.weight_decay, config.train.schedule.name]


def fold_metrics(config, fold: int) -> dict[str, float]:
    """A fold's test and validation metrics: the surface, the fold's offset and seeded noise.
    The same config and fold give the same numbers, as a seeded fold on the CPU does."""
    rng = np.random.default_rng(zlib.crc32(json.dumps([*_knobs(config), fold, config.train.seed]).encode()))
    pc, val_pc = surface(config) + FOLD_OFFSET.get(fold, 0.0) + rng.normal(0, NOISE, 2)
    test, val = _figures(pc), _figures(val_pc)
    return test | {val_name(m): v for m, v in val.items()}


def _figures(pc: float) -> dict[str, float]:
    """Every metric of a simulated fold from its PC: MAE and RMSE fall as PC rises."""
    mae = float(0.2 + 0.8 * (1 - pc))
    return {"mae": mae, "rmse": float(1.3 * mae), "pc": float(pc)}


def simulated_kfold(config, on_fold=None, skip=frozenset(), on_progress=None, keep_models=False) -> list[FoldResult]:
    """`fbp.kfold.run_kfold` by simulation: for each fold not in `skip`, sleep a fold time drawn
    around FBP_SCALE_FOLD_MS (log-normal), then hand over a FoldResult shaped as a real one,
    without a model (`keep_models` is taken and ignored: there are no weights to keep)."""
    folds = list(config.data.folds or range(1, 6))
    epochs, images = config.train.epochs, int(os.environ.get(TEST_IMAGES, "1100"))
    results = []
    for position, fold in enumerate([f for f in folds if f not in skip], 1):
        metrics = fold_metrics(config, fold)
        rng = np.random.default_rng(zlib.crc32(json.dumps([*_knobs(config), fold, "rows"]).encode()))
        started = time.time()
        time.sleep(float(os.environ.get(FOLD_MS, "30")) / 1000 * rng.lognormal(0.0, 0.5))
        curve = np.linspace(1.5, 0.4, epochs) + rng.normal(0, 0.01, epochs)
        curves = [{"epoch": e + 1, "lr": config.train.lr, train_name(TOTAL): float(curve[e]),
                   **{train_name(term): float(curve[e] * share) for term, share in zip(COMBO_TERMS, (1 / 2, 1 / 4, 1 / 4))}, **{curve_name(m): metrics[m] for m in NAMES},
                   **{m: metrics[m] for m in VAL_NAMES}} for e in range(epochs)]
        y_true = rng.uniform(1, 5, images)
        y_pred = y_true + rng.normal(0, metrics["rmse"], images)
        predictions = {"image": [f"sim{i:05d}.jpg" for i in range(images)], "subset": [("AF", "AM", "CF", "CM")[i % 4] for i in range(images)],
                       "y_true": y_true.tolist(), "y_pred": y_pred.tolist(), "y_reg": y_pred.tolist(), "y_exp": y_pred.tolist()}
        result = FoldResult(fold=fold, n_train=4400, n_test=images, epochs_run=epochs, selected_epoch=epochs, select=config.eval.select,
                            train_seconds=time.time() - started, images_per_second=0.0, device="simulated", started_at=started,
                            finished_at=time.time(), seed=config.train.seed, curves=curves, predictions=predictions, **metrics)
        if on_progress is not None:  # one post per fold: the board's path, without 200 posts in 30 ms
            on_progress(TrainProgress("epoch", fold, position, len(folds) - len(skip), epochs, epochs, 1, 1, float(curve[-1]), None,
                                      time.time() - started, None, test={m: metrics[m] for m in NAMES}))
        results.append(result)
        if on_fold is not None:
            on_fold(result)
    return results


# --- the driver (a subprocess of the harness) -----------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _parts(results: Path) -> dict[str, int]:
    return {t: sum(1 for e in os.scandir(results / f"{t}.parquet") if e.name.endswith(".parquet")) if (results / f"{t}.parquet").is_dir() else 0
            for t in ("folds", "epochs", "predictions")}


def _instrument(events, results: Path, every: int):
    """Time the driver's own calls where they happen, each as one JSON line in `events`.
    Every wrapped call still runs the real code; nothing is replaced."""
    from ray.tune.execution.tune_controller import TuneController

    import search.repair
    import search.runner
    import search.tuner
    from search.callbacks import ParquetWriter
    from search.results import ResultsDir
    from search.searcher import StudySearcher

    def emit(kind: str, **fields) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)  # the driver's CPU so far, all its threads
        events.write(json.dumps({"e": kind, "t": time.time(), "cpu": usage.ru_utime + usage.ru_stime, **fields}) + "\n")
        events.flush()  # the driver is killed: what it timed must be on disk already

    def timed(owner, name: str, kind: str, fields=lambda call, out: {}, before: bool = False):
        """`fields(call, out)`: the event's fields from the call's arguments by name and its
        return value (None: no event); `before`: from the arguments as they were passed (out
        is None), for a call that changes them."""
        original = getattr(owner, name)
        signature = inspect.signature(original)

        def wrapper(*args, **kwargs):
            extra = fields(signature.bind(*args, **kwargs).arguments, None) if before else None
            start = time.perf_counter()
            out = original(*args, **kwargs)
            if not before:
                extra = fields(signature.bind(*args, **kwargs).arguments, out)
            if extra is not None:
                emit(kind, s=time.perf_counter() - start, **extra)
            return out

        setattr(owner, name, wrapper)

    finished: set[str] = set()

    def done(call, out):
        finished.add(call["trial"].trial_id)
        return {"trial": call["trial"].trial_id, **({"parts": _parts(results)} if len(finished) % every == 0 else {})}

    def state_size(call, out):
        """The snapshot just written: the newest file of each kind (a resumed driver writes its
        own, named by its start; the killed driver's stay beside them, and are not this save)."""
        folder = Path(call["self"]._storage.experiment_driver_staging_path)
        newest: dict[str, os.stat_result] = {}
        for p in folder.glob("*"):
            kind = next((k for k in ("experiment_state", "searcher-state", "search_gen_state") if p.name.startswith(k)), None)
            if kind and p.is_file() and (kind not in newest or p.stat().st_mtime_ns > newest[kind].st_mtime_ns):
                newest[kind] = p.stat()
        return {"mb": sum(st.st_size for st in newest.values()) / 2**20}

    timed(StudySearcher, "suggest", "ask", lambda call, out: {} if isinstance(out, dict) else None)
    timed(StudySearcher, "on_trial_complete", "tell")
    timed(ParquetWriter, "on_trial_result", "result",
          lambda call, out: {"trial": call["trial"].trial_id, "fold": call["result"].get("fold"), "rss": _rss_mb()} if "fbp_rows" in call["result"] else None,
          before=True)
    timed(ParquetWriter, "on_trial_complete", "done", done)
    timed(TuneController, "save_to_dir", "save", state_size)
    timed(ResultsDir, "compact", "compact", lambda call, out: {"table": call["table"], "merged": out})
    timed(search.repair, "repair", "repair", lambda call, out: {"folds": out})
    timed(search.tuner, "restore_tuner", "restore")
    fit = search.runner._fit

    def fit_marked(*args, **kwargs):
        emit("fit")  # Tune's run starts: the driver's CPU before it (Ray, preflight) is not the study's
        return fit(*args, **kwargs)

    search.runner._fit = fit_marked
    emit("start", pid=os.getpid(), rss=_rss_mb())
    return emit


def drive(mode: str, source: Path, results: Path, events_path: Path, concurrency: int, every: int) -> int:
    """Run (or resume) the study on a fresh local Ray, timing the driver as it goes."""
    import logging

    import ray

    from search.console import command_console
    from search.runner import resume_study, run_study
    from search.spec import load_spec

    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])  # workers import bench.scale
    with open(events_path, "a") as events:
        emit = _instrument(events, results, every)
        ray.init(address="local", num_cpus=concurrency, num_gpus=LOGICAL_GPUS, object_store_memory=512 * 2**20,
                 include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        profile = None
        if os.environ.get(PROFILE):
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        try:
            if mode == "run":
                outcome = run_study(load_spec(source), str(source), results, console=command_console(), run_folds=RUN_FOLDS)
            else:
                outcome = resume_study(results, console=command_console(), run_folds=RUN_FOLDS)
            if profile is not None:
                profile.disable()
                profile.dump_stats(events_path.with_suffix(".prof"))
            emit("end", rss=_rss_mb(), retrained=outcome.get("retrained", 0), orphans_failed=outcome.get("orphans_failed", 0))
        finally:
            ray.shutdown()
    return 0


# --- the harness ------------------------------------------------------------------------------------


def study(trials: int, concurrency: int, seed: int, tpe_window: int | None = None) -> dict:
    from fbp.data.synthetic import SMALL

    return {
        "name": "scale", "description": "bench/scale.py: the driver at scale, folds simulated (bench.scale.simulated_kfold)",
        "data": {"dataset": "synthetic", "options": dict(SMALL), "protocol": "5fold"},
        "model": {"backbone": "test_resnet", "pretrained": False},
        "loss": {"discretization": {"rule": "quantile", "num_classes": 5}},  # SMALL's 60 faces leave a paper class empty in fold 5
        "train": {"epochs": 200},  # the paper's: each fold reports 200 epoch rows
        "search": {"sampler": "tpe", "num_trials": trials, "seed": seed, "space": SPACE, **({"tpe_window": tpe_window} if tpe_window else {})},
        "objective": {"metric": "pc", "on": "val"},
        "scheduler": {"name": "asha", "grace_folds": 1, "reduction_factor": 2},
        # bounded by max_concurrent, as the shipped studies are: Tune then starts the next trial
        # on the worker of the one that ended. Bounded by Ray's CPUs alone (max_concurrent 0),
        # trials this short end before new workers start, and every trial spawned its own
        # process: 3 to 6 trials ran of 16, and Ray's own services took 3x the CPU per result
        "resources": {"cpu": 1, "gpu": GPU_PER_TRIAL, "max_concurrent": concurrency},
    }


def _cpu_seconds(pid: int) -> tuple[float, str] | None:
    """(user + system CPU seconds, its command's first word) of a live process."""
    fields = stat_fields(pid)
    try:
        name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return None
    return None if fields is None else ((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), name)


class _Finished:
    """The trials a driver's events say have finished, read as the file grows."""

    def __init__(self, events: Path):
        self.events, self.offset, self.trials = events, 0, set()

    def count(self) -> int:
        if self.events.exists():
            with open(self.events, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
            whole = chunk[: chunk.rfind(b"\n") + 1]
            self.offset += len(whole)
            self.trials.update(json.loads(line)["trial"] for line in whole.decode().splitlines() if '"e": "done"' in line)
        return len(self.trials)


def _driver(mode: str, args, source: Path, results: Path, events: Path, kill_at: int | None) -> dict:
    """Start a driver; with `kill_at`, SIGKILL it once that many trials have finished. Its CPU,
    its trial workers' and Ray's own services' are sampled as it runs."""
    command = [sys.executable, __file__, "--driver", mode, "--source", str(source), "--results", str(results), "--events", str(events),
               "--concurrency", str(args.concurrency), "--every", str(args.every)]
    env = {**os.environ, FOLD_MS: str(args.fold_ms), TEST_IMAGES: str(args.test_images), **({PROFILE: "1"} if args.profile else {}),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    log = open(results.parent / f"driver-{mode}.log", "w")
    start = time.time()
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    killed, finished, cpu, sampled, started = None, _Finished(events), {}, 0.0, set()
    while process.poll() is None:
        time.sleep(0.25)
        if time.time() - sampled > 1.0:
            below = descendants(process.pid)
            started.update(below)
            for pid in [process.pid, *(p for p, _ in below)]:
                seen = _cpu_seconds(pid)
                if seen is not None:
                    kind = "driver" if pid == process.pid else "workers" if seen[1].startswith("ray::") else "services"
                    cpu[pid] = (max(seen[0], cpu.get(pid, (0.0,))[0]), kind)
            sampled = time.time()
        if kill_at is not None and finished.count() >= kill_at:
            below = descendants(process.pid)
            started.update(below)
            os.kill(process.pid, signal.SIGKILL)  # the child this harness started, by its pid
            process.wait()
            killed = {"pid": process.pid, "t": time.time(), "leftovers": end(below, grace=2.0, terminate=False)}
    log.close()
    leftovers = end(sorted(started), grace=2.0, terminate=False)  # normally none left: the driver shut its Ray down
    if killed is None and process.returncode != 0:
        sys.exit(f"the {mode} driver failed (exit code {process.returncode}); its log: {log.name}\n" + Path(log.name).read_text()[-3000:])
    by_kind = {kind: sum(c for c, k in cpu.values() if k == kind) for kind in ("driver", "workers", "services")}
    return {"start": start, "end": time.time(), "killed": killed, "leftovers": leftovers, "cpu": by_kind}


def _count_done(events: Path) -> int:
    return _Finished(events).count()


def _read(events: Path) -> list[dict]:
    """A driver's events, each with `dcpu`: the driver's CPU seconds since its previous event
    (none before Tune's run started)."""
    out, previous = [], None
    for line in events.read_text().splitlines() if events.exists() else []:
        if line.endswith("}"):  # a killed driver may leave half a line
            e = json.loads(line)
            e["dcpu"] = e["cpu"] - previous if previous is not None else 0.0
            previous = e["cpu"] if e["e"] != "start" else None
            out.append(e)
    return out


def _ms(values) -> str:
    if not len(values):
        return "-"
    v = np.asarray(values) * 1000
    return f"{np.median(v):.0f}/{np.percentile(v, 95):.0f}/{v.max():.0f}"


def measure(run: list[dict], resume: list[dict], killed: dict | None, every: int) -> list[dict]:
    """One row per `every` finished trials, from both sessions' events."""
    events = run + resume
    gap = (killed["t"], next((e["t"] for e in resume if e["e"] == "result"), killed["t"])) if killed else None
    firsts: dict[str, float] = {}
    for e in events:
        if e["e"] == "done":
            firsts.setdefault(e["trial"], e["t"])
    ends = sorted(firsts.values())
    asks = [e for e in events if e["e"] == "ask"]
    tells = [e for e in events if e["e"] == "tell"]
    rows, begin = [], next(e["t"] for e in events if e["e"] == "start")
    bounds = list(range(0, len(ends), every)) + [len(ends)]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < every // 2:
        del bounds[-2]  # a short tail (orphans finished by resume add trials) joins the last row
    for lo, hi in zip(bounds, bounds[1:]):
        end = ends[hi - 1]
        inside = [e for e in events if begin < e["t"] <= end]
        seconds = end - begin - (max(0.0, min(end, gap[1]) - max(begin, gap[0])) if gap else 0.0)
        results = [e for e in inside if e["e"] == "result"]
        saves = [e for e in inside if e["e"] == "save"]
        parts = [e["parts"] for e in inside if e["e"] == "done" and "parts" in e]
        cpu = sum(e["dcpu"] for e in inside)
        rows.append({
            "trials": f"{lo}-{hi}", "results_per_s": len(results) / seconds if seconds > 0 else float("nan"),
            "busy": cpu / seconds if seconds > 0 else float("nan"), "cpu_per_result": cpu / len(results) if results else float("nan"),
            "ask": [e["s"] for e in asks[lo:hi]], "tell": [e["s"] for e in tells[lo:hi]],
            "saves": len(saves), "save_max": max((e["s"] for e in saves), default=float("nan")), "state_mb": max((e["mb"] for e in saves), default=float("nan")),
            "rss": max((e["rss"] for e in results), default=float("nan")), "parts": parts[-1] if parts else None,
            "write": [e["s"] for e in results], "crossed_kill": bool(gap and begin < gap[0] <= end), "end": end,
        })
        begin = end
    return rows


TABLE_HEAD = (f"{'trials':>11} {'results/s':>9} {'busy':>5} {'CPU ms/result':>13} {'ask ms p50/p95/max':>18} {'tell ms p50/max':>15} "
              f"{'saves n/max s/MB':>17} {'driver MB':>9}  parts folds/epochs/predictions")


def _row(r: dict) -> str:
    """A printed row: results/s absorbed; how busy the driver's process was (its CPU over the
    wall time) and its CPU per fold result; Optuna's ask and tell; Tune's state snapshots; the
    driver's resident memory; the part files at the row's end."""
    tell = f"{np.median(r['tell']) * 1000:.0f}/{max(r['tell']) * 1000:.0f}" if r["tell"] else "-"
    saves = f"{r['saves']}/{r['save_max']:.2f}/{r['state_mb']:.1f}"
    parts = "/".join(str(v) for v in r["parts"].values()) if r["parts"] else "-"
    return (f"{r['trials']:>11} {r['results_per_s']:9.1f} {r['busy']:5.0%} {r['cpu_per_result'] * 1000:13.0f} {_ms(r['ask']):>18} {tell:>15} "
            f"{saves:>17} {r['rss']:9.0f}  {parts}{'  (kill and resume)' if r['crossed_kill'] else ''}")


def _resume_lines(out: Path, run: list[dict], resume: list[dict], first: dict, second: dict | None) -> dict:
    if not first["killed"]:
        return {"lines": [], "seconds": float("nan")}
    k = first["killed"]
    back = next((e["t"] for e in resume if e["e"] == "result"), float("nan"))
    repair = next((e for e in resume if e["e"] == "repair"), {"s": 0.0, "folds": 0})
    ended = next((e for e in resume if e["e"] == "end"), {"orphans_failed": 0})
    return {"seconds": back - second["start"], "lines": [
        f"kill: the driver (pid {k['pid']}) SIGKILLed once {_count_done(out / 'events-run.jsonl')} trials had finished and "
        f"{sum(e['e'] == 'result' for e in run)} fold results were written; {k['leftovers']} Ray processes it had started ended by pid",
        f"resume: first fold result {back - second['start']:.1f} s after `resume` started ({back - k['t']:.1f} s after the kill); at its end "
        f"{repair['folds']} folds of trials Tune had not recorded trained again ({repair['s']:.1f} s), {ended['orphans_failed']} asked trials that never ran failed in the journal",
    ]}


def account(results: Path, trials: int, run: list[dict]) -> list[str]:
    """The accounting, from what is on disk: raises AssertionError with the first broken rule."""
    import optuna
    import pyarrow.parquet as pq

    from fbp.config import TRUSTED
    from search.results import ResultsDir, params_of, trial_status

    directory = ResultsDir(results)
    spec, _ = directory.load_spec()
    raw = pq.ParquetDataset(str(directory.table_dir("folds"))).read().to_pandas()  # every part's rows, no dedupe
    twice = raw[raw.duplicated(subset=["trial_id", "fold", "seed"], keep=False)]
    assert twice.empty, f"{len(twice)} folds rows of the same fold, e.g. {twice.iloc[0][['trial_id', 'fold', 'status']].to_dict()}"
    status = trial_status(raw, 5)
    assert not (status == "INCOMPLETE").any(), f"{int((status == 'INCOMPLETE').sum())} trials neither finished nor marked"
    complete = raw[raw["status"] == "COMPLETE"]
    absorbed = {(e["trial"], e["fold"]) for e in run if e["e"] == "result"}
    lost = absorbed - set(zip(complete["trial_id"], complete["fold"]))
    assert not lost, f"{len(lost)} fold results written before the kill are gone, e.g. {sorted(lost)[0]}"
    for _, row in complete.sample(min(200, len(complete)), random_state=0).iterrows():  # the rows are the surface's numbers
        expected = fold_metrics(spec.trial_config(params_of(row), context=TRUSTED), int(row["fold"]))
        assert abs(row["val_pc"] - expected["val_pc"]) < 1e-9, f"{row['trial_id']} fold {row['fold']}: val_pc {row['val_pc']}, the surface gives {expected['val_pc']}"
    journal = optuna.load_study(study_name=spec.name, storage=directory.journal()).get_trials(deepcopy=False)
    states = {s: sum(t.state.name == s for t in journal) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    counts = status.value_counts()
    assert states["COMPLETE"] == counts.get("COMPLETE", 0), f"journal COMPLETE {states['COMPLETE']}, Parquet {counts.get('COMPLETE', 0)}"
    assert states["PRUNED"] == counts.get("PRUNED", 0), f"journal PRUNED {states['PRUNED']}, Parquet {counts.get('PRUNED', 0)}"
    assert states["RUNNING"] == 0, f"{states['RUNNING']} journal trials left RUNNING"
    assert len(status) >= trials, f"{len(status)} trials in Parquet, the study asked for {trials}"
    return [f"accounting: {len(complete)} fold results in Parquet, each once; {len(status)} trials: "
            f"{counts.get('COMPLETE', 0)} complete = journal {states['COMPLETE']}, {counts.get('PRUNED', 0)} pruned = journal {states['PRUNED']}, "
            f"journal FAIL {states['FAIL']} (trials asked that never reported a fold: the kill's); none INCOMPLETE",
            f"across the kill: all {len(absorbed)} fold results written before it are there, none twice"]


def report_seconds(results: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "search.cli", "report", str(results)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])})
    if done.returncode != 0:
        sys.exit(f"the report failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    own = next((line for line in done.stdout.splitlines() if line.startswith("report took")), "")
    return time.perf_counter() - start, own


def plot(rows: list[dict], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    x = [int(r["trials"].split("-")[1]) for r in rows]
    curves = {  # file: (title, first curve and its label, second curve and its label)
        "results_per_second.png": ("fold results per second", ([r["results_per_s"] for r in rows], "absorbed"),
                                   ([1 / r["cpu_per_result"] for r in rows], "driver ceiling (1 / its CPU per result)")),
        "driver_cpu_per_result.png": ("driver CPU per fold result, ms", ([r["cpu_per_result"] * 1000 for r in rows], None), None),
        "ask_latency.png": ("Optuna ask, ms", ([np.median(r["ask"]) * 1000 for r in rows], "median"), ([np.percentile(r["ask"], 95) * 1000 for r in rows], "p95")),
        "driver_memory.png": ("driver resident memory, MB", ([r["rss"] for r in rows], None), None),
        "state_save.png": ("Tune experiment-state snapshot, longest, s", ([r["save_max"] for r in rows], None), None),
    }
    written = []
    for name, (title, (y, label), second) in curves.items():
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(x, y, marker="o", label=label)
        if second:
            ax.plot(x, second[0], marker="s", label=second[1])
            ax.legend(fontsize=8)
        ax.set_xlabel("trials finished")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        written.append(folder / name)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000, help="trials of the study (default %(default)s)")
    parser.add_argument("--every", type=int, default=None, help="trials per printed row (default 1000, or a quarter of a smaller study)")
    parser.add_argument("--concurrency", type=int, default=16, help="trials at once (default %(default)s: what 2 cores hold)")
    parser.add_argument("--fold-ms", type=float, default=30.0, help="median simulated fold time, ms (default %(default)s)")
    parser.add_argument("--test-images", type=int, default=1100, help="prediction rows per fold (default %(default)s, the paper's test fold)")
    parser.add_argument("--kill-at", type=float, default=0.5, help="kill the driver when this share of the trials has finished (0: never)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tpe-window", type=int, help="search.tpe_window: the latest trials TPE models (default the study default; 100000: all)")
    parser.add_argument("--out", type=Path, help="where the study's results and the events go (default: a new temporary folder)")
    parser.add_argument("--profile", action="store_true", help="profile each driver (cProfile, events-*.prof beside the events)")
    parser.add_argument("--plot", type=Path, nargs="?", const=ROOT / "docs" / "scaling", help="write the curves as PNG (default folder docs/scaling)")
    parser.add_argument("--driver", choices=["run", "resume"], help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.every = args.every or (1000 if args.trials >= 4000 else max(1, args.trials // 4))
    if args.driver:
        return drive(args.driver, args.source, args.results, args.events, args.concurrency, args.every)

    import tempfile

    import yaml

    from search.spec import SearchSpec

    out = args.out or Path(tempfile.mkdtemp(prefix="fbp-scale-"))
    out.mkdir(parents=True, exist_ok=True)
    source, results = out / "scale.yaml", out / "scale"
    raw = study(args.trials, args.concurrency, args.seed, args.tpe_window)
    source.write_text(yaml.safe_dump(raw, sort_keys=False))
    window = args.tpe_window or SearchSpec().tpe_window
    print(f"scale: {args.trials} trials x 5 folds, TPE over the {window} latest trials, ASHA on folds (grace 1, factor 2); {args.concurrency} trials at once of "
          f"{GPU_PER_TRIAL} GPU each on {LOGICAL_GPUS} logical GPUs; simulated folds ~{args.fold_ms:g} ms, {args.test_images} prediction rows each; "
          f"results in {results}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    kill_at = int(args.trials * args.kill_at) if args.kill_at > 0 else None
    first = _driver("run", args, source, results, out / "events-run.jsonl", kill_at)
    second = _driver("resume", args, source, results, out / "events-resume.jsonl", None) if first["killed"] else None
    run, resume = _read(out / "events-run.jsonl"), _read(out / "events-resume.jsonl")
    rows = measure(run, resume, first["killed"], args.every)

    print(TABLE_HEAD)
    for r in rows:
        print(_row(r))
    resumed = _resume_lines(out, run, resume, first, second)
    for line in resumed["lines"]:
        print(line)
    compaction = [e for e in run + resume if e["e"] == "compact" and e["merged"] > 1]  # resume compacts before repair, then what repair added
    end = next((e for e in reversed(run + resume) if e["e"] == "end"), None)
    seconds, own = report_seconds(results)
    absorbed = sum(e["e"] == "result" for e in run + resume)
    cpu = sum(e["dcpu"] for e in run + resume)
    print(f"end: {absorbed} fold results, {absorbed / cpu * 1:.1f} per driver CPU second; "
          + "; ".join(f"compaction of the {c['table']} table: {c['merged']} parts -> 1 in {c['s']:.2f} s" for c in compaction)
          + f"; driver at its end {end['rss'] if end else float('nan'):.0f} MB; `fbp-search report` {seconds:.1f} s ({own})"
          + "".join(f"; {d['leftovers']} processes left by the {name} driver ended" for name, d in (("first", first), ("resumed", second)) if d and d["leftovers"]))
    sessions = [first, *([second] if second else [])]
    spent = {kind: sum(d["cpu"][kind] for d in sessions) for kind in ("driver", "workers", "services")}
    wall = sum(d["end"] - d["start"] for d in sessions)
    print(f"the simulated cluster's CPU per fold result: driver {spent['driver'] / absorbed * 1000:.0f} ms, trial workers {spent['workers'] / absorbed * 1000:.0f} ms, "
          f"Ray's services {spent['services'] / absorbed * 1000:.0f} ms; {sum(spent.values()) / wall:.2f} of this machine's {os.cpu_count()} cores on average "
          f"(startup, preflight and repair included)")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (other processes of this machine count too)")
    print(f"search: best val_pc {_best(results):.4f}; the surface's optimum {BEST_PC:.4f} (each fold adds noise of sd {NOISE})")
    try:
        for line in account(results, args.trials, run):
            print(line)
    except AssertionError as e:
        print(f"accounting BROKEN: {e}")
        return 1
    last = rows[-1]
    ask95 = np.percentile(last["ask"], 95) if last["ask"] else float("nan")
    print(f"targets at {args.trials} trials (last row): {last['results_per_s']:.1f} fold results/s absorbed, driver ceiling "
          f"{1 / last['cpu_per_result']:.0f}/s (>= 10); TPE ask p95 {ask95 * 1000:.0f} ms (< 1000); driver {max(r['rss'] for r in rows):.0f} MB at most (< 4096); "
          f"resume {resumed['seconds']:.0f} s to its first fold result (< 60)")
    if args.plot:
        for path in plot(rows, args.plot):
            print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


def _best(results: Path) -> float:
    from search.results import ResultsDir, trial_status

    folds = ResultsDir(results).read("folds")
    complete = trial_status(folds, 5)
    rows = folds[folds["trial_id"].isin(complete[complete == "COMPLETE"].index) & (folds["status"] == "COMPLETE")]
    return float(rows.groupby("trial_id")["val_pc"].mean().max()) if len(rows) else float("nan")


if __name__ == "__main__":
    sys.exit(main())
