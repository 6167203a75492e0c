import math
from pathlib import Path

import numpy as np
import pytest

from fbp import metrics
from fbp.config import validate_config
from fbp.data import Dataset, Fold, Record, load_dataset
from fbp.data.synthetic import SMALL
from fbp.errors import InputError, TrainingError
from fbp.kfold import MAX_CLASS_SHARE, SELECT, Batches, fold_discretization, prepare, run_kfold, stratified_holdout, validation_split
from tests.conftest import REVIEW_Z, review_scores, write_hotornot

TINY = {
    "data": {"dataset": "synthetic", "options": SMALL, "image_size": 32, "folds": [1]},
    "model": {"backbone": "test_resnet", "pretrained": False},
    "train": {"epochs": 3, "batch_size": 16, "lr": 0.01},
    "eval": {"batch_size": 64},
}


def _config(**sections):
    raw = {k: dict(v) for k, v in TINY.items()}
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    return validate_config(raw)


def test_same_seed_same_metrics_other_seed_other_metrics():
    a, b = run_kfold(_config()), run_kfold(_config())
    assert (a[0].mae, a[0].rmse, a[0].pc) == (b[0].mae, b[0].rmse, b[0].pc)
    assert a[0].predictions == b[0].predictions
    assert [r["train_loss"] for r in a[0].curves] == [r["train_loss"] for r in b[0].curves]
    c = run_kfold(_config(train={"seed": 1}))
    assert c[0].predictions["y_pred"] != a[0].predictions["y_pred"]


def test_fold_result_agrees_with_its_predictions_and_curves():
    (r,) = run_kfold(_config())
    p = r.predictions
    assert r.fold == 1 and r.n_test == len(p["image"]) == 12 and r.n_train == 48
    assert set(p) == {"image", "subset", "y_true", "y_pred", "y_reg", "y_exp"}
    assert r.mae == pytest.approx(metrics.mae(p["y_true"], p["y_pred"]))
    assert r.pc == pytest.approx(metrics.pearson(p["y_true"], p["y_pred"]))
    assert p["y_pred"] == p["y_reg"]  # eval.predict: reg
    assert [row["epoch"] for row in r.curves] == [1, 2, 3]
    assert {"lr", "train_loss", "train_l1_reg", "train_l1_exp", "train_ce", "test_pc"} <= set(r.curves[0])
    # the last epoch's curve row is what `last` reports
    assert r.selected_epoch == 3 and r.curves[-1]["test_mae"] == pytest.approx(r.mae)


def _pc_or_low(value):
    return -math.inf if math.isnan(value) else value


def test_test_oracle_picks_the_best_test_epoch():
    (r,) = run_kfold(_config(train={"epochs": 4}, eval={"select": "test_oracle"}))
    test_pcs = [_pc_or_low(row["test_pc"]) for row in r.curves]
    assert r.select == "test_oracle" and r.selected_epoch == int(np.argmax(test_pcs)) + 1
    assert r.pc == pytest.approx(max(test_pcs))


def test_published_code_reaches_the_fold_its_values_weights_and_selection():
    raw = {**TINY, "published_code": True, "loss": {"discretization": {"values": [10, 20, 30, 40, 50]}, "class_weights": [1, 2, 3, 4, 5]}}
    (r,) = run_kfold(validate_config(raw))
    assert r.select == "test_oracle"
    # the expectation head averages the explicit class values: every y_exp lies in [10, 50]
    assert 10 <= min(r.predictions["y_exp"]) and max(r.predictions["y_exp"]) <= 50


