"""`fbp-search train CONFIG.yaml`: one config, every fold, results in the study layout."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from fbp import metrics
from fbp.config import apply_overrides, read_yaml, validate_config
from fbp.errors import InputError, TrainingError
from fbp.train import FoldResult, run_kfold
from search.results import spec_hash, write_fold


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train one config over all its folds")
    train.add_argument("config", type=Path, help="a TrialConfig YAML (sections data, model, loss, train, eval)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE", help="override a dotted path, e.g. loss.alpha=1.5 (repeatable)")
    train.add_argument("--out", type=Path, help="results directory (default results/<config name>)")
    train.set_defaults(run=run_train)


def _claim(out: Path, resolved: dict, digest: str) -> None:
    """Refuse a results directory that holds another config's results."""
    marker = out / "study.yaml"
    if marker.exists():
        previous = (yaml.safe_load(marker.read_text()) or {}).get("spec_hash")
        if previous != digest:
            raise InputError(f"{out} holds results of another config (spec_hash {previous}, this one {digest}); choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(".study.yaml.tmp")
    tmp.write_text(yaml.safe_dump({"name": out.name, "kind": "train", "spec_hash": digest, "config": resolved}, sort_keys=False))
    tmp.replace(marker)


def run_train(args: argparse.Namespace) -> int:
    raw = apply_overrides(read_yaml(args.config), args.overrides)
    config = validate_config(raw, source=str(args.config))
    resolved = config.model_dump(mode="json")
    digest = spec_hash(resolved)
    out = args.out or Path("results") / args.config.stem
    console = Console(highlight=False, soft_wrap=True)
    trial = {"study": out.name, "spec_hash": digest, "trial_id": f"t{digest[:8]}", "seed": config.train.seed}

    table = Table(title=f"{args.config.name}: {config.model.backbone}, loss {config.loss.name}, select {config.eval.select}")
    for column in ("fold", "MAE", "RMSE", "PC", "epoch", "images/s", "seconds"):
        table.add_column(column, justify="right")
    results: list[FoldResult] = []

    def on_fold(r: FoldResult) -> None:
        write_fold(out, r, trial)
        results.append(r)
        console.print(f"fold {r.fold}: MAE {r.mae:.4f}  RMSE {r.rmse:.4f}  PC {r.pc:.4f}  ({r.train_seconds:.0f} s, {r.images_per_second:.0f} images/s on {r.device})")
        table.add_row(str(r.fold), f"{r.mae:.4f}", f"{r.rmse:.4f}", f"{r.pc:.4f}", str(r.selected_epoch), f"{r.images_per_second:.0f}", f"{r.train_seconds:.0f}")

    _claim(out, resolved, digest)
    with console.status(f"training {config.data.dataset} {config.data.protocol} with {config.model.backbone} ..."):
        try:
            run_kfold(config, on_fold=on_fold)
        except TrainingError as e:
            console.print(f"[bold red]training failed:[/] {e}")
            return 1
    summary = metrics.mean_std([{"mae": r.mae, "rmse": r.rmse, "pc": r.pc} for r in results])
    table.add_section()
    table.add_row("mean ± std", *(f"{m:.4f} ± {s:.4f}" for m, s in (summary[k] for k in ("mae", "rmse", "pc"))), "", "", "")
    console.print(table)
    if config.eval.select == "test_oracle":
        console.print("note: eval.select=test_oracle chose each fold's epoch on its test set; these figures are optimistic")
    console.print(f"results: {out}/{{folds,epochs,predictions}}.parquet")
    return 0
