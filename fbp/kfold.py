"""One trial: train and evaluate every fold of a config. Plain functions, no Ray, no Optuna.

    results = run_kfold(config, on_fold=lambda r: print(r.fold, r.pc))

Per fold: the discretization and class weights are fitted on the training split only; the
training loop reads batches from the decoded uint8 cache held on the device, augments them in
batch, and keeps the loss terms on the device, read once per epoch (no host sync per step).
What depends on the device or on compilation (autocast, CUDA-graph step marks, whole batches
only) is decided once per fold, in `Batches` and the training step, before the epoch loop.
The reported test metrics come from the weights `eval.select` names; only `test_oracle` looks
at the test fold to choose, and `FoldResult.select` records that it did.

`on_progress` receives a `TrainProgress` before the images are decoded, when they are ready,
about once a second mid-epoch and after every epoch: enough for a progress display, and never
a reason for the loop to wait on the device.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from fbp import metrics
from fbp.augment import eval_view, train_view
from fbp.config import TrialConfig
from fbp.data import DISCRETIZATION, Dataset, Fold, describe_discretization, load_dataset
from fbp.data.cache import decoded_images
from fbp.discretize import Discretization, class_counts, class_weights, fit_discretization
from fbp.errors import InputError, TrainingError
from fbp.loss_names import TOTAL, train_name
from fbp.losses import build_loss
from fbp.models import FBPNet, build_model
from fbp.records import FoldResult, SelectedModel, TrainProgress
from fbp.schedules import lr_factor


class _Progress:
    """The loop's counters turned into `TrainProgress` events for a hook.

    Step events are throttled by wall time and carry counts only: nothing here reads a device
    value, so the hook never makes the loop wait for the GPU. Without a hook every call returns
    at once; with one, a step costs a clock read.
    """

    STEP_INTERVAL = 1.0  # s, at least, between two "step" events

    def __init__(self, hook: Callable[[TrainProgress], None] | None, epochs: int, folds_total: int = 0):
        self.hook, self.epochs, self.folds_total = hook, epochs, folds_total
        self.started = time.perf_counter()
        self.epoch_seconds: list[float] = []  # wall time of each epoch of this call, evaluation included
        self.fold = self.position = self.steps = 0
        self.next_step = 0.0

    def _emit(self, event: str, epoch: int = 0, step: int = 0, **fields) -> None:
        fold, position = (self.fold, self.position) if epoch else (0, 0)
        self.hook(TrainProgress(event, fold, position, self.folds_total, epoch, self.epochs, step, self.steps, seconds=time.perf_counter() - self.started, **fields))

    def note(self, event: str, message: str) -> None:
        if self.hook is not None:
            self._emit(event, loss=None, images_per_second=None, seconds_left=None, message=message)

    def begin_fold(self, fold: int, steps: int) -> None:
        self.fold, self.steps, self.position = fold, steps, self.position + 1
        if self.hook is not None:  # step 0: shows the fold while its first step (and any compilation) runs
            self._emit("step", 1, 0, loss=None, images_per_second=None, seconds_left=self._left(1, 0.0))
            self.next_step = time.perf_counter() + self.STEP_INTERVAL

    def step(self, epoch: int, step: int, images: int, train_seconds: float, epoch_start: float) -> None:
        """`images` trained in this fold so far, `train_seconds` of the fold's steps before this epoch."""
        if self.hook is None:
            return
        now = time.perf_counter()
        if now < self.next_step:
            return
        self.next_step = now + self.STEP_INTERVAL
        seconds = train_seconds + now - epoch_start
        self._emit("step", epoch, step, loss=None, images_per_second=images / seconds if seconds > 0 else None, seconds_left=self._left(epoch, now - epoch_start))

    def end_epoch(self, epoch: int, loss: float, images: int, train_seconds: float, epoch_start: float, test: dict | None) -> None:
        now = time.perf_counter()
        self.epoch_seconds.append(now - epoch_start)
        if self.hook is None:
            return
        self.next_step = now + self.STEP_INTERVAL
        rate = images / train_seconds if train_seconds > 0 else None
        self._emit("epoch", epoch, self.steps, loss=loss, images_per_second=rate, seconds_left=self._left(epoch, None), test=dict(test) if test else None)

    def _left(self, epoch: int, into_epoch: float | None) -> float | None:
        """Seconds left in this call: the mean epoch so far times the epochs to go, less the
        part of the current epoch already run (`into_epoch`; None when it has ended)."""
        if not self.epoch_seconds:
            return None
        times = self.epoch_seconds[1:] or self.epoch_seconds  # the first epoch carries warm-up and compilation
        per_epoch = sum(times) / len(times)
        after = (self.folds_total - self.position) * self.epochs + (self.epochs - epoch)  # whole epochs after this one
        current = 0.0 if into_epoch is None else max(per_epoch - into_epoch, 0.0)
        return per_epoch * after + current