def test_the_published_regression_optimizer_is_adam_with_weight_decay_in_the_gradient():
    """torch's Adam adds weight_decay * p to the gradient (the published code's optim.Adam); AdamW
    decays p apart. By hand, the first step of either moves p by lr against the sign of the
    gradient it uses: p = 100, grad -0.005, weight decay 1e-4 -> Adam's gradient is
    -0.005 + 0.01 = +0.005, so p -> 100 - 0.001; AdamW's is -0.005, so p -> 100 * (1 - 1e-7) + 0.001."""
    import torch

    from fbp.kfold import OPTIMIZERS

    train = validate_config({"published_code": True, "loss": {"name": "l1"}}).train
    steps = {}
    for name in ("adam", "adamw"):
        p = torch.nn.Parameter(torch.tensor([100.0], dtype=torch.float64))
        optimizer = OPTIMIZERS[name]([p], train.model_copy(update={"optimizer": name}), None)
        p.grad = torch.tensor([-0.005], dtype=torch.float64)
        optimizer.step()
        steps[name] = p.item()
    assert train.optimizer == "adam" and isinstance(OPTIMIZERS["adam"]([torch.nn.Parameter(torch.zeros(1))], train, None), torch.optim.Adam)
    assert steps["adam"] == pytest.approx(100 - 0.001, abs=1e-8)  # Adam's eps 1e-8 takes 2e-9 off the step
    assert steps["adamw"] == pytest.approx(100 * (1 - 1e-7) + 0.001, abs=1e-8)


def test_inner_val_holds_out_part_of_the_training_fold_and_picks_by_it():
    (r,) = run_kfold(_config(train={"epochs": 4}, eval={"select": "inner_val", "val_fraction": 0.25}))
    assert r.n_train < 48 and r.n_test == 12
    val_pcs = [_pc_or_low(row["val_pc"]) for row in r.curves]
    assert r.selected_epoch == int(np.argmax(val_pcs)) + 1
    chosen = r.curves[r.selected_epoch - 1]
    assert r.mae == pytest.approx(chosen["test_mae"])


def test_prediction_modes():
    (exp,) = run_kfold(_config(eval={"predict": "exp"}))
    assert exp.predictions["y_pred"] == exp.predictions["y_exp"]
    (fused,) = run_kfold(_config(eval={"predict": "fused", "fused_weight": 0.25}))
    p = fused.predictions
    assert np.allclose(p["y_pred"], 0.25 * np.array(p["y_reg"]) + 0.75 * np.array(p["y_exp"]))


def test_non_finite_loss_names_the_epoch_and_term():
    with pytest.raises(TrainingError, match=r"fold 1, epoch 1: loss term '\w+' is not finite"):
        run_kfold(_config(train={"lr": 1e30, "epochs": 2}))


def test_a_holdout_that_holds_out_nothing_is_an_error_not_a_choice_on_the_test_fold():
    rows, classes = np.arange(10, 16), np.arange(6)  # six training faces, one per class: none to hold out
    for evaluation, key in (({"select": "inner_val"}, "eval.select: inner_val"), ({"holdout": True}, "eval.holdout: true")):
        with pytest.raises(InputError, match=f"{key}: fold 2's 6 training faces hold out none for validation"):
            validation_split(_config(eval=evaluation), rows, classes, np.random.default_rng(0), 2)
    train, val = validation_split(_config(eval={"holdout": True}), rows, np.array([0, 0, 1, 1, 2, 2]), np.random.default_rng(0), 2)
    assert len(val) == 3 and sorted([*train, *val]) == list(rows)
    assert validation_split(_config(), rows, classes, np.random.default_rng(0), 2)[1].size == 0  # no holdout asked


def test_stratified_holdout_takes_the_share_of_each_class():
    classes = np.array([0] * 10 + [1] * 40 + [2] * 1)
    held = stratified_holdout(classes, 0.2, np.random.default_rng(0))
    assert [int(held[classes == c].sum()) for c in (0, 1, 2)] == [2, 8, 0]


