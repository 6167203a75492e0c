"""bf16 against fp32 on the synthetic faces: does the faster precision change what is learned?

    python bench/precision.py --mode cpu       # tiny: checks the harness anywhere (bf16 on a CPU is slow)
    python bench/precision.py --mode gpu       # resnet18 at 64 px, 3 seeds x 2 folds per precision

Trains the same configs in fp32 and in bf16 autocast (seeds and folds paired) and prints each
precision's mean PC and MAE with their seed-to-seed spread, and the mean paired difference
against that spread. No assertion: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import statistics

MODES = {
    # data_seed: of the generated faces; the cpu mode's 300 need seed 36 (fbp.data.synthetic.SMALL)
    # to fill the paper's five classes in fold 1, which fbp.kfold requires
    "cpu": {"backbone": "test_resnet", "n": 300, "size": 48, "data_seed": 36, "image_size": 32, "epochs": 3, "seeds": [0, 1], "folds": [1], "device": "cpu"},
    "gpu": {"backbone": "resnet18", "n": 2000, "size": 96, "data_seed": 0, "image_size": 64, "epochs": 15, "seeds": [0, 1, 2], "folds": [1, 2], "device": "cuda"},
}


def run(mode: dict, precision: str) -> list[tuple[float, float]]:
    from fbp.config import validate_config
    from fbp.kfold import run_kfold

    out = []
    for seed in mode["seeds"]:
        config = validate_config({
            "data": {"dataset": "synthetic", "options": {"n": mode["n"], "size": mode["size"], "seed": mode["data_seed"]}, "image_size": mode["image_size"], "folds": mode["folds"]},
            "model": {"backbone": mode["backbone"], "pretrained": False},
            "train": {"epochs": mode["epochs"], "batch_size": 64, "optimizer": "adamw", "lr": 0.003, "schedule": {"name": "onecycle"},
                      "augment": {"rotation": 10}, "seed": seed, "device": mode["device"], "precision": precision, "eval_every": mode["epochs"]},
            "eval": {"batch_size": 512},
        })
        out += [(r.pc, r.mae) for r in run_kfold(config)]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, default="cpu")
    mode = MODES[parser.parse_args(argv).mode]
    print(f"{mode['backbone']} at {mode['image_size']} px, {mode['epochs']} epochs, seeds {mode['seeds']} x folds {mode['folds']}, {mode['n']} synthetic faces")
    results = {p: run(mode, p) for p in ("fp32", "bf16")}
    for precision, rows in results.items():
        pcs, maes = [r[0] for r in rows], [r[1] for r in rows]
        print(f"{precision}: PC {statistics.mean(pcs):.4f} ± {statistics.stdev(pcs):.4f}  MAE {statistics.mean(maes):.4f} ± {statistics.stdev(maes):.4f}  (mean ± sd over {len(rows)} runs)")
    diffs = [b[0] - f[0] for f, b in zip(results["fp32"], results["bf16"])]
    spread = statistics.stdev([r[0] for r in results["fp32"]])
    print(f"bf16 - fp32, paired: PC {statistics.mean(diffs):+.4f} (runs differ by {min(diffs):+.4f} to {max(diffs):+.4f}); "
          f"fp32's own seed-to-seed sd {spread:.4f}")


if __name__ == "__main__":
    main()
