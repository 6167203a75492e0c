"""Type-I error of the paired comparisons the report and the paper document print, by simulation
under the null: two configurations that differ only in noise.

    python bench/stats_null.py                  # 1,000 studies per protocol, about 2 minutes on 1 core
    python bench/stats_null.py --studies 50     # a quick look

Protocols, as the paper's (SCUT-FBP5500): 5-fold x 3 seeds, 1,100 test images per fold; and one
60/40 split x 3 seeds, 2,200 test images. True scores y ~ N(0, 1) per image; the prediction of
configuration c (A or B) for image i of fold f in the run of seed s is

    y_i + u_i + o_f + v_ci + sum_l (w_cfl + z_cfsl) a_il + e_cfsi

    u_i    an image's difficulty, shared by every run of both configurations (sd SD_U)
    o_f    a fold's offset, shared by both configurations (sd SD_O): it lowers the pooled PC
    v_ci   a configuration's own error on an image, shared by its seeds (sd SD_V): two losses
           of equal quality still get different faces wrong
    a_il   L fixed attributes of each image (N(0, 1)), e.g. a smile, the lighting
    w_cfl  how much what configuration c learnt on fold f's training images leans on attribute
           l, shared by its seeds on that fold (sd SD_W): why a fold's seeds are not independent
           replicates of the comparison
    z_cfsl the same lean of one run (sd SD_Z): a seed's model as a whole
    e_cfsi a run's own error on an image (sd SD_E)

Everything is drawn independently, with the same distribution for A and B: the configurations
do not differ, and every rejection is a type-I error. The defaults give a run's PC of about 0.90
and a seed-to-seed sd of a run's PC of about 0.005 (both printed), as seen on SCUT-FBP5500; the
configuration-by-fold lean (SD_W) is what makes a fold's seeds pseudo-replicates.

Each simulated study is passed, as the report passes a comparison, through the functions of
search/report/_stats.py: `paired_by_fold` (paired t and Wilcoxon over folds, seeds averaged within a
fold), `bootstrap_pc_differences` (the image bootstrap: images resampled, each with its runs over
seeds; and the cluster bootstrap: folds, or seeds on one split, resampled, then images within
them), and `paired_tests` over the (fold, seed) runs, the pairing the report used before, for
comparison. A bootstrap rejects when its 95% CI excludes 0. The studies are run in batches whose
bootstraps share their draws (as the report's comparisons do); each batch has its own seed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.report._stats import bootstrap_pc_differences, paired_by_fold, paired_tests  # noqa: E402

ALPHA, BOUND = 0.05, 0.07
SD_U, SD_O, SD_V, SD_W, SD_Z, SD_E, L = 0.31, 0.05, 0.20, 0.10, 0.035, 0.24, 4
SEEDS = 3


@dataclass(frozen=True)
class Protocol:
    name: str
    folds: int
    images: int  # test images per fold


PROTOCOLS = (Protocol("5-fold x 3 seeds", 5, 1100), Protocol("60/40 x 3 seeds", 1, 2200))


def simulate(p: Protocol, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One study under the null -> y (k, n) and the predictions of A and B, each (k, S, n)."""
    k, n = p.folds, p.images
    y = rng.normal(size=(k, n))
    a = rng.normal(size=(k, n, L))
    shared = y + rng.normal(scale=SD_U, size=(k, n)) + rng.normal(scale=SD_O, size=(k, 1))
    preds = []
    for _ in range(2):
        lean = rng.normal(scale=SD_W, size=(k, 1, L)) + rng.normal(scale=SD_Z, size=(k, SEEDS, L))  # (k, S, L)
        structured = np.einsum("knl,ksl->ksn", a, lean)
        own = rng.normal(scale=SD_V, size=(k, 1, n)) + rng.normal(scale=SD_E, size=(k, SEEDS, n))
        preds.append(shared[:, None, :] + structured + own)
    return y, preds[0], preds[1]