def test_batches_reshuffle_every_pass_and_drop_the_partial_batch_only_for_whole_batches():
    import torch

    rows = torch.arange(100, 110)
    plain = Batches(rows, 4, whole_only=False, generator=torch.Generator().manual_seed(0))
    first, second = list(plain), list(plain)
    assert len(plain) == 3 and plain.images == 10 and [len(b) for b in first] == [4, 4, 2]
    assert torch.cat(first).sort().values.tolist() == torch.cat(second).sort().values.tolist() == rows.tolist()
    assert not torch.equal(torch.cat(first), torch.cat(second))  # a new shuffle each pass
    again = Batches(rows, 4, whole_only=False, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(list(again)), torch.cat(first))  # the generator alone decides the order

    whole = Batches(rows, 4, whole_only=True, generator=torch.Generator().manual_seed(0))
    batches = list(whole)
    assert len(whole) == 2 and whole.images == 8 and [len(b) for b in batches] == [4, 4]
    assert torch.equal(torch.cat(batches), torch.cat(first)[:8])  # the same shuffle, cut to whole batches
    small = Batches(rows[:3], 4, whole_only=True, generator=torch.Generator().manual_seed(0))
    assert len(small) == 1 and [len(b) for b in small] == [3]  # no larger than one batch: kept


def test_select_has_a_rule_for_every_eval_select_and_nan_never_wins():
    from typing import get_args

    from fbp.config import EvalConfig

    assert set(SELECT) == set(get_args(EvalConfig.model_fields["select"].annotation))
    last, nan = SELECT["last"], float("nan")
    assert [last(epoch, 3, 0.9, 0.1) for epoch in (1, 2, 3)] == [False, False, True]
    for rule in (SELECT["inner_val"], SELECT["test_oracle"]):
        assert rule(1, 3, 0.5, nan) and rule(1, 3, 0.6, 0.5)
        assert not rule(1, 3, 0.5, 0.5) and not rule(1, 3, 0.4, 0.5) and not rule(1, 3, nan, nan) and not rule(1, 3, nan, 0.5)


def test_folds_subset_and_bad_fold():
    data = prepare(_config(data={"folds": [2, 4]}))
    assert [f.index for f in data.folds] == [1, 3]
    from fbp.errors import InputError

    with pytest.raises(InputError, match="data.folds: fold 6 does not exist; protocol '5fold' has folds 1..5"):
        prepare(_config(data={"folds": [6]}))


def test_out_of_memory_becomes_one_line_that_says_what_to_change(monkeypatch):
    # No GPU here to exhaust: a model whose forward raises the allocator's real exception type
    # stands in for a CUDA out-of-memory error. The rest of the fold runs for real.
    import torch

    import fbp.kfold

    class Exhausted(torch.nn.Module):
        mean = std = (0.5, 0.5, 0.5)  # what fbp.kfold normalizes the images with, as FBPNet has

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nSee documentation for Memory Management")

    monkeypatch.setattr(fbp.kfold, "build_model", lambda *args: Exhausted())
    with pytest.raises(TrainingError) as caught:
        run_kfold(_config())
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("fold 1: out of memory on ") and "train.batch_size 16, data.image_size 32" in message
    assert "Tried to allocate 2.00 GiB" in message and "resources.gpu" in message


def test_a_config_that_fails_only_at_run_time_raises_from_the_fold():
    # batch 1 reaches test_resnet's last 1x1 feature map: batch norm cannot train on one value
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        run_kfold(_config(train={"batch_size": 1}))


@pytest.mark.slow  # torch.compile on the CPU: about 30 s
def test_compiled_once_per_trial_and_each_fold_as_if_alone():
    # Every fold reuses the trial's compiled module with fresh weights copied in: a fold trained
    # after another gives what that fold gives compiled on its own.
    from torch._dynamo.utils import counters

    counters.clear()
    both = run_kfold(_config(data={"folds": [1, 2]}, train={"epochs": 2, "compile": "default", "device": "cpu"}))
    assert counters["stats"]["unique_graphs"] == 1  # one compilation for the two folds
    (alone,) = run_kfold(_config(data={"folds": [2]}, train={"epochs": 2, "compile": "default", "device": "cpu"}))
    assert both[1].predictions == alone.predictions
    assert (both[1].pc, both[1].mae) == (alone.pc, alone.mae)


