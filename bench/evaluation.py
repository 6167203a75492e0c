"""Evaluation inside a fold against a bare forward of the same images, side by side in one process.

    python bench/evaluation.py --mode cpu      # resnet10t at 64 px, 400 test images: runs anywhere
    python bench/evaluation.py --mode gpu      # SEResNeXt50 at 224 px, 1,100 test images (a fold of SCUT-FBP5500)

Three timings of the same rows, each the fastest of --repeats alternating runs:

    bare forward     the prepared, normalized, channels_last views through both heads, no_grad,
                     under the trial's autocast: what evaluation cannot beat
    evaluation       fbp.kfold's evaluator as a fold calls it every epoch (views prepared on its
                     first call, then reused; one transfer to the host)
    per-epoch views  the same evaluator made to prepare its views again every epoch, as it did
                     before they were kept: the baseline

Prints seconds and images/s of each and evaluation / bare forward (issue 22's bar: at most 1.25).
No assertion on time: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fbp.config import validate_config
from fbp.data.faces import SynthParams, generate
from fbp.kfold import _Evaluator, autocast_for, head_outputs, prepare, resolve_device
from fbp.models import build_model

MODES = {
    # seed 36 fills the paper's five classes in fold 1 of 512 faces (as bench/throughput.py's cpu mode)
    "cpu": {"backbone": "resnet10t", "image_size": 64, "images": 512, "side": 96, "seed": 36, "device": "cpu"},
    "gpu": {"backbone": "seresnext50_32x4d", "image_size": 224, "images": 5500, "side": 350, "seed": 0, "device": "cuda"},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, default="cpu")
    parser.add_argument("--data", type=Path, help="a generated dataset to reuse (default: a temporary one)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    m = MODES[args.mode]
    root = args.data or Path(tempfile.mkdtemp()) / "faces"
    if not (root / "manifest.json").exists():
        generate(root, SynthParams(n=m["images"], size=m["side"], seed=m["seed"]))
    config = validate_config({
        "data": {"dataset": "scut-fbp5500", "root": str(root), "image_size": m["image_size"], "folds": [1]},
        "model": {"backbone": m["backbone"], "pretrained": False},
        "train": {"device": m["device"]},
    })
    data = prepare(config)
    device = resolve_device(m["device"])
    rows = np.array([data.index[i] for i in data.folds[0].test])
    model = build_model(config.model, 5, config.data.image_size).to(device).to(memory_format=torch.channels_last)
    values = torch.arange(1, 6, dtype=torch.float32, device=device)
    autocast = autocast_for(config.train.precision, device)
    kept = _Evaluator(data, rows, config, values, autocast)
    kept(model)  # the first call prepares the views: a fold pays it once
    views = kept.views

    def bare() -> None:
        model.eval()
        with torch.no_grad():
            for x in views:
                head_outputs(model, x, values, autocast)
        _sync(device)

    def evaluation() -> None:
        kept(model)
        _sync(device)

    before = _PerEpoch(data, rows, config, values, autocast)

    def per_epoch() -> None:
        before(model)
        _sync(device)

    timings = {"bare forward": bare, "evaluation": evaluation, "per-epoch views": per_epoch}
    best = dict.fromkeys(timings, float("inf"))
    for fn in timings.values():
        fn()  # warm
    for _ in range(args.repeats):
        for name, fn in timings.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"device {name}; {m['backbone']} at {m['image_size']} px; {len(rows)} test images, eval batch {config.eval.batch_size}; fastest of {args.repeats}")
    for label, seconds in best.items():
        print(f"{label:<16} {seconds:8.4f} s  {len(rows) / seconds:9.0f} images/s  {seconds / best['bare forward']:5.2f}x bare forward")
    print(f"evaluation / bare forward: {best['evaluation'] / best['bare forward']:.2f} (bar: <= 1.25); per-epoch views / evaluation: "
          f"{best['per-epoch views'] / best['evaluation']:.2f}")


class _PerEpoch(_Evaluator):
    """The evaluator as it was: the views prepared again on every call."""

    @torch.no_grad()
    def __call__(self, model):
        model.eval()
        outputs = [torch.stack(head_outputs(model, x, self.values, self.autocast)) for x in self._batches(model)]
        model.train()
        both = torch.cat(outputs, dim=1).cpu().numpy().astype(np.float64)
        return both[0], both[1]


if __name__ == "__main__":
    main()
