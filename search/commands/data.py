"""`fbp-search data synth` and `fbp-search data check`: make and inspect datasets."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.text import Text

from fbp.data import DATASETS, DISCRETIZATION, Dataset, load_dataset
from fbp.data.faces import SynthParams, generate, layout_params
from fbp.data.layouts import LAYOUTS
from fbp.discretize import RULES, class_counts, class_weights, fit_discretization
from fbp.errors import InputError
from search.console import command_console


def register(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="make or inspect a dataset")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    synth = sub.add_parser("synth", help="generate synthetic faces in a published dataset's layout")
    synth.add_argument("--out", type=Path, required=True, help="new directory to write")
    synth.add_argument("--layout", default="scut-fbp5500", help=f"whose files to write: {', '.join(LAYOUTS)} (default %(default)s)")
    synth.add_argument("--n", type=int, help="number of images (default: the layout's release: " + ", ".join(f"{k} {v.n}" for k, v in LAYOUTS.items()) + ")")
    synth.add_argument("--size", type=int, default=SynthParams.size, help="image side in px (default %(default)s)")
    synth.add_argument("--seed", type=int, default=SynthParams.seed, help="(default %(default)s)")
    synth.add_argument("--raters", type=int, help="simulated raters per image (default: the layout's release: " + ", ".join(f"{k} {v.raters}" for k, v in LAYOUTS.items()) + ")")
    synth.set_defaults(run=run_synth)

    check = sub.add_parser("check", help="validate a dataset and print its folds, scores and classes")
    check.add_argument("dataset", help=f"one of: {', '.join(DATASETS)}")
    check.add_argument("root", type=Path)
    check.add_argument("--protocol", help="only this protocol (default: all the dataset has)")
    check.add_argument("--rule", default="auto", help=f"discretization rule: auto (the dataset's own, as loss.discretization.rule: auto), {', '.join(RULES)} (default %(default)s)")
    check.add_argument("--classes", type=int, help="number of classes, for uniform and quantile")
    check.add_argument("--edges", type=float, nargs="+", help="inner class edges, for intervals")
    check.set_defaults(run=run_check)


def run_synth(args: argparse.Namespace) -> int:
    if args.layout not in LAYOUTS:
        raise InputError(f"--layout: unknown layout {args.layout!r}; valid: {', '.join(LAYOUTS)}")
    given = {k: v for k, v in (("n", args.n), ("raters", args.raters)) if v is not None}
    try:
        params = layout_params(args.layout, size=args.size, seed=args.seed, **given)
    except ValueError as e:
        raise InputError(f"data synth: {e}") from None
    if args.out.exists() and any(args.out.iterdir()):
        raise InputError(f"--out {args.out} exists and is not empty; choose a new directory")
    start = time.perf_counter()
    manifest = generate(args.out, params, layout=args.layout)
    seconds = time.perf_counter() - start
    console = command_console()
    console.print(f"wrote {params.n} faces of {params.size}x{params.size} px in the {args.layout} layout to {args.out} in {seconds:.1f} s")
    console.print(f"noise ceiling (Pearson of latent vs rated mean): {manifest['noise_ceiling']:.4f}")
    console.print(f"check it: fbp-search data check {args.layout} {args.out}")
    return 0


def _score_line(scores: np.ndarray) -> str:
    return f"min {scores.min():.4f}  max {scores.max():.4f}  mean {scores.mean():.4f}  std {scores.std(ddof=1):.4f}"


def run_check(args: argparse.Namespace) -> int:
    if args.rule not in ("auto", *RULES):
        raise InputError(f"--rule: unknown discretization rule {args.rule!r}; valid: auto, {', '.join(RULES)}")
    dataset = load_dataset(args.dataset, args.root)
    if args.rule == "auto":  # the dataset's own, as a config's loss.discretization.rule: auto
        own = DISCRETIZATION[dataset.name]
        args.rule, args.edges = own["rule"], args.edges or own.get("edges")
    protocols = [args.protocol] if args.protocol else list(dataset.protocols)
    folds_by_protocol = {p: dataset.folds(p) for p in protocols}  # validates before printing

    console = command_console()
    images = dataset.images
    console.print(Text.assemble((dataset.name, "bold"), f" at {dataset.root}: {len(images)} images, all present"))
    subsets = dataset.subsets(images)
    names = sorted(set(subsets))
    console.print("subsets: " + ", ".join(f"{s} {subsets.count(s)}" for s in names))
    console.print("scores: " + _score_line(dataset.scores(images)))
    for protocol, folds in folds_by_protocol.items():
        for line in _fold_lines(dataset, protocol, folds, names, args):
            console.print(line)
        tested = [i for f in folds for i in f.test]
        if len(folds) > 1:
            partition = len(tested) == len(set(tested)) == len(images)
            console.print(f"test parts partition all {len(images)} images: {'yes' if partition else 'no'}")
    return 0


def _fold_lines(dataset: Dataset, protocol: str, folds, subsets: list[str], args) -> list[str]:
    """One line per fold: sizes, test subsets, and class counts and weights of its training split."""
    lines = [f"protocol {protocol} (classes by rule {args.rule}, counted on each training split):"]
    for fold in folds:
        train_scores = dataset.scores(fold.train)
        d = fit_discretization(args.rule, train_scores, num_classes=args.classes, edges=args.edges, score_range=dataset.score_range)
        counts = class_counts(d.classes(train_scores), d.num_classes)
        weights = ", ".join(f"{w:.2f}" for w in class_weights(counts))
        test_subsets = dataset.subsets(fold.test)
        by_subset = ", ".join(f"{s} {test_subsets.count(s)}" for s in subsets)
        lines.append(
            f"  fold {fold.index + 1}: train {len(fold.train)}, test {len(fold.test)} ({by_subset}); "
            f"train classes {counts.tolist()}, weights [{weights}]"
        )
    return lines