def test_compile_true_means_default():
    assert _config(train={"compile": True}).train.compile == "default"
    assert _config(train={"compile": False}).train.compile == "off"


def _events(config, **kwargs):
    events = []
    results = run_kfold(config, on_progress=events.append, **kwargs)
    return events, results


def test_progress_events_arrive_in_order_with_the_fold_and_epoch_numbers():
    events, results = _events(_config(data={"folds": [1, 2]}, train={"epochs": 2}))
    kinds = [e.event for e in events]
    assert kinds[:2] == ["prepare", "ready"] and "prepare" not in kinds[2:] and "ready" not in kinds[2:]
    assert "60 synthetic images" in events[0].message and "60 images ready" in events[1].message
    assert all(e.folds_total == 2 and e.epochs == 2 for e in events)
    epochs = [e for e in events if e.event == "epoch"]
    assert [(e.fold, e.fold_position, e.epoch) for e in epochs] == [(1, 1, 1), (1, 1, 2), (2, 2, 1), (2, 2, 2)]
    curves = [row for r in results for row in r.curves]
    assert [e.loss for e in epochs] == [row["train_loss"] for row in curves] and all(math.isfinite(e.loss) for e in epochs)
    assert [e.test for e in epochs] == [{k: row[f"test_{k}"] for k in ("mae", "rmse", "pc")} for row in curves]
    assert all(e.step == e.steps == 3 and e.images_per_second > 0 for e in epochs)  # 48 training images, batch 16
    # each fold opens with step 0 of epoch 1, before any of its epochs ends
    starts = [i for i, e in enumerate(events) if e.event == "step" and e.step == 0]
    assert [events[i].fold for i in starts] == [1, 2] and starts[1] > kinds.index("epoch")
    # no time-left estimate until an epoch has ended; from then on every event has one, 0 at the end
    first = kinds.index("epoch")
    assert all(e.seconds_left is None for e in events[:first]) and all(e.seconds_left is not None for e in events[first:])
    assert epochs[-1].seconds_left == 0
    seconds = [e.seconds for e in events]
    assert seconds == sorted(seconds)


def test_progress_counts_only_the_folds_this_call_trains():
    events, _ = _events(_config(data={"folds": [1, 2]}, train={"epochs": 1}), skip={1})
    epochs = [e for e in events if e.event == "epoch"]
    assert [(e.fold, e.fold_position, e.folds_total) for e in epochs] == [(2, 1, 1)]


def test_step_events_carry_counts_only_and_are_throttled(monkeypatch):
    import fbp.kfold

    monkeypatch.setattr(fbp.kfold._Progress, "STEP_INTERVAL", 0.0)  # every step reported
    events, _ = _events(_config(train={"epochs": 2}))
    steps = [(e.epoch, e.step) for e in events if e.event == "step"]
    assert steps == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]
    assert all(e.loss is None and e.test is None for e in events if e.event == "step")
    assert all(e.images_per_second > 0 for e in events if e.event == "step" and e.step > 0)

    monkeypatch.setattr(fbp.kfold._Progress, "STEP_INTERVAL", 3600.0)  # none after a fold's first
    events, _ = _events(_config(train={"epochs": 2}))
    assert [(e.epoch, e.step) for e in events if e.event == "step"] == [(1, 0)]


def test_a_progress_hook_changes_no_number(monkeypatch):
    import fbp.kfold

    monkeypatch.setattr(fbp.kfold._Progress, "STEP_INTERVAL", 0.0)  # the hook called as often as it can be
    config = _config(data={"folds": [1, 2]}, train={"epochs": 2})
    plain = run_kfold(config)
    events, hooked = _events(config)
    assert len(events) > 10
    for a, b in zip(plain, hooked, strict=True):
        assert (a.mae, a.rmse, a.pc) == (b.mae, b.rmse, b.pc)
        assert a.predictions == b.predictions
        assert repr(a.curves) == repr(b.curves)  # every loss term and test metric, to the last bit (NaN too)