def run_pc(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """PC of each run: (k, n), (k, S, n) -> (k, S)."""
    yc = y - y.mean(-1, keepdims=True)
    pc = pred - pred.mean(-1, keepdims=True)
    return np.einsum("kn,ksn->ks", yc, pc) / np.sqrt((yc**2).sum(-1)[:, None] * (pc**2).sum(-1))


def one_study(p: Protocol, rng: np.random.Generator) -> tuple[dict[str, bool], tuple, dict[str, float]]:
    """-> (rejections of the tests that need no bootstrap, the study's bootstrap rows, its PC and seed sd)."""
    y, pred_a, pred_b = simulate(p, rng)
    pc_a, pc_b = run_pc(y, pred_a), run_pc(y, pred_b)
    index = pd.MultiIndex.from_product([range(p.folds), range(SEEDS)], names=["fold", "seed"])
    rejected = {}
    fold = paired_by_fold(pd.Series(pc_a.ravel(), index), pd.Series(pc_b.ravel(), index))
    if p.folds >= 2:  # what the document prints: the fold-paired tests
        rejected["fold-paired t"] = fold["t_p"] < ALPHA
        rejected["fold-paired Wilcoxon"] = fold["wilcoxon_p"] < ALPHA
    old = paired_tests(pc_a.ravel(), pc_b.ravel())  # the (fold, seed) pairing, no longer printed
    rejected["(fold, seed) t, old"] = old["t_p"] < ALPHA
    rejected["(fold, seed) Wilcoxon, old"] = old["wilcoxon_p"] < ALPHA
    shape = pred_a.shape
    fold_of = np.broadcast_to(np.arange(p.folds)[:, None, None], shape).ravel()
    seed_of = np.broadcast_to(np.arange(SEEDS)[None, :, None], shape).ravel()
    image = np.broadcast_to((np.arange(p.folds)[:, None] * p.images + np.arange(p.images))[:, None, :], shape).ravel()
    rows = (np.broadcast_to(y[:, None, :], shape).ravel(), pred_a.ravel(), pred_b.ravel(), image, fold_of if p.folds >= 2 else seed_of)
    spread = pc_a.mean(0).std(ddof=1)  # the report's seed spread: sd over seeds of each seed's mean over folds
    return rejected, rows, {"pc": float(pc_a.mean()), "seed_sd": float(spread), "run_sd": float(pc_a.std(1, ddof=1).mean())}


def bootstraps(batch: list[tuple], draws: int, seed: int) -> dict[str, list[bool]]:
    """The batch's studies through both bootstraps: images (an image with its runs), and
    clusters (folds or seeds) then images."""
    image = bootstrap_pc_differences([r[:4] for r in batch], draws=draws, seed=seed)
    cluster = bootstrap_pc_differences(list(batch), draws=draws, seed=seed)
    outside = lambda r: not (r["ci_low"] <= 0 <= r["ci_high"])  # noqa: E731
    return {"image bootstrap CI": [outside(r) for r in image], "cluster bootstrap CI": [outside(r) for r in cluster]}


def run(p: Protocol, studies: int, draws: int, batch: int, seed: int) -> tuple[dict[str, list[bool]], dict[str, float]]:
    rng = np.random.default_rng(seed)
    rejected: dict[str, list[bool]] = {}
    sizes: dict[str, list[float]] = {}
    pending: list[tuple] = []
    for i in range(studies):
        r, rows, seen = one_study(p, rng)
        for name, v in r.items():
            rejected.setdefault(name, []).append(bool(v))
        for name, v in seen.items():
            sizes.setdefault(name, []).append(v)
        pending.append(rows)
        if len(pending) == batch or i == studies - 1:
            for name, v in bootstraps(pending, draws, seed * 100_003 + i).items():
                rejected.setdefault(name, []).extend(v)
            pending = []
    return rejected, {name: float(np.mean(v)) for name, v in sizes.items()}


WHERE = {
    "fold-paired t": "printed (p t, CI of ΔPC)",
    "fold-paired Wilcoxon": "printed",
    "image bootstrap CI": "CSV only",
    "cluster bootstrap CI": "not used",
    "(fold, seed) t, old": "old pairing",
    "(fold, seed) Wilcoxon, old": "old pairing",
}
"""Where the document shows each test (one split: no fold-paired test exists)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=1000, help="simulated studies per protocol (default %(default)s)")
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap draws per CI (default %(default)s)")
    parser.add_argument("--batch", type=int, default=50, help="studies whose bootstraps share draws (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"null model: SD_U {SD_U}, SD_O {SD_O}, SD_V {SD_V}, SD_W {SD_W}, SD_Z {SD_Z}, SD_E {SD_E}, L {L}; {args.studies} studies per protocol, "
          f"{args.draws} bootstrap draws; reject at {ALPHA}, bound {BOUND}")
    print(f"{'protocol':<18} {'test':<28} {'type-I at 0.05':>15} {'± se':>7}  {'<= 0.07':<8}")
    for i, p in enumerate(PROTOCOLS):
        start = time.perf_counter()
        rejected, seen = run(p, args.studies, args.draws, args.batch, args.seed + i)
        for name, v in rejected.items():
            rate = float(np.mean(v))
            se = math.sqrt(rate * (1 - rate) / len(v))
            shown = WHERE[name]
            print(f"{p.name:<18} {name:<28} {rate:>15.3f} {se:>7.3f}  {'yes' if rate <= BOUND else 'NO':<8} {shown}")
        print(f"{p.name:<18} a run's PC {seen['pc']:.4f}; seed sd of a run's PC {seen['run_sd']:.4f}; "
              f"seed spread (sd over seeds of the mean over folds) {seen['seed_sd']:.4f}; {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
