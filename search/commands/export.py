"""`fbp-search export RESULTS --out DIR`: a kept trial's fold models as a model folder.

    --trial best   (the default) the best complete trial, by the study's objective, whose models
                   are kept in RESULTS/models; or a trial id (fbp-search report lists them)
    --refit        instead of its k fold models, the trial's configuration trained once on every
                   labelled image (fbp.kfold.fit_all); the card gives its k-fold figures as the
                   estimate, since nothing was held out

The folder (its format: fbp.export) scores new faces with `fbp-search predict DIR IMAGES...`,
or in Python with `fbp.predict.load_model(DIR)`. torch is imported when the command runs.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from fbp.errors import InputError
from fbp.metrics import NAMES, REPORTED
from search.console import command_console, styled


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="write a kept trial's fold models as a self-contained model folder (or --refit one on all images)")
    export.add_argument("results", type=Path, help="a results directory of fbp-search run or train, e.g. results/quickstart")
    export.add_argument("--trial", default="best", help="best (default: the best complete trial with kept models, by the study's objective) or a trial id")
    export.add_argument("--out", type=Path, required=True, help="the model folder to write (new, or an empty directory)")
    export.add_argument("--refit", action="store_true", help="train the trial's configuration once on all labelled images instead of exporting its fold models")
    export.set_defaults(run=run_export)


def _number(value) -> float | None:
    value = float(value) if value is not None else float("nan")
    return None if math.isnan(value) else value


def _choose(args: argparse.Namespace, ranked: list[tuple[str, float]], kept: list[str], all_trials: set[str], results) -> tuple[str, int]:
    """(trial id, its rank among the complete trials, 1 = best)."""
    ranks = {t: i + 1 for i, (t, _) in enumerate(ranked)}
    where = results.path / results.MODELS
    if args.trial == "best":
        if not ranked:
            raise InputError(f"{results.path}: no complete trial to export (every trial was pruned, failed or is unfinished)")
        usable = [t for t, _ in ranked if args.refit or t in kept]
        if not usable:
            raise InputError(f"{results.path}: no complete trial has its models kept in {where}; --refit trains the best trial's configuration on all images")
        return usable[0], ranks[usable[0]]
    trial = args.trial
    if trial not in all_trials:
        raise InputError(f"--trial {trial}: no such trial in {results.path} (complete: {', '.join(t for t, _ in ranked[:8]) or 'none'})")
    if trial not in ranks:
        raise InputError(f"--trial {trial}: the trial did not complete all its folds (pruned, failed or unfinished); choose a complete one")
    if not args.refit and trial not in kept:
        raise InputError(f"--trial {trial}: its models were not kept in {where} (kept: {', '.join(kept) or 'none'}); export one of those, or --refit")
    return trial, ranks[trial]


def run_export(args: argparse.Namespace) -> int:
    from fbp.export import build_manifest, fold_model_info, member_name, write_model_folder
    from search.keep import rank_trials
    from search.results import ResultsDir, params_of

    out: Path = args.out
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):  # before anything trains
        raise InputError(f"--out {out}: exists and is not an empty directory; choose a new one")
    results = ResultsDir(args.results)
    spec, digest = results.load_spec()
    folds = results.read("folds")
    complete = folds[folds["status"] == "COMPLETE"] if len(folds) else folds
    # the study's fold count, without opening its dataset: data.folds, else the most folds a trial completed
    num_folds = len(spec.data.folds) if spec.data.folds else int(complete.groupby("trial_id")["fold"].nunique().max()) if len(complete) else 0
    objective = spec.objectives[0]
    ranked = rank_trials(folds, num_folds, objective.key, objective.direction)
    trial_id, rank = _choose(args, ranked, results.kept_trials(), set(folds["trial_id"].astype(str)) if len(folds) else set(), results)
    rows = complete[complete["trial_id"] == trial_id].sort_values(["fold", "seed"])
    params = params_of(rows.iloc[0])
    config = spec.trial_config(params)
    value = dict(ranked)[trial_id]
    origin = {
        "study": spec.name, "spec_hash": digest, "trial_id": trial_id, "params": params,
        "objective": {"metric": objective.metric, "on": objective.on, "mode": objective.direction, "value": _number(value)},
        "rank": rank, "trials_complete": len(ranked),
    }
    console = command_console()
    if args.refit:
        written = _refit(config, rows, origin, out, results, console)
        if written is None:
            return 1
        what = f"its configuration refit on all {written} labelled images"
    else:
        folder = results.model_dir(trial_id)
        files, members = {}, []
        for _, row in rows.iterrows():
            name = member_name(int(row["fold"]), int(row["seed"]), config.train.repeats)
            path = folder / f"{name}.safetensors"
            if not path.is_file():
                raise InputError(f"{folder}: no model of {name} (the trial's complete folds: {', '.join(map(str, sorted(set(rows['fold']))))}); "
                                 "it was trained before models were kept, or removed; --refit trains its configuration again")
            files[path.name] = path
            members.append({**fold_model_info(path), "file": path.name})
        try:
            write_model_folder(out, build_manifest(config, members, origin), config, files)
        except FileNotFoundError:  # a running study keeps only its best trials' models (search.keep): this one dropped out just now
            raise InputError(f"{folder}: removed while it was exported (the running study no longer keeps trial {trial_id}'s models); export again") from None
        what = f"{len(members)} fold model{'s' if len(members) != 1 else ''}, an ensemble"
    best = "the best" if rank == 1 else f"number {rank}"
    console.print(f"exported trial {trial_id} of {spec.name} ({best} of {len(ranked)} complete by {objective.key} {value:.4f}): {what}, to {out}")
    console.print(f"score faces with: fbp-search predict {out} IMAGE_OR_FOLDER... --out scores.csv")
    return 0


def _refit(config, rows, origin: dict, out: Path, results, console) -> int | None:
    """Train the configuration on every labelled image and write its folder; the number of
    images it trained on, or None when training failed (said on the console)."""
    from fbp.errors import TrainingError
    from fbp.export import REFIT_MEMBER, build_manifest, fold_model_info, save_fold_model, write_model_folder
    from fbp.kfold import fit_all
    from search.commands.train import TrainDisplay
    from search.preflight import preflight

    preflight(config, str(results / results.STUDY))  # the dataset and the backbone are there, before training
    console.print(f"refitting trial {origin['trial_id']} on every labelled image of {config.data.dataset} ({config.train.epochs} epochs, the last one's weights)")
    display = TrainDisplay(console)
    try:
        result = fit_all(config, on_progress=display)
    except TrainingError as e:
        console.print(styled("training failed:", "bold red", str(e)))
        return None
    finally:
        display.close()
    kfold = [{"fold": int(r["fold"]), "metrics": {k: _number(r.get(k)) for k in REPORTED}} for _, r in rows.iterrows()]
    refit = {"n_train": result.n_train, "epochs": result.epochs_run, "fit": {k: _number(getattr(result, k)) for k in NAMES}, "kfold_members": kfold}
    with tempfile.TemporaryDirectory() as staging:
        file = save_fold_model(Path(staging), result, config, REFIT_MEMBER)
        member = {**fold_model_info(Path(staging) / file), "file": file, "fold": None}
        write_model_folder(out, build_manifest(config, [member], origin, refit), config, {file: Path(staging) / file})
    return result.n_train