def test_fit_fold_alone_reports_itself_as_the_only_fold(monkeypatch):
    import fbp.kfold
    from fbp.kfold import fit_fold

    monkeypatch.setattr(fbp.kfold._Progress, "STEP_INTERVAL", 3600.0)  # only the fold's opening step event
    config = _config(data={"folds": [2]}, train={"epochs": 1})
    data = prepare(config)
    events = []
    result = fit_fold(config, data.folds[0], data, on_progress=events.append)
    assert [e.event for e in events] == ["step", "epoch"]  # the images were given: no prepare, no ready
    assert [(e.fold, e.fold_position, e.folds_total) for e in events] == [(2, 1, 1)] * 2
    assert events[-1].loss == result.curves[0]["train_loss"]


def _same_run(a, b) -> bool:
    return (a.fold, a.seed, a.mae, a.rmse, a.pc, a.predictions["y_pred"]) == (b.fold, b.seed, b.mae, b.rmse, b.pc, b.predictions["y_pred"])


def test_repeats_train_every_fold_once_per_seed_each_as_if_run_alone():
    runs = run_kfold(_config(data={"folds": [1, 2]}, train={"repeats": 2, "seed": 5}))
    assert [(r.fold, r.seed) for r in runs] == [(1, 5), (1, 6), (2, 5), (2, 6)]
    alone = {seed: run_kfold(_config(data={"folds": [1, 2]}, train={"seed": seed})) for seed in (5, 6)}
    for r in runs:
        assert _same_run(r, alone[r.seed][r.fold - 1])
    assert runs[0].pc != runs[1].pc  # two seeds, two trainings


def test_holdout_reports_the_validation_part_at_the_selected_epoch():
    plain = run_kfold(_config())[0]
    assert math.isnan(plain.val_pc) and math.isnan(plain.val_mae)
    held = run_kfold(_config(eval={"holdout": True}))[0]
    assert held.n_train < plain.n_train and held.n_test == plain.n_test  # the part comes out of the training split
    last = held.curves[-1]  # eval.select last: the last epoch's validation metrics
    assert (held.val_mae, held.val_rmse, held.val_pc) == (last["val_mae"], last["val_rmse"], last["val_pc"])
    # inner_val chooses the epoch of the best validation PC and reports that epoch's figures
    chosen = run_kfold(_config(eval={"select": "inner_val"}, train={"epochs": 4}))[0]
    by_val = max(chosen.curves, key=lambda row: row["val_pc"])
    assert chosen.selected_epoch == by_val["epoch"] and chosen.val_pc == by_val["val_pc"]
    assert chosen.pc == chosen.curves[chosen.selected_epoch - 1]["test_pc"]


# --- what the network sees: the backbone's normalization, eval.view ----------------------------


def _seen(monkeypatch, config):
    """(view, mean, std) of every eval_view call and (mean, std) of every train_view call."""
    import fbp.kfold

    seen = {"eval": set(), "train": set()}
    real_eval, real_train = fbp.kfold.eval_view, fbp.kfold.train_view

    def eval_view(images, size, view, mean, std):
        seen["eval"].add((view, tuple(mean), tuple(std)))
        return real_eval(images, size, view, mean, std)

    def train_view(images, size, augment, generator, mean, std):
        seen["train"].add((tuple(mean), tuple(std)))
        return real_train(images, size, augment, generator, mean, std)

    monkeypatch.setattr(fbp.kfold, "eval_view", eval_view)
    monkeypatch.setattr(fbp.kfold, "train_view", train_view)
    run_kfold(config)
    return seen


