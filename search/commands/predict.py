"""`fbp-search predict MODEL_DIR IMAGE_OR_FOLDER... [--out scores.csv]`: score faces.

MODEL_DIR is a folder `fbp-search export` wrote. Each argument after it is an image, or a
folder searched (recursively) for images by suffix (fbp.predict.IMAGE_SUFFIXES). The images are
scored in batches on the GPU when there is one (--device), with a progress bar on a terminal
and whole lines elsewhere. The CSV (fbp.predict.FIXED_COLUMNS, then one column per member)
goes to --out, written atomically, or to stdout.

An input that cannot be scored (a missing file, a file that is no image, an empty folder) is
one line on stderr and exit code 2, after the good images are scored and written. A tiny image
(fbp.predict.tiny_image) is scored, with one warning line on stderr and its reason in the CSV's
`warning` column.

--detect-faces: each argument is a photo rather than a face crop. Each frontal face found in it
(fbp.detect) is cut out as the training set frames its faces and scored: one row per face,
`photo.jpg#1`, `#2`, ... left to right, with its box (fbp.detect.BOX_COLUMNS) after `image`. A
photo with no face is one row with an empty score and `no face found` in `warning` (one
warning line on stderr). OpenCV is an optional extra: without it, one line saying how to
install it and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console

from fbp.errors import InputError
from fbp.files import atomic_path
from search.console import command_console, styled


def register(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser("predict", help="score face images with an exported model folder")
    predict.add_argument("model", type=Path, help="a model folder written by fbp-search export")
    predict.add_argument("images", type=Path, nargs="+", metavar="IMAGE_OR_FOLDER", help="images, or folders of them (searched recursively)")
    predict.add_argument("--out", type=Path, help="the CSV to write (default: stdout)")
    predict.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda, cuda:1 (default %(default)s)")
    predict.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default %(default)s)")
    predict.add_argument("--detect-faces", action="store_true", help="the images are photos: find each face, crop it as the training faces are framed, score it (a row per face, with its box)")
    predict.set_defaults(run=run_predict)


def gather(arguments: list[Path], suffixes: tuple[str, ...]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The images the arguments name, in their order (a folder's sorted), and the arguments
    that name none: (argument, why)."""
    images, bad = [], []
    for path in arguments:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file() and not p.name.startswith("."))
            if not found:
                bad.append((str(path), f"a folder with no images ({', '.join(suffixes)})"))
            images += found
        elif path.exists() or path.is_symlink():
            images.append(path)  # a file named explicitly is tried whatever its suffix: decoding says whether it is an image
        else:
            bad.append((str(path), "no such file or folder"))
    return images, bad


class PredictDisplay:
    """`on_batch` for `Model.predict_frame`: a bar on a terminal; elsewhere a whole line about
    every `every` seconds and at the end."""

    def __init__(self, console: Console, every: float = 5.0):
        self.console, self.every = console, every
        self.started = time.perf_counter()
        self.printed = 0.0
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.started
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            if self.bar is None:
                self.bar = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                    console=self.console, transient=True)
                self.task = self.bar.add_task("", total=total, rate="")
                self.bar.start()
            self.bar.update(self.task, completed=done, rate=f"{done / elapsed:.0f} images/s" if elapsed > 0 else "")
            return
        if elapsed - self.printed >= self.every or done == total:
            self.printed = elapsed
            self.console.out(f"scored {done}/{total} images  {done / elapsed if elapsed > 0 else 0:.0f} images/s  {elapsed:.1f} s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _write_csv(frame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)


def run_predict(args: argparse.Namespace) -> int:
    from fbp.predict import IMAGE_SUFFIXES, load_model

    if args.batch_size < 1:
        raise InputError(f"--batch-size: must be >= 1, got {args.batch_size}")
    if args.out is not None and args.out.is_dir():
        raise InputError(f"--out {args.out}: is a directory; give the CSV file to write")
    if args.detect_faces:
        from fbp.detect import cascade, predict_faces

        cascade()  # no OpenCV: one line saying how to install it, before a model is loaded
    model = load_model(args.model, device=args.device)  # a folder that is no model: nothing to score with
    images, bad = gather(args.images, IMAGE_SUFFIXES)
    # the CSV may be stdout: then everything said goes to stderr
    console = command_console(stderr=args.out is None)
    errors = command_console(stderr=True)
    console.print(f"{model}: scoring {len(images)} images{' (faces found in them)' if args.detect_faces else ''}")
    display = PredictDisplay(console)
    started = time.perf_counter()
    try:
        if args.detect_faces:
            frame = predict_faces(model, images, batch_size=args.batch_size, errors=bad, on_batch=display)
        else:
            frame = model.predict_frame(images, batch_size=args.batch_size, errors=bad, on_batch=display)
    finally:
        display.close()
    seconds = time.perf_counter() - started
    if len(frame):
        if args.out is None:
            frame.to_csv(sys.stdout, index=False)
        else:
            _write_csv(frame, args.out)
    rate = len(frame) / seconds if seconds > 0 else float("nan")
    where = f"; wrote {args.out}" if args.out is not None and len(frame) else ""
    if args.detect_faces:  # a row is a face or a photo without one: count the faces
        faces = int(frame["score"].notna().sum()) if len(frame) else 0
        console.print(f"scored {faces} faces found in {len(images)} images in {seconds:.1f} s on {model.device}{where}")
    else:
        console.print(f"scored {len(frame)} of {len(images)} images in {seconds:.1f} s ({rate:.0f} images/s on {model.device}){where}")
    for image, warning in zip(frame["image"], frame["warning"]) if len(frame) else ():
        if warning:
            errors.print(styled("warning:", "yellow", _one_line(image, warning)))
    for argument, why in bad:
        errors.print(styled("error:", "bold red", _one_line(argument, why)))
    return 2 if bad else 0


def _one_line(argument: str, why: str) -> str:
    """`path: why`, once: fbp's messages already begin with the path."""
    text = why if why.startswith(argument) else f"{argument}: {why}"
    return " ".join(text.split())
