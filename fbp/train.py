"""One trial: train and evaluate every fold of a config. Plain functions, no Ray, no Optuna.

    results = run_kfold(config, on_fold=lambda r: print(r.fold, r.pc))

Per fold: the discretization and class weights are fitted on the training split only; the
training loop reads batches from the decoded uint8 cache held on the device, augments them in
batch, and keeps the loss terms on the device, read once per epoch (no host sync per step).
The reported test metrics come from the weights `eval.select` names; only `test_oracle` looks
at the test fold to choose, and `FoldResult.select` records that it did.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from fbp import metrics
from fbp.augment import eval_view, train_view
from fbp.config import TrialConfig
from fbp.data import Dataset, Fold, load_dataset
from fbp.data.cache import decoded_images
from fbp.discretize import Discretization, class_counts, class_weights, fit_discretization
from fbp.errors import InputError, TrainingError
from fbp.losses import build_loss
from fbp.models import build_model
from fbp.schedules import lr_factor


@dataclass
class FoldResult:
    fold: int  # 1-based, as the split files number them
    mae: float
    rmse: float
    pc: float
    n_train: int
    n_test: int
    epochs_run: int
    selected_epoch: int  # 1-based epoch whose weights gave the metrics
    select: str  # eval.select; "test_oracle" means the test fold chose the epoch
    train_seconds: float  # wall time of the fold, evaluation included
    images_per_second: float  # training images per second of training steps
    device: str
    started_at: float = 0.0  # unix time the fold began
    finished_at: float = 0.0
    curves: list[dict] = field(default_factory=list)  # one row per epoch
    predictions: dict[str, list] = field(default_factory=dict)  # image, subset, y_true, y_pred, y_reg, y_exp


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
    c = config.data
    dataset = load_dataset(c.dataset, c.root, **c.options)
    folds = dataset.folds(c.protocol)
    if c.folds:
        bad = [k for k in c.folds if not 1 <= k <= len(folds)]
        if bad:
            raise InputError(f"data.folds: fold {bad[0]} does not exist; protocol {c.protocol!r} has folds 1..{len(folds)}")
        folds = [folds[k - 1] for k in c.folds]
    device = resolve_device(config.train.device)
    images = torch.from_numpy(np.array(decoded_images(dataset, c.cached_side))).to(device)  # a private, writable copy
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


class _Evaluator:
    """Predictions of both heads on a set of rows of the cached images."""

    def __init__(self, data: TrialData, rows: np.ndarray, config: TrialConfig, values: torch.Tensor, autocast):
        self.data, self.rows, self.config, self.values, self.autocast = data, torch.as_tensor(rows, device=data.device), config, values, autocast

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
        model.eval()
        regs, exps = [], []
        size, batch = self.config.data.image_size, self.config.eval.batch_size
        for start in range(0, len(self.rows), batch):
            x = eval_view(self.data.images[self.rows[start : start + batch]], size)
            if self.config.train.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast():
                reg, logits = model(x)
            regs.append(reg.float())
            exps.append(logits.float().softmax(1) @ self.values)
        model.train()
        return torch.cat(regs).cpu().numpy().astype(np.float64), torch.cat(exps).cpu().numpy().astype(np.float64)


def _prediction(config: TrialConfig, reg: np.ndarray, exp: np.ndarray) -> np.ndarray:
    e = config.eval
    return {"reg": reg, "exp": exp, "fused": e.fused_weight * reg + (1 - e.fused_weight) * exp}[e.predict]


def _better(pc: float, best: float) -> bool:
    return (not math.isnan(pc)) and (math.isnan(best) or pc > best)


def _fold_model(config: TrialConfig, num_classes: int, data: TrialData) -> tuple[torch.nn.Module, Callable]:
    """The fold's model, initialised from the fold's seed, and what the training step calls.

    Compiled, the trial builds and compiles one module, and each fold copies a fresh build's
    weights into it in place: the compiled graph (and its CUDA graphs, which hold the
    parameters' addresses) is reused across folds, and the weights are those a fresh build gives.
    """
    t = config.train
    fresh = build_model(config.model, num_classes)
    if t.compile == "off":
        model = fresh.to(data.device)
        model = model.to(memory_format=torch.channels_last) if t.channels_last else model
        return model, model
    if num_classes not in data.compiled:
        with torch.random.fork_rng(devices=[]):  # building it must not move the fold's random streams
            model = build_model(config.model, num_classes).to(data.device)
        if t.channels_last:
            model = model.to(memory_format=torch.channels_last)
        data.compiled[num_classes] = (model, torch.compile(model, mode=t.compile))
    model, forward = data.compiled[num_classes]
    with torch.no_grad():
        model.load_state_dict(fresh.state_dict())
    return model, forward


def fit_fold(config: TrialConfig, fold: Fold, data: TrialData | None = None) -> FoldResult:
    """Train on `fold.train`, evaluate on `fold.test`, with the weights `eval.select` names."""
    started, started_at = time.perf_counter(), time.time()
    data = data or prepare(config)
    t, device = config.train, data.device
    seed = t.seed * 1000 + fold.index  # each fold its own stream, reproducible alone
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    # 1) rows, scores and classes; everything fitted on the training split only
    train_rows = np.array([data.index[i] for i in fold.train])
    test_rows = np.array([data.index[i] for i in fold.test])
    scores = data.scores
    d = config.loss.discretization
    disc: Discretization = fit_discretization(d.rule, scores[train_rows], d.num_classes, d.edges, d.values, data.dataset.score_range)
    classes = disc.classes(scores)
    val_rows = np.array([], dtype=np.int64)
    if config.eval.select == "inner_val":
        held = stratified_holdout(classes[train_rows], config.eval.val_fraction, rng)
        train_rows, val_rows = train_rows[~held], train_rows[held]
    weights = class_weights(class_counts(classes[train_rows], disc.num_classes))

    # 2) model, loss, optimizer, schedule
    model, forward = _fold_model(config, disc.num_classes, data)
    channels_last = t.channels_last
    graphs = t.compile == "reduce-overhead" and device.type == "cuda"
    bf16 = t.precision == "bf16" or (t.precision == "auto" and device.type == "cuda")

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    criterion = build_loss(config.loss, disc.values, weights).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    fused = True if device.type == "cuda" else None  # one kernel for the whole step; measured +18% at batch 64
    if t.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, fused=fused)
    else:
        optimizer = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, fused=fused)
    # compiled: whole batches only, as a DataLoader with drop_last: a second shape would compile
    # (and capture) the model again; the shuffle brings the dropped rows back in later epochs
    drop_last = t.compile != "off" and len(train_rows) > t.batch_size
    steps_per_epoch = len(train_rows) // t.batch_size if drop_last else math.ceil(len(train_rows) / t.batch_size)
    total_steps = steps_per_epoch * t.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(t.schedule, step, steps_per_epoch, total_steps))

    # 3) device-resident targets and random streams
    score_t = torch.as_tensor(scores, dtype=torch.float32, device=device)
    class_t = torch.as_tensor(classes, dtype=torch.long, device=device)
    rows_t = torch.as_tensor(train_rows, device=device)
    shuffle = torch.Generator().manual_seed(seed)
    augment_rng = torch.Generator(device=device).manual_seed(seed)
    values_t = torch.as_tensor(disc.values, dtype=torch.float32, device=device)
    evaluate_test = _Evaluator(data, test_rows, config, values_t, autocast)
    evaluate_val = _Evaluator(data, val_rows, config, values_t, autocast) if len(val_rows) else None

    curves: list[dict] = []
    best = {"pc": float("nan"), "epoch": t.epochs, "reg": None, "exp": None}
    step_seconds, images_seen = 0.0, 0
    for epoch in range(1, t.epochs + 1):
        # 4) one epoch; loss terms summed on the device, read once at its end
        lr = optimizer.param_groups[0]["lr"]
        sums: dict[str, torch.Tensor] = {}
        epoch_start = time.perf_counter()
        order = rows_t[torch.randperm(len(rows_t), generator=shuffle).to(device)]
        if drop_last:
            order = order[: steps_per_epoch * t.batch_size]
        for start in range(0, len(order), t.batch_size):
            batch = order[start : start + t.batch_size]
            x = train_view(data.images[batch], config.data.image_size, t.augment, augment_rng)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()  # the last step's graph outputs are no longer read
            with autocast():
                reg, logits = forward(x)
            loss, terms = criterion(reg, logits, score_t[batch], class_t[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            for name, value in {"loss": loss, **terms}.items():
                sums[name] = sums.get(name, 0) + value.detach() * len(batch)
        means = {name: float(v) / len(order) for name, v in sums.items()}  # the epoch's one sync
        step_seconds += time.perf_counter() - epoch_start
        images_seen += len(order)
        bad = [name for name, v in means.items() if not math.isfinite(v)]
        if bad:
            term = next((n for n in bad if n != "loss"), "loss")
            raise TrainingError(f"fold {fold.index + 1}, epoch {epoch}: loss term {term!r} is not finite ({means[term]})")
        row = {"epoch": epoch, "lr": lr, **{f"train_{k}": v for k, v in means.items()}}

        # 5) evaluation and model selection
        if epoch % t.eval_every == 0 or epoch == t.epochs:
            reg_np, exp_np = evaluate_test(model)
            test = metrics.scores(scores[test_rows], _prediction(config, reg_np, exp_np))
            row.update({f"test_{k}": v for k, v in test.items()})
            judge = test["pc"]
            if evaluate_val is not None:
                val = metrics.scores(scores[val_rows], _prediction(config, *evaluate_val(model)))
                row.update({f"val_{k}": v for k, v in val.items()})
                judge = val["pc"]
            choose = {"last": epoch == t.epochs, "test_oracle": _better(judge, best["pc"]), "inner_val": _better(judge, best["pc"])}[config.eval.select]
            if choose or best["reg"] is None:
                best = {"pc": judge, "epoch": epoch, "reg": reg_np, "exp": exp_np}
        curves.append(row)

    # 6) the selected epoch's test predictions and metrics
    y_true = scores[test_rows]
    y_pred = _prediction(config, best["reg"], best["exp"])
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
        selected_epoch=best["epoch"],
        select=config.eval.select,
        train_seconds=elapsed,
        images_per_second=images_seen / step_seconds if step_seconds else float("nan"),
        device=str(device),
        started_at=started_at,
        finished_at=time.time(),
        curves=curves,
        predictions={
            "image": list(fold.test),
            "subset": data.dataset.subsets(fold.test),
            "y_true": y_true.tolist(),
            "y_pred": y_pred.tolist(),
            "y_reg": best["reg"].tolist(),
            "y_exp": best["exp"].tolist() if has_classes else [float("nan")] * len(test_rows),
        },
    )


def run_kfold(config: TrialConfig, on_fold: Callable[[FoldResult], None] | None = None, skip: set[int] = frozenset()) -> list[FoldResult]:
    """Every fold of the config's protocol (or `data.folds`), in order; `on_fold` after each.
    Folds numbered in `skip` (1-based, e.g. done before a restart) are not trained again."""
    data = prepare(config)
    results = []
    for fold in data.folds:
        if fold.index + 1 in skip:
            continue
        try:
            result = fit_fold(config, fold, data)
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