def test_training_and_evaluation_normalize_as_the_backbone_says_and_evaluate_the_whole_face(monkeypatch):
    # test_resnet's pretrained config in timm: mean = std = 0.5 (ImageNet's would be 0.485, ...)
    half = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    seen = _seen(monkeypatch, _config(train={"epochs": 1}))
    assert seen == {"eval": {("resize", *half)}, "train": {half}}
    seen = _seen(monkeypatch, _config(train={"epochs": 1}, eval={"view": "center_crop"}))
    assert seen["eval"] == {("center_crop", *half)}


def test_evaluation_prepares_each_view_once_per_fold_and_gives_the_numbers_of_a_fresh_view(monkeypatch):
    """The test fold's views are cut and normalized on the first evaluation and reused every
    epoch after (issue 22: preparing them cost more than the forward on a GPU); beyond the memory
    budget they are prepared every epoch. Either way the predictions are those of the views
    computed afresh, through the heads directly."""
    import torch

    import fbp.kfold
    from fbp.augment import eval_view as real_eval
    from fbp.models import build_model

    config = _config(eval={"batch_size": 8})
    data = prepare(config)
    rows = np.array([data.index[i] for i in data.folds[0].test])
    values = torch.arange(1, 6, dtype=torch.float32)
    model = build_model(config.model, 5, config.data.image_size)
    calls = []
    monkeypatch.setattr(fbp.kfold, "eval_view", lambda *a: calls.append(1) or real_eval(*a))
    batches = math.ceil(len(rows) / 8)
    evaluate = fbp.kfold._Evaluator(data, rows, config, values, fbp.kfold.nullcontext())
    first, second = evaluate(model), evaluate(model)
    assert len(calls) == batches and model.training  # prepared once; the model back in training mode
    model.eval()
    with torch.no_grad():
        x = real_eval(data.images[torch.as_tensor(rows)], config.data.image_size, "resize", model.mean, model.std)
        reg, exp = fbp.kfold.head_outputs(model, x, values, fbp.kfold.nullcontext())
    for got in (first, second):
        assert np.allclose(got[0], reg.numpy(), atol=1e-5) and np.allclose(got[1], exp.numpy(), atol=1e-5)
    monkeypatch.setattr(fbp.kfold, "VIEW_BUDGET_BYTES", 0)
    calls.clear()
    tight = fbp.kfold._Evaluator(data, rows, config, values, fbp.kfold.nullcontext())
    again = [tight(model), tight(model)]
    assert len(calls) == 2 * batches and all(np.array_equal(a[0], first[0]) for a in again)


# --- a discretization that does not fit the scores is refused before training ------------------


def _dataset(name, scores, score_range=None):
    """A Dataset of these scores, one fold: all train, nothing to test (no images read)."""
    records = {f"i{i}.jpg": Record(f"i{i}.jpg", float(s), "all") for i, s in enumerate(scores)}
    fold = Fold(0, tuple(records), ())
    return Dataset(name, Path("."), Path("."), records, {"5fold": lambda: [fold]}, score_range=score_range), fold


def test_the_reviews_z_scores_under_the_paper_rule_are_refused_naming_rule_dataset_fold_and_counts(tmp_path):
    write_hotornot(tmp_path, review_scores())  # 20 images; each training split holds 16, 3 or 4 of each score
    dataset = load_dataset("hotornot", tmp_path)
    folds = dataset.folds("5split")
    paper = validate_config({"data": {"dataset": "hotornot", "root": str(tmp_path)}, "loss": {"discretization": {"rule": "paper"}}})
    with pytest.raises(InputError) as caught:
        fold_discretization(paper, dataset, folds[0])
    message = str(caught.value)
    assert message.startswith("loss.discretization: rule 'paper' (edges [1.5, 2.5, 3.5, 4.5]) on dataset hotornot, fold 1: ")
    # every score is below 1.5: all 16 in class 0
    assert "it leaves classes 1, 2, 3, 4 empty and puts 100% in class 0" in message and "counts per class [16, 0, 0, 0, 0]" in message
    assert "hotornot's own rule (loss.discretization.rule: auto) is intervals with edges [-1.0, 1.0]" in message

    # the default (auto) is HotOrNot's three intervals: -2 -> 0; -0.5, 0, 0.7 -> 1; 1.2 -> 2
    default = validate_config({"data": {"dataset": "hotornot", "root": str(tmp_path)}})
    for fold in folds:
        disc = fold_discretization(default, dataset, fold)
        assert disc.rule == "intervals" and disc.edges == (-1.0, 1.0)
        assert disc.classes(REVIEW_Z).tolist() == [0, 1, 1, 1, 2]


