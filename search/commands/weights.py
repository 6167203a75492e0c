"""`fbp-search weights BACKBONE --out FILE.safetensors`: timm's pretrained weights, on disk once.

Run where the hub is reachable (or where the Hugging Face cache already holds them); the file
is a safetensors state dict of the bare backbone, which `model.pretrained: FILE` loads on any
node, offline, without running code. torch and timm are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fbp.errors import InputError
from search.console import command_console


def register(commands: argparse._SubParsersAction) -> None:
    weights = commands.add_parser("weights", help="write timm's pretrained weights of a backbone to a safetensors file (needs the hub once)")
    weights.add_argument("backbone", help="a timm model name, e.g. seresnext50_32x4d")
    weights.add_argument("--out", type=Path, required=True, help="the .safetensors file to write (a new file)")
    weights.set_defaults(run=run_weights)


def run_weights(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix != ".safetensors":
        raise InputError(f"--out {out}: must end in .safetensors")
    if out.exists():
        raise InputError(f"--out {out} exists; remove it or choose another file")

    from fbp.models import WeightsUnavailable, check_backbone_name, pretrained_backbone, save_weights

    try:
        check_backbone_name(args.backbone)  # an unknown name lists similar ones
    except InputError as e:
        raise InputError(f"weights: {e}") from None
    start = time.perf_counter()
    try:
        backbone = pretrained_backbone(args.backbone)
    except WeightsUnavailable as e:
        hint = "; run this where the hub is reachable, or with HF_HOME pointing at a cache that holds them" if e.exist else ""
        raise InputError(f"weights {args.backbone}: {e}{hint}") from None
    size = save_weights(backbone, out, metadata={"backbone": args.backbone, "source": "timm"})
    console = command_console()
    console.print(f"wrote timm's {args.backbone} weights (bare backbone, {size / 2**20:.1f} MiB) to {out} in {time.perf_counter() - start:.1f} s")
    console.print(f"use them on any node: model.pretrained: {out.resolve()}")
    return 0
