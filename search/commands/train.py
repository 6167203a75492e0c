"""`fbp-search train FILE.yaml`: one config, every fold, results in the study layout.

FILE is a TrialConfig or a study file; a study trains its base configuration (its search,
objective, scheduler and resources are not used), so `fbp-search train studies/paper.yaml`
runs the paper's setting. Each fold's selected model is kept in OUT/models/<trial_id>/, as a
study keeps its best trials' (search.keep), for `fbp-search export`. Progress: a live bar on a terminal; elsewhere (a log file, CI,
nohup) one whole line at prepare, at ready and per epoch, never wrapped.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from search.console import command_console, print_table, progress_line, progress_parts, styled

if TYPE_CHECKING:  # torch and the trainer are imported when a command trains, not for --help
    from fbp.config import TrialConfig
    from fbp.kfold import FoldResult, TrainProgress


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train one config over all its folds (a study file: its base config, no search)")
    train.add_argument("config", type=Path, help="a TrialConfig YAML (sections data, model, loss, train, eval) or a study file, e.g. studies/paper.yaml")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE", help="override a dotted path, e.g. loss.alpha=1.5 (repeatable)")
    train.add_argument("--out", type=Path, help="results directory (default results/<study name, else the file's name>)")
    train.set_defaults(run=run_train)


# --- progress ----------------------------------------------------------------------------------


class TrainDisplay:
    """`on_progress` for `run_kfold`: a live bar (fold, epoch, loss, images/s, time left) on a
    terminal; elsewhere one line at prepare and ready and one per epoch, flushed as written."""

    def __init__(self, console: Console):
        self.console = console
        self.bar: Progress | None = None
        self.task = None
        self.loss: float | None = None  # the fold's last epoch's, shown during the next one

    def __call__(self, p: TrainProgress) -> None:
        if not self.console.is_terminal:
            if p.event != "step":
                self.console.out(progress_line(p))
            return
        if self.bar is None:
            self.bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                console=self.console, transient=True,
            )
            self.task = self.bar.add_task("", total=None, detail="")
            self.bar.start()
        if p.event in ("prepare", "ready"):
            self.console.print(p.message, markup=False)
            self.bar.update(self.task, description="loading the images" if p.event == "prepare" else "building the model", detail="")
            return
        if p.event == "step" and (p.epoch, p.step) == (1, 0):  # a fold begins
            self.loss = None
        if p.loss is not None:
            self.loss = p.loss
        parts = progress_parts(p, self.loss, elapsed=False)  # the bar's own clock ticks between events
        done = ((p.fold_position - 1) * p.epochs + p.epoch - 1) * p.steps + p.step
        self.bar.update(self.task, total=p.folds_total * p.epochs * p.steps, completed=done, description=" · ".join(parts[:2]), detail=" · ".join(parts[2:]))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# --- the command -------------------------------------------------------------------------------


def _header(source: Path, config: TrialConfig, out: Path) -> str:
    d, t = config.data, config.train
    folds = f"folds {', '.join(map(str, d.folds))}" if d.folds else "every fold"
    return f"{source}: {config.model.backbone} on {d.dataset} {d.protocol} ({folds}), {t.epochs} epoch{'s' if t.epochs != 1 else ''}, batch {t.batch_size}, device {t.device}; results in {out}"


def run_train(args: argparse.Namespace) -> int:
    from fbp import metrics
    from fbp.config import TrialConfig, resolve_paths
    from fbp.errors import TrainingError
    from fbp.export import save_fold_runs
    from fbp.kfold import run_kfold
    from search.lock import hold
    from search.preflight import preflight
    from search.results import ResultsDir, fold_frames, fold_parts, spec_hash
    from search.spec import StudySpec, load_base, resolved

    config, name = load_base(args.config, args.overrides)
    config = resolve_paths(config, Path.cwd())  # recorded as the paths it used
    # recorded as a study of this one configuration: the report reads it like any other
    study = resolved(StudySpec(name=name or args.config.stem, **{k: getattr(config, k) for k in TrialConfig.model_fields}))
    study["spec_hash"] = digest = spec_hash(study)
    out = ResultsDir(args.out or Path("results") / study["name"])
    out.check(digest, resume=True, flag="--out")  # the same configuration again replaces its folds
    preflight(config, str(args.config))
    with hold(out.path):  # one writer at a time (search.lock); held until the last fold is written
        out.check(digest, resume=True, flag="--out")  # again, locked: another writer may have claimed it since
        console = command_console()
        trial = {"study": study["name"], "spec_hash": digest, "trial_id": f"t{digest[:8]}"}
        repeats = config.train.repeats

        table = Table(title=f"{args.config.name}: {config.model.backbone}, loss {config.loss.name}, select {config.eval.select}")
        for column in ("fold", *(["seed"] if repeats > 1 else []), *(m.label for m in metrics.METRICS.values()), "epoch", "images/s", "seconds"):
            table.add_column(column, justify="right")
        results: list[FoldResult] = []
        runs: dict[int, list[FoldResult]] = {}

        def on_fold(r: FoldResult) -> None:
            runs.setdefault(r.fold, []).append(r)
            if len(runs[r.fold]) == repeats:  # a fold's runs (one per seed) share its parts
                fold_runs = runs.pop(r.fold)
                save_fold_runs(out.model_dir(trial["trial_id"]), fold_runs, config)  # the model before the rows that say the fold is done
                for run in fold_runs:
                    run.model = None  # on disk now
                out.write_fold(fold_parts(fold_frames(fold_runs, trial)), trial["trial_id"], r.fold)
            results.append(r)
            values = {m.label: f"{getattr(r, name):.4f}" for name, m in metrics.METRICS.items()}
            which = f"fold {r.fold}" + (f" seed {r.seed}" if repeats > 1 else "")
            console.print(f"{which}: {'  '.join(f'{k} {v}' for k, v in values.items())}  ({r.train_seconds:.0f} s, {r.images_per_second:.0f} images/s on {r.device})")
            table.add_row(str(r.fold), *([str(r.seed)] if repeats > 1 else []), *values.values(), str(r.selected_epoch), f"{r.images_per_second:.0f}", f"{r.train_seconds:.0f}")

        display = TrainDisplay(console)

        def on_progress(p: TrainProgress) -> None:
            if p.event == "ready":
                out.claim(study)  # the data is there: a config that cannot start writes nothing
            display(p)

        console.out(_header(args.config, config, out.path))
        try:
            run_kfold(config, on_fold=on_fold, on_progress=on_progress, keep_models=True)
        except TrainingError as e:
            console.print(styled("training failed:", "bold red", str(e)))
            return 1
        finally:
            display.close()
        summary = metrics.mean_std([{m: getattr(r, m) for m in metrics.NAMES} for r in results])
        table.add_section()
        spread = len(results) > 1  # one run has no spread; with repeats, over folds x seeds
        table.add_row("mean ± std" if spread else "mean", *([""] if repeats > 1 else []),
                      *(f"{m:.4f} ± {s:.4f}" if spread else f"{m:.4f}" for m, s in (summary[k] for k in metrics.NAMES)), "", "", "")
        print_table(console, table)
        if config.eval.select == "test_oracle":
            console.print("note: eval.select=test_oracle chose each fold's epoch on its test set; these figures are optimistic")
        console.print(f"results: {out.path}/{{folds,epochs,predictions}}.parquet; fold models in {out.model_dir(trial['trial_id'])}")
        console.print(f"export them: fbp-search export {out.path} --out MODEL_DIR")
        return 0