@dataclass
class TrialData:
    """What every fold of a trial shares: the dataset, its folds and the decoded images."""

    dataset: Dataset
    folds: list[Fold]
    images: torch.Tensor  # (N, S, S, 3) uint8 on the training device, in dataset.images order
    index: dict[str, int]  # image name -> row of `images`
    scores: np.ndarray  # (N,) score of each row of `images`
    device: torch.device
    compiled: dict = field(default_factory=dict)  # num_classes -> (module, compiled forward), one per trial


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"train.device: {name!r} asked for, but no CUDA device is available")
    return torch.device(name)


def prepare(config: TrialConfig) -> TrialData:
    """The dataset, its folds (`data.folds` of them) and its images decoded onto the device."""
    return _prepare(config, _Progress(None, config.train.epochs))


def _prepare(config: TrialConfig, progress: _Progress, skip: set[int] = frozenset(), repeats: int = 1) -> TrialData:
    c = config.data
    dataset = load_dataset(c.dataset, c.root, **c.options)
    folds = dataset.folds(c.protocol)
    if c.folds:
        bad = [k for k in c.folds if not 1 <= k <= len(folds)]
        if bad:
            raise InputError(f"data.folds: fold {bad[0]} does not exist; protocol {c.protocol!r} has folds 1..{len(folds)}")
        folds = [folds[k - 1] for k in c.folds]
    for fold in folds:  # a degenerate discretization is refused before any image is decoded
        if fold.index + 1 not in skip:
            fold_discretization(config, dataset, fold)
    device = resolve_device(config.train.device)
    progress.folds_total = progress.folds_total or repeats * sum(f.index + 1 not in skip for f in folds)
    progress.note("prepare", f"loading {len(dataset.images)} {c.dataset} images at {c.cached_side} px onto {device} (decoded on first use, then cached)")
    started = time.perf_counter()
    images = torch.from_numpy(np.array(decoded_images(dataset, c.cached_side))).to(device)  # a private, writable copy
    progress.note("ready", f"{len(dataset.images)} images ready on {device} ({images.nbytes / 2**20:.1f} MiB, {time.perf_counter() - started:.1f} s)")
    index = {name: i for i, name in enumerate(dataset.images)}
    return TrialData(dataset, folds, images, index, dataset.scores(dataset.images), device)


