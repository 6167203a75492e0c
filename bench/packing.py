"""Trials sharing one device: 1, 2 and 4 training processes at once, total images/s.

    python bench/packing.py --mode cpu                       # tiny model: checks the harness anywhere
    python bench/packing.py --mode gpu [--compile reduce-overhead]

Each process is one trial's fold as Ray would run it with `resources.gpu: 1/K`: its own
decoded cache on the device, `fbp.kfold.fit_fold` with the paper's batch of 64. All K start
together (a barrier after data and model set-up; one untimed warm-up epoch each) and the
total is every process's training images over the window from the first start to the last
end. Prints one line per K: the total, per process, and the gain over one process.
No assertion on time: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

MODES = {
    # seed: of the generated faces; the cpu mode's 400 need seed 36 (fbp.data.synthetic.SMALL) to
    # fill the paper's five classes in fold 1, which fbp.kfold requires
    "cpu": {"backbone": "test_resnet", "image_size": 32, "images": 400, "side": 40, "epochs": 2, "batch": 64, "seed": 36},
    "gpu": {"backbone": "seresnext50_32x4d", "image_size": 224, "images": 4000, "side": 256, "epochs": 3, "batch": 64, "seed": 0},
}


def _config(mode: dict, root: Path, device: str, compile_mode: str, precision: str):
    from fbp.config import validate_config

    return validate_config({
        "data": {"dataset": "scut-fbp5500", "root": str(root), "image_size": mode["image_size"], "folds": [1]},
        "model": {"backbone": mode["backbone"], "pretrained": False},  # throughput does not depend on the weights
        "train": {"epochs": mode["epochs"], "batch_size": mode["batch"], "device": device, "compile": compile_mode, "precision": precision,
                  "eval_every": mode["epochs"]},
        "eval": {"batch_size": 512},
    })


def _one_trial(args: tuple) -> dict:
    mode, root, device, compile_mode, precision, threads, barrier = args
    import torch

    torch.set_num_threads(threads)
    from fbp.kfold import fit_fold, prepare

    config = _config(mode, root, device, compile_mode, precision)
    data = prepare(config)
    fold = data.folds[0]
    warm = config.model_copy(update={"train": config.train.model_copy(update={"epochs": 1})})
    fit_fold(warm, fold, data)  # kernels chosen, graphs compiled: shared by the timed run
    barrier.wait()
    started = time.time()
    result = fit_fold(config, fold, data)
    return {"started": started, "ended": time.time(), "images": result.n_train * result.epochs_run, "step_rate": result.images_per_second}


def measure(k: int, mode: dict, root: Path, device: str, compile_mode: str, precision: str) -> dict:
    context = mp.get_context("spawn")  # CUDA cannot be forked
    barrier = context.Manager().Barrier(k)
    threads = max(1, (os.cpu_count() or 2) // k)
    with context.Pool(k) as pool:
        runs = pool.map(_one_trial, [(mode, root, device, compile_mode, precision, threads, barrier)] * k)
    window = max(r["ended"] for r in runs) - min(r["started"] for r in runs)
    return {"k": k, "total": sum(r["images"] for r in runs) / window, "per_process": [r["images"] / (r["ended"] - r["started"]) for r in runs],
            "step_rates": [r["step_rate"] for r in runs]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, default="cpu")
    parser.add_argument("--trials", default="1,2,4", help="processes per device to measure (default %(default)s)")
    parser.add_argument("--compile", default="off", choices=["off", "default", "reduce-overhead"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--data", type=Path, help="a generated dataset to reuse (default: a temporary one)")
    args = parser.parse_args(argv)

    from fbp.data.faces import SynthParams, generate

    mode = MODES[args.mode]
    root = args.data or Path(tempfile.mkdtemp()) / "faces"
    if not (root / "manifest.json").exists():
        generate(root, SynthParams(n=mode["images"], size=mode["side"], seed=mode["seed"]))
    device = "cuda" if args.mode == "gpu" else "cpu"
    print(f"{mode['backbone']} at {mode['image_size']} px, batch {mode['batch']}, compile {args.compile}, precision {args.precision}, "
          f"{mode['epochs']} timed epochs of {int(mode['images'] * 0.8)} images per process on {device}")
    first = None  # the gain is against the first count measured (1 unless --trials says otherwise)
    for k in [int(x) for x in args.trials.split(",")]:
        m = measure(k, mode, root, device, args.compile, args.precision)
        first = first or (k, m["total"])
        per = ", ".join(f"{r:.0f}" for r in m["per_process"])
        print(f"{k} per device: {m['total']:8.0f} images/s in total (end to end, evaluation included) | per process {per} "
              f"| {m['total'] / first[1]:4.2f}x {first[0]} per device", flush=True)


if __name__ == "__main__":
    main()