def test_more_than_95_percent_in_one_class_is_refused_even_with_no_class_empty():
    config = validate_config({"data": {"dataset": "hotornot"}})  # intervals, edges [-1, 1]
    assert MAX_CLASS_SHARE == 0.95
    dataset, fold = _dataset("hotornot", [-2.0] + [0.0] * 97 + [2.0, 2.0])  # counts [1, 97, 2]: 97%
    with pytest.raises(InputError, match=r"fold 1: of the 100 training scores \(-2\.\.2\) it puts 97% in class 1 \(at most 95% may share one\); counts per class \[1, 97, 2\]"):
        fold_discretization(config, dataset, fold)
    dataset, fold = _dataset("hotornot", [-2.0] * 3 + [0.0] * 95 + [2.0, 2.0])  # 95%: allowed
    assert fold_discretization(config, dataset, fold).num_classes == 3


def test_the_small_synthetic_set_fills_the_papers_five_classes_in_folds_1_to_4():
    from fbp.data.synthetic import SMALL

    config = _config()
    dataset = load_dataset("synthetic", **SMALL)
    folds = dataset.folds("5fold")
    for fold in folds[:4]:
        assert fold_discretization(config, dataset, fold).rule == "paper"
    with pytest.raises(InputError, match=r"fold 5: .* it leaves class 4 empty"):  # why the tests use folds 1-4
        fold_discretization(config, dataset, folds[4])
    seed0 = load_dataset("synthetic", **{**SMALL, "seed": 0})  # why seed 36: seed 0's faces never reach 4.5
    with pytest.raises(InputError, match=r"rule 'paper' .* on dataset synthetic, fold 1: .* leaves class 4 empty"):
        fold_discretization(config, seed0, seed0.folds("5fold")[0])


def test_run_kfold_refuses_a_degenerate_discretization_before_any_training(tmp_path):
    write_hotornot(tmp_path, review_scores())
    raw = {**TINY, "data": {"dataset": "hotornot", "root": str(tmp_path), "protocol": "5split", "image_size": 32, "folds": [2]}}
    events = []
    with pytest.raises(InputError, match=r"^loss.discretization: rule 'paper' .* on dataset hotornot, fold 2: "):
        run_kfold(validate_config({**raw, "loss": {"discretization": {"rule": "paper"}}}), on_progress=events.append)
    assert events == []  # refused before the images were decoded
    (result,) = run_kfold(validate_config({**raw, "train": {**TINY["train"], "epochs": 1}}))  # the default trains
    assert result.fold == 2 and result.n_train == 16


def test_deterministic_training_holds_torch_to_deterministic_algorithms_for_the_fold_only():
    import torch

    seen = set()

    def training(p):  # while a fold trains (steps, epochs), not while the images load
        if p.event in ("step", "epoch"):
            seen.add(torch.are_deterministic_algorithms_enabled())

    config = _config(train={"epochs": 1, "deterministic": True})
    first = run_kfold(config, on_progress=training)
    assert seen == {True} and not torch.are_deterministic_algorithms_enabled()
    assert run_kfold(config)[0].predictions == first[0].predictions
    seen.clear()
    run_kfold(_config(train={"epochs": 1}), on_progress=training)
    assert seen == {False}