def stratified_holdout(classes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask holding out `fraction` of each class (at least one of any class with 2+)."""
    held = np.zeros(len(classes), dtype=bool)
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        k = int(round(fraction * len(members))) or (1 if len(members) > 1 else 0)
        held[rng.choice(members, size=k, replace=False)] = True
    return held


def validation_split(config: TrialConfig, train_rows: np.ndarray, train_classes: np.ndarray, rng: np.random.Generator, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows): `eval.val_fraction` of each class held out when
    eval.select is inner_val or eval.holdout is on, else none held out. A holdout that holds
    out nothing is an error: selecting on it would fall back to the test fold."""
    if config.eval.select != "inner_val" and not config.eval.holdout:
        return train_rows, np.array([], dtype=np.int64)
    held = stratified_holdout(train_classes, config.eval.val_fraction, rng)
    if not held.any():
        key = "eval.select: inner_val" if config.eval.select == "inner_val" else "eval.holdout: true"
        raise InputError(f"{key}: fold {fold}'s {len(train_rows)} training faces hold out none for validation "
                         f"(eval.val_fraction {config.eval.val_fraction} of each class, and no class has two faces); use more data")
    return train_rows[~held], train_rows[held]


MAX_CLASS_SHARE = 0.95
"""The largest share of a training split one class may hold (see `fold_discretization`)."""


def fold_discretization(config: TrialConfig, dataset: Dataset, fold: Fold) -> Discretization:
    """`loss.discretization` fitted on the fold's training split (only it: no test leakage).

    Refused (InputError naming the rule, the dataset, the fold and the class counts) when it
    leaves a class of the training split empty or puts more than `MAX_CLASS_SHARE` of it in one
    class: the classification head would learn nothing, or one class, as the paper's 1..5 rule
    does on HotOrNot's z-scores (every score below 1.5 is class 0)."""
    d = config.loss.discretization
    train_scores = dataset.scores(fold.train)
    disc = fit_discretization(d.rule, train_scores, d.num_classes, d.edges, d.values, dataset.score_range)
    counts = class_counts(disc.classes(train_scores), disc.num_classes)
    empty = np.flatnonzero(counts == 0).tolist()
    share = counts.max() / max(counts.sum(), 1)
    if not empty and share <= MAX_CLASS_SHARE:
        return disc
    problems = [f"leaves class{'es' if len(empty) > 1 else ''} {', '.join(map(str, empty))} empty"] if empty else []
    if share > MAX_CLASS_SHARE:
        problems.append(f"puts {share:.0%} in class {int(counts.argmax())} (at most {MAX_CLASS_SHARE:.0%} may share one)")
    edges = ", ".join(f"{e:g}" for e in disc.edges)
    raise InputError(
        f"loss.discretization: rule {d.rule!r} (edges [{edges}]) on dataset {dataset.name}, fold {fold.index + 1}: "
        f"of the {counts.sum()} training scores ({train_scores.min():g}..{train_scores.max():g}) it {' and '.join(problems)}; "
        f"counts per class {counts.tolist()}. {_own_rule(dataset.name)}"
    )


def _own_rule(dataset: str) -> str:
    if dataset not in DISCRETIZATION:
        return "Choose a rule that fits the scores' scale."
    return f"{dataset}'s own rule (loss.discretization.rule: auto) is {describe_discretization(dataset)}."


def head_outputs(model: FBPNet, x: torch.Tensor, values: torch.Tensor, autocast: AbstractContextManager) -> tuple[torch.Tensor, torch.Tensor]:
    """Both heads' predictions of a normalized batch (B, 3, H, W), in float32 (FBPNet runs its
    heads in float32 under any precision): the regression score (B,) and the expectation
    sum_k softmax(z)_k v_k (B,). Evaluation and `fbp.predict` both call it, so a kept model
    scores a new face as it scored its test fold."""
    with autocast:
        reg, logits = model(x)
    return reg, logits.softmax(1) @ values


VIEW_BUDGET_BYTES = 2 << 30
"""The most memory a fold's prepared evaluation views may take on its device (2 GiB: SCUT-FBP5500's
1,100 test faces at 224 px take 0.66 GB in float32); beyond it each epoch prepares them again."""


class _Evaluator:
    """Predictions of both heads on a set of rows of the cached images, seen as `eval.view`.

    The rows' views (cut, resized, normalized, channels_last) are the same every epoch, so they
    are prepared once, on the first evaluation, as eval.batch_size batches on the device (within
    VIEW_BUDGET_BYTES); every epoch then costs the forward passes and one transfer to the host.
    Preparing them each epoch cost more than the forward itself on a GPU (issue 22's 0.25 s
    against 0.08 s an epoch)."""

    def __init__(self, data: TrialData, rows: np.ndarray, config: TrialConfig, values: torch.Tensor, autocast: AbstractContextManager):
        self.data, self.rows, self.config, self.values, self.autocast = data, torch.as_tensor(rows, device=data.device), config, values, autocast
        self.views: list[torch.Tensor] | None = None

    def _batches(self, model: FBPNet) -> Iterator[torch.Tensor]:
        size, batch, view = self.config.data.image_size, self.config.eval.batch_size, self.config.eval.view
        for start in range(0, len(self.rows), batch):
            x = eval_view(self.data.images[self.rows[start : start + batch]], size, view, model.mean, model.std)
            yield x.contiguous(memory_format=torch.channels_last) if self.config.train.channels_last else x

    @torch.no_grad()
    def __call__(self, model: FBPNet) -> tuple[np.ndarray, np.ndarray]:
        if self.views is None and len(self.rows) * 3 * self.config.data.image_size**2 * 4 <= VIEW_BUDGET_BYTES:
            self.views = list(self._batches(model))
        model.eval()
        outputs = [torch.stack(head_outputs(model, x, self.values, self.autocast)) for x in (self.views if self.views is not None else self._batches(model))]
        model.train()
        both = torch.cat(outputs, dim=1).cpu().numpy().astype(np.float64)  # (2, N): the epoch's one transfer
        return both[0], both[1]


def predicted_score(predict: str, fused_weight: float, reg: np.ndarray, exp: np.ndarray) -> np.ndarray:
    """The prediction `eval.predict` names (reg, exp, or fused: fused_weight * reg + (1 - it) * exp)."""
    if predict == "fused":
        return fused_weight * reg + (1 - fused_weight) * exp
    return {"reg": reg, "exp": exp}[predict]


def _prediction(config: TrialConfig, reg: np.ndarray, exp: np.ndarray) -> np.ndarray:
    return predicted_score(config.eval.predict, config.eval.fused_weight, reg, exp)


def _last_epoch(epoch: int, epochs: int, pc: float, best_pc: float) -> bool:
    return epoch == epochs


def _best_pc(epoch: int, epochs: int, pc: float, best_pc: float) -> bool:
    return (not math.isnan(pc)) and (math.isnan(best_pc) or pc > best_pc)


SELECT: dict[str, Callable[[int, int, float, float], bool]] = {
    "last": _last_epoch,  # the weights after the last epoch
    "inner_val": _best_pc,  # pc: on the part of the training fold held out
    "test_oracle": _best_pc,  # pc: on the test fold (optimistic; flagged in FoldResult.select)
}
"""`eval.select` -> whether an evaluated epoch's weights replace the chosen ones, given
(epoch, epochs, pc of this epoch, pc of the chosen epoch); a NaN pc is never better."""


class _Selection:
    """The evaluated epoch `eval.select` chooses, with its test predictions. The first evaluated
    epoch is held until one is chosen, so there is always one (all PCs NaN included)."""

    def __init__(self, select: str, epochs: int):
        self.chooses, self.epochs = SELECT[select], epochs
        self.pc, self.epoch = float("nan"), epochs
        self.reg: np.ndarray | None = None
        self.exp: np.ndarray | None = None
        self.val: dict[str, float] = {}  # the chosen epoch's validation metrics, when there is a held-out part

    def offer(self, epoch: int, pc: float, reg: np.ndarray, exp: np.ndarray, val: dict[str, float] | None = None) -> bool:
        """Whether this epoch is now the chosen one."""
        if self.chooses(epoch, self.epochs, pc, self.pc) or self.reg is None:
            self.pc, self.epoch, self.reg, self.exp, self.val = pc, epoch, reg, exp, val or {}
            return True
        return False


class Batches:
    """The index batches of one epoch, each pass a new shuffle from `generator` (on the CPU).

    `whole_only` (compiled): whole batches only, as a DataLoader with drop_last: a second shape
    would compile (and capture) the model again; the shuffle brings the dropped rows back in
    later epochs. A set no larger than one batch is still one (partial) batch.
    """

    def __init__(self, rows: torch.Tensor, batch_size: int, whole_only: bool, generator: torch.Generator):
        self.rows, self.batch_size, self.generator = rows, batch_size, generator  # rows: (N,) on the device
        drop = whole_only and len(rows) > batch_size
        self.steps = len(rows) // batch_size if drop else math.ceil(len(rows) / batch_size)
        self.images = self.steps * batch_size if drop else len(rows)  # rows one pass yields

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = self.rows[torch.randperm(len(self.rows), generator=self.generator).to(self.rows.device)][: self.images]
        for start in range(0, self.images, self.batch_size):
            yield order[start : start + self.batch_size]  # (B,) rows of the cached images


def autocast_for(precision: str, device: torch.device) -> AbstractContextManager:
    """bf16 autocast (`train.precision`; auto: on CUDA only), or nothing: decided once per fold
    (and once per loaded model by `fbp.predict`)."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda params, t, fused: torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, fused=fused),
    "adam": lambda params, t, fused: torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, fused=fused),
    "adamw": lambda params, t, fused: torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, fused=fused),
}
"""train.optimizer -> the torch optimizer over (params, TrainConfig, fused)."""


def _optimizer(config: TrialConfig, params: list[torch.nn.Parameter], device: torch.device) -> torch.optim.Optimizer:
    fused = True if device.type == "cuda" else None  # one kernel for the whole step; measured +18% at batch 64
    return OPTIMIZERS[config.train.optimizer](params, config.train, fused)


def _train_step(
    config: TrialConfig,
    data: TrialData,
    targets: tuple[torch.Tensor, torch.Tensor],
    forward: Callable,
    criterion: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    autocast: AbstractContextManager,
    augment_rng: torch.Generator,
    normalization: tuple[tuple[float, ...], tuple[float, ...]],
) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """One training step on a batch of rows of the cached images: augment, forward, loss,
    backward, optimizer and LR step. It returns the loss and its terms, detached, on the device
    (no host sync). `targets`: (N,) scores and (N,) classes of every cached image;
    `normalization`: the backbone's (mean, std)."""
    size, augment = config.data.image_size, config.train.augment
    mean, std = normalization
    layout = torch.channels_last if config.train.channels_last else None
    graphs = config.train.compile == "reduce-overhead" and data.device.type == "cuda"
    # CUDA graphs: the last step's graph outputs are no longer read, so the next replay may reuse them
    begin = torch.compiler.cudagraph_mark_step_begin if graphs else lambda: None
    scores, classes = targets

    def step(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = train_view(data.images[batch], size, augment, augment_rng, mean, std)  # (B, 3, size, size)
        if layout is not None:
            x = x.contiguous(memory_format=layout)
        begin()
        with autocast:
            reg, logits = forward(x)  # (B,), (B, K)
        loss, terms = criterion(reg, logits, scores[batch], classes[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        return {name: value.detach() for name, value in {TOTAL: loss, **terms}.items()}

    return step


def _fold_model(config: TrialConfig, num_classes: int, data: TrialData) -> tuple[FBPNet, Callable]:
    """The fold's model, initialised from the fold's seed, and what the training step calls.

    Compiled, the trial builds and compiles one module, and each fold copies a fresh build's
    weights into it in place: the compiled graph (and its CUDA graphs, which hold the
    parameters' addresses) is reused across folds, and the weights are those a fresh build gives.
    """
    t = config.train
    fresh = build_model(config.model, num_classes, config.data.image_size)
    if t.compile == "off":
        model = fresh.to(data.device)
        model = model.to(memory_format=torch.channels_last) if t.channels_last else model
        return model, model
    if num_classes not in data.compiled:
        with torch.random.fork_rng(devices=[]):  # building it must not move the fold's random streams
            model = build_model(config.model, num_classes, config.data.image_size).to(data.device)
        if t.channels_last:
            model = model.to(memory_format=torch.channels_last)
        data.compiled[num_classes] = (model, torch.compile(model, mode=t.compile))
    model, forward = data.compiled[num_classes]
    with torch.no_grad():
        model.load_state_dict(fresh.state_dict())
    return model, forward


def fit_fold(config: TrialConfig, fold: Fold, data: TrialData | None = None, on_progress: Callable[[TrainProgress], None] | None = None,
             keep_model: bool = False) -> FoldResult:
    """Train on `fold.train`, evaluate on `fold.test`, with the weights `eval.select` names
    (`keep_model`: those weights in `FoldResult.model`)."""
    return _fit_fold(config, fold, data, _Progress(on_progress, config.train.epochs, folds_total=1), keep_model)


def _cpu_copy(model: FBPNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@contextmanager
def deterministic_algorithms(on: bool) -> Iterator[None]:
    """`train.deterministic`: torch's deterministic algorithms, cuDNN's autotuner off and its
    deterministic kernels on, for the length of a fold; the previous settings after (a worker
    trains other trials next). cuBLAS needs a fixed workspace for repeatable sums; it reads
    CUBLAS_WORKSPACE_CONFIG when its handle is made, so a user's own value is kept."""
    if not on:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cudnn = torch.backends.cudnn
    before = torch.are_deterministic_algorithms_enabled(), cudnn.benchmark, cudnn.deterministic
    torch.use_deterministic_algorithms(True)
    cudnn.benchmark, cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        cudnn.benchmark, cudnn.deterministic = before[1], before[2]


def _fit_fold(config: TrialConfig, fold: Fold, data: TrialData | None, progress: _Progress, keep_model: bool = False) -> FoldResult:
    with deterministic_algorithms(config.train.deterministic):
        return _train_fold(config, fold, data, progress, keep_model)


def _train_fold(config: TrialConfig, fold: Fold, data: TrialData | None, progress: _Progress, keep_model: bool = False) -> FoldResult:
    started, started_at = time.perf_counter(), time.time()
    data = data or _prepare(config, progress)
    t, device = config.train, data.device
    seed = t.seed * 1000 + fold.index  # each fold its own stream, reproducible alone
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    # 1) rows, scores and classes; everything fitted on the training split only
    train_rows = np.array([data.index[i] for i in fold.train])
    test_rows = np.array([data.index[i] for i in fold.test])
    scores = data.scores
    disc = fold_discretization(config, data.dataset, fold)
    classes = disc.classes(scores)
    train_rows, val_rows = validation_split(config, train_rows, classes[train_rows], rng, fold.index + 1)
    # eq. 6, unless loss.class_weights lists them (build_loss applies that list, and ce_weighted)
    weights = class_weights(class_counts(classes[train_rows], disc.num_classes)) if config.loss.class_weights is None else None

    # 2) model, loss, optimizer, schedule; the batches, their step and autocast decided once
    model, forward = _fold_model(config, disc.num_classes, data)
    autocast = autocast_for(config.train.precision, device)
    criterion = build_loss(config.loss, disc.values, weights).to(device)
    optimizer = _optimizer(config, [p for p in model.parameters() if p.requires_grad], device)
    shuffle = torch.Generator().manual_seed(seed)
    batches = Batches(torch.as_tensor(train_rows, device=device), t.batch_size, whole_only=t.compile != "off", generator=shuffle)
    total_steps = len(batches) * t.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(t.schedule, step, len(batches), total_steps))

    # 3) device-resident targets, the augmentation's random stream, evaluators
    targets = torch.as_tensor(scores, dtype=torch.float32, device=device), torch.as_tensor(classes, dtype=torch.long, device=device)
    augment_rng = torch.Generator(device=device).manual_seed(seed)
    train_step = _train_step(config, data, targets, forward, criterion, optimizer, scheduler, autocast, augment_rng, (model.mean, model.std))
    values_t = torch.as_tensor(disc.values, dtype=torch.float32, device=device)
    evaluate_test = _Evaluator(data, test_rows, config, values_t, autocast)
    evaluate_val = _Evaluator(data, val_rows, config, values_t, autocast) if len(val_rows) else None

    curves: list[dict] = []
    selection = _Selection(config.eval.select, t.epochs)
    state: dict[str, torch.Tensor] | None = None  # the chosen epoch's weights (keep_model)
    step_seconds, images_seen = 0.0, 0
    progress.begin_fold(fold.index + 1, len(batches))
    for epoch in range(1, t.epochs + 1):
        # 4) one epoch; loss terms summed on the device, read once at its end
        lr = optimizer.param_groups[0]["lr"]
        sums: dict[str, torch.Tensor] = {}
        epoch_start, done = time.perf_counter(), 0
        for step, batch in enumerate(batches, 1):
            for name, value in train_step(batch).items():
                sums[name] = sums.get(name, 0) + value * len(batch)
            done += len(batch)
            progress.step(epoch, step, images_seen + done, step_seconds, epoch_start)
        means = {name: float(v) / done for name, v in sums.items()}  # the epoch's one sync
        step_seconds += time.perf_counter() - epoch_start
        images_seen += done
        bad = [name for name, v in means.items() if not math.isfinite(v)]
        if bad:
            term = next((n for n in bad if n != TOTAL), TOTAL)
            raise TrainingError(f"fold {fold.index + 1}, epoch {epoch}: loss term {term!r} is not finite ({means[term]})")
        row = {"epoch": epoch, "lr": lr, **{train_name(k): v for k, v in means.items()}}
        test = None

        # 5) evaluation and model selection (inner_val judges by the held-out rows, else by the test fold)
        if epoch % t.eval_every == 0 or epoch == t.epochs:
            reg_np, exp_np = evaluate_test(model)
            test = metrics.scores(scores[test_rows], _prediction(config, reg_np, exp_np))
            row.update({metrics.curve_name(k): v for k, v in test.items()})
            val = None
            if evaluate_val is not None:
                val = metrics.scores(scores[val_rows], _prediction(config, *evaluate_val(model)))
                row.update({metrics.val_name(k): v for k, v in val.items()})
            judge = val["pc"] if config.eval.select == "inner_val" and val is not None else test["pc"]
            if selection.offer(epoch, judge, reg_np, exp_np, val) and keep_model:
                state = _cpu_copy(model)  # a copy: the next epochs change the weights in place
        curves.append(row)
        progress.end_epoch(epoch, means[TOTAL], images_seen, step_seconds, epoch_start, test)

    # 6) the selected epoch's test predictions and metrics
    y_true = scores[test_rows]
    y_pred = _prediction(config, selection.reg, selection.exp)
    has_classes = config.loss.name == "combo"
    result = metrics.scores(y_true, y_pred)
    elapsed = time.perf_counter() - started
    return FoldResult(
        fold=fold.index + 1,
        mae=result["mae"],
        rmse=result["rmse"],
        pc=result["pc"],
        n_train=len(train_rows),
        n_test=len(test_rows),
        epochs_run=t.epochs,
        selected_epoch=selection.epoch,
        select=config.eval.select,
        train_seconds=elapsed,
        images_per_second=images_seen / step_seconds if step_seconds else float("nan"),
        device=str(device),
        started_at=started_at,
        finished_at=time.time(),
        seed=t.seed,
        **{metrics.val_name(k): v for k, v in selection.val.items()},
        curves=curves,
        predictions={
            "image": list(fold.test),
            "subset": data.dataset.subsets(fold.test),
            "y_true": y_true.tolist(),
            "y_pred": y_pred.tolist(),
            "y_reg": selection.reg.tolist(),
            "y_exp": selection.exp.tolist() if has_classes else [float("nan")] * len(test_rows),
        },
        model=SelectedModel(state, tuple(float(v) for v in disc.values), model.mean, model.std) if state is not None else None,
    )


def run_kfold(
    config: TrialConfig,
    on_fold: Callable[[FoldResult], None] | None = None,
    skip: set[int] = frozenset(),
    on_progress: Callable[[TrainProgress], None] | None = None,
    keep_models: bool = False,
) -> list[FoldResult]:
    """Every fold of the config's protocol (or `data.folds`), in order, each `train.repeats`
    times (seeds train.seed, train.seed + 1, ...); `on_fold` after each run, `on_progress` as
    it goes (see `TrainProgress`). Folds numbered in `skip` (1-based, e.g. done before a
    restart) are not trained again. `keep_models`: each result carries its selected model
    (`FoldResult.model`, CPU weights; an `on_fold` that saves it may drop it to free memory)."""
    t = config.train
    progress = _Progress(on_progress, t.epochs)
    data = _prepare(config, progress, skip, t.repeats)
    runs = [config.model_copy(update={"train": t.model_copy(update={"seed": t.seed + r})}) for r in range(t.repeats)]
    results = []
    for fold, run in ((f, r) for f in data.folds for r in runs):
        if fold.index + 1 in skip:
            continue
        try:
            result = _fit_fold(run, fold, data, progress, keep_models)
        except torch.OutOfMemoryError as e:
            # the allocator's message is a paragraph; the one line a results row can carry says what to change
            first = str(e).strip().splitlines()[0] if str(e).strip() else "no details"
            raise TrainingError(
                f"fold {fold.index + 1}: out of memory on {config.train.device} at train.batch_size {config.train.batch_size}, "
                f"data.image_size {config.data.image_size} ({first}); lower the batch size or give each trial more of the device (resources.gpu)"
            ) from e
        results.append(result)
        if on_fold is not None:
            on_fold(result)
    return results


def fit_all(config: TrialConfig, on_progress: Callable[[TrainProgress], None] | None = None) -> FoldResult:
    """The config trained once on every labelled image of its dataset (what `fbp-search export
    --refit` ships): one split whose training part is all the images, its model kept.

    Nothing is held out, so nothing can choose an epoch: the weights are the last epoch's
    (eval.select last, no holdout, one seed), and the metrics the result reports are the fit on
    the training images themselves, evaluated once at the end: no estimate of anything. The
    k-fold figures of the same configuration are its estimate."""
    t = config.train
    config = config.model_copy(update={
        "eval": config.eval.model_copy(update={"select": "last", "holdout": False}),
        "train": t.model_copy(update={"eval_every": t.epochs, "repeats": 1}),
    })
    progress = _Progress(on_progress, t.epochs, folds_total=1)
    data = _prepare(config, progress)
    everything = tuple(data.dataset.images)
    return _fit_fold(config, Fold(0, everything, everything), data, progress, keep_model=True)
