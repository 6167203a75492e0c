import math

import pytest
import torch

from fbp.config import LossConfig, TrialConfig
from fbp.discretize import fit_discretization
from fbp.errors import InputError
from fbp.loss_names import COMBO_TERMS, LOSS_NAMES
from fbp.losses import LOSSES, build_loss

VALUES = [1.0, 2.0, 3.0]
WEIGHTS = [1.0, 2.0, 4.0]
# Two samples: uniform logits (p = 1/3 each, E = 2) and logits [0, 0, ln 2] (p = 1/4, 1/4, 1/2,
# E = 0.25 + 0.5 + 1.5 = 2.25).
REG = torch.tensor([2.5, 1.0])
LOGITS = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, math.log(2)]])
SCORE = torch.tensor([3.0, 2.0])
CLS = torch.tensor([2, 1])


def _combo(**kw):
    return build_loss(LossConfig(name="combo", **kw), VALUES, WEIGHTS)


def test_combo_by_hand():
    total, terms = _combo()(REG, LOGITS, SCORE, CLS)
    l1_reg = (0.5 + 1.0) / 2
    l1_exp = (abs(2 - 3) + abs(2.25 - 2)) / 2
    # eq. 3: the weighted CE summed over the batch, divided by N = 2; w = 4 (class 2), 2 (class 1)
    ce = (4 * math.log(3) + 2 * math.log(4)) / 2
    assert terms["l1_reg"].item() == pytest.approx(l1_reg)
    assert terms["l1_exp"].item() == pytest.approx(l1_exp)
    assert terms["ce"].item() == pytest.approx(ce)
    assert total.item() == pytest.approx(2 * l1_reg + 1 * l1_exp + 1 * ce)
    assert total.item() == pytest.approx(5.708519, abs=1e-6)


def test_weighted_mean_divides_by_the_summed_weights_of_the_batch():
    _, terms = _combo(ce_reduction="weighted_mean")(REG, LOGITS, SCORE, CLS)
    # torch's cross_entropy(weight=...): divided by 4 + 2, not by N = 2: 3x smaller here
    assert terms["ce"].item() == pytest.approx((4 * math.log(3) + 2 * math.log(4)) / (4 + 2))
    _, mean = _combo(ce_reduction="mean")(REG, LOGITS, SCORE, CLS)
    assert mean["ce"].item() == pytest.approx(3 * terms["ce"].item())


def test_combo_probs_variant_is_cross_entropy_on_softmax_outputs():
    _, terms = _combo(ce_input="probs", ce_reduction="weighted_mean")(REG, LOGITS, SCORE, CLS)
    # sample 1: softmax of (1/3, 1/3, 1/3) is uniform again -> ln 3
    # sample 2: p = (1/4, 1/4, 1/2), target 1 -> log(2 e^0.25 + e^0.5) - 0.25
    second = math.log(2 * math.exp(0.25) + math.exp(0.5)) - 0.25
    assert terms["ce"].item() == pytest.approx((4 * math.log(3) + 2 * second) / 6)
    assert terms["ce"].item() == pytest.approx(1.128765, abs=1e-6)


THREE = {"rule": "uniform", "num_classes": 3}  # a discretization of 3 classes, as VALUES has


@pytest.mark.parametrize("reduction, divisor", [("mean", 2), ("weighted_mean", 1.0 + 3.0)])
def test_explicit_class_weights_are_used_as_given(reduction, divisor):
    loss = build_loss(LossConfig(class_weights=[0.5, 3.0, 1.0], ce_reduction=reduction, discretization=THREE), VALUES, WEIGHTS)
    _, terms = loss(REG, LOGITS, SCORE, CLS)
    # targets: class 2 (w = 1.0, CE ln 3), class 1 (w = 3.0, CE ln 4); the eq. 6 WEIGHTS unused
    assert terms["ce"].item() == pytest.approx((1.0 * math.log(3) + 3.0 * math.log(4)) / divisor)


@pytest.mark.parametrize("reduction", ["mean", "weighted_mean"])
def test_unweighted_is_plain_cross_entropy(reduction):
    loss = build_loss(LossConfig(ce_weighted=False, ce_reduction=reduction), VALUES, WEIGHTS)
    _, terms = loss(REG, LOGITS, SCORE, CLS)
    assert terms["ce"].item() == pytest.approx((math.log(3) + math.log(4)) / 2)  # every w_c = 1
    assert "class_weights=none" in repr(loss) and f"ce_reduction={reduction}" in repr(loss)


def test_explicit_class_values_are_the_expectation_weights():
    """HotOrNot as published: three z-score intervals valued 1, 2, 3 (not their mean scores)."""
    config = LossConfig(discretization={"rule": "intervals", "edges": [-1, 1], "values": [1, 2, 3]})
    d = config.discretization
    disc = fit_discretization(d.rule, [-2.0, -0.5, 0.5, 2.0], edges=d.edges, values=d.values)
    assert disc.values == (1.0, 2.0, 3.0)
    score = torch.tensor([-1.5, 0.2])
    _, terms = build_loss(config, disc.values, WEIGHTS)(REG, LOGITS, score, torch.tensor([0, 1]))
    # E = 2 (uniform) and 2.25 (p = 1/4, 1/4, 1/2 over 1, 2, 3)
    assert terms["l1_exp"].item() == pytest.approx((abs(2 - -1.5) + abs(2.25 - 0.2)) / 2)


def test_a_class_weight_list_of_the_wrong_length_is_refused_when_the_loss_is_built():
    config = LossConfig(class_weights=[1.0, 1.0, 1.0, 1.0, 1.0])  # paper: 5 classes
    with pytest.raises(InputError, match=r"^loss.class_weights: 5 weights for the 3 classes of the discretization$"):
        build_loss(config, VALUES, WEIGHTS)


def test_weights_of_zero_switch_terms_off():
    total, terms = _combo(alpha=0.0, beta=1.0, gamma=0.0)(REG, LOGITS, SCORE, CLS)
    assert set(terms) == {"l1_exp"} and total.item() == pytest.approx(0.625)
    total, terms = _combo(alpha=1.0, beta=0.0, gamma=0.0)(REG, LOGITS, SCORE, CLS)
    assert set(terms) == {"l1_reg"} and total.item() == pytest.approx(0.75)
    total, terms = _combo(alpha=0.0, beta=0.0, gamma=2.0)(REG, LOGITS, SCORE, CLS)
    assert set(terms) == {"ce"}


def test_combo_gradient_reaches_both_heads():
    reg, logits = REG.clone().requires_grad_(), LOGITS.clone().requires_grad_()
    total, _ = _combo()(reg, logits, SCORE, CLS)
    total.backward()
    # d(2 * mean|r - s|)/dr = 2 * sign(r - s) / B = -1 for both samples
    assert reg.grad.tolist() == [-1.0, -1.0]
    assert logits.grad.abs().sum() > 0


E = torch.tensor([0.5, -2.0])


@pytest.mark.parametrize(
    "name, extra, expected",
    [
        ("l1", {}, (0.5 + 2.0) / 2),
        ("mse", {}, (0.25 + 4.0) / 2),
        # beta = 1: 0.5 * 0.5^2 / 1 = 0.125; |-2| - 0.5 = 1.5
        ("smooth_l1", {"smooth_l1_beta": 1.0}, (0.125 + 1.5) / 2),
        # beta = 4: both quadratic, e^2 / 8
        ("smooth_l1", {"smooth_l1_beta": 4.0}, (0.25 / 8 + 4.0 / 8) / 2),
        # delta = 0.8: log cosh(0.5) below, |-2| above
        ("smooth_huber", {}, (math.log(math.cosh(0.5)) + 2.0) / 2),
        # delta = 3: both log cosh
        ("smooth_huber", {"huber_delta": 3.0}, (math.log(math.cosh(0.5)) + math.log(math.cosh(2.0))) / 2),
    ],
)
def test_regression_baselines_by_hand(name, extra, expected):
    loss = build_loss(LossConfig(name=name, **extra), VALUES, WEIGHTS)
    score = torch.tensor([1.0, 3.0])
    total, terms = loss(score + E, LOGITS, score, CLS)
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert list(terms) == [name]


def published_smooth_huber(pred: list[float], target: list[float], delta: float = 0.8) -> float:
    """lucasxlu/ComboLoss models/losses.py:79-101, SmoothHuberLoss.forward, as arithmetic: below
    delta log(cosh(target - input)); above it F.l1_loss(input, target), the batch's mean |e|."""
    t = [abs(p - s) for p, s in zip(pred, target)]
    batch_l1 = sum(t) / len(t)
    return sum(math.log(math.cosh(s - p)) if ti < delta else batch_l1 for p, s, ti in zip(pred, target, t)) / len(t)


def test_smooth_huber_upstream_takes_the_batch_l1_above_delta():
    score = [1.0, 3.0, 2.0, 4.0]
    pred = [1.5, 1.0, 3.0, 4.1]  # e = 0.5, -2, 1, 0.1: two above delta = 0.8
    r, s = torch.tensor(pred), torch.tensor(score)
    paper, _ = build_loss(LossConfig(name="smooth_huber"), VALUES, WEIGHTS)(r, LOGITS, s, CLS)
    upstream, _ = build_loss(LossConfig(name="smooth_huber", huber_variant="upstream"), VALUES, WEIGHTS)(r, LOGITS, s, CLS)
    lc = math.log(math.cosh(0.5)) + math.log(math.cosh(0.1))
    assert paper.item() == pytest.approx((lc + 2.0 + 1.0) / 4, rel=1e-6)
    # mean |e| = (0.5 + 2 + 1 + 0.1) / 4 = 0.9 stands for both samples above delta
    assert upstream.item() == pytest.approx((lc + 0.9 + 0.9) / 4, rel=1e-6)
    assert upstream.item() == pytest.approx(published_smooth_huber(pred, score), rel=1e-6)


def published_combo(reg, logits, score, gt_cls, xent_weight, alpha=2.0, beta=1.0, gamma=1.0) -> float:
    """lucasxlu/ComboLoss CombinedLoss (models/losses.py:56-76) as called by train_combinator
    (main/run_fbp.py:416), as arithmetic on lists: the head's softmax p goes in as `pred_probs`;
    nn.L1Loss on the scores; the expectation against the class numbers 1..K (lines 51-53);
    nn.CrossEntropyLoss(weight) on p, i.e. a second softmax, divided by the summed weights."""
    n = len(score)
    p = [[math.exp(z) / sum(math.exp(y) for y in row) for z in row] for row in logits]
    mae = sum(abs(r - s) for r, s in zip(reg, score)) / n
    expectation = sum(abs(sum(pk * (k + 1) for k, pk in enumerate(pi)) - s) for pi, s in zip(p, score)) / n
    nll = [-(pi[c] - math.log(sum(math.exp(q) for q in pi))) for pi, c in zip(p, gt_cls)]
    xent = sum(xent_weight[c] * loss for c, loss in zip(gt_cls, nll)) / sum(xent_weight[c] for c in gt_cls)
    return alpha * mae + beta * expectation + gamma * xent


# A batch of 8 on the 1..5 scale with ties at half points (2.5 and 3.5 round to even)
Q_SCORE = [2.5, 3.5, 1.2, 4.6, 3.0, 2.4, 4.5, 1.5]
Q_REG = [2.9, 3.1, 1.0, 4.0, 3.3, 2.0, 4.4, 2.2]
Q_LOGITS = [
    [0.3, -1.0, 2.0, 0.5, -0.2],
    [1.5, 0.1, -0.7, 0.9, 0.0],
    [2.0, 1.0, 0.0, -1.0, -2.0],
    [-0.5, 0.2, 0.4, 1.1, 2.3],
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [-1.2, 2.2, 0.3, 0.3, -0.4],
    [0.8, -0.3, 1.7, -2.0, 0.6],
    [1.1, 0.9, -0.1, 0.2, -1.5],
]


def test_published_code_switch_gives_the_published_formulas_total():
    """scut-fbp5500 60-40 with `published_code: true`: classes by Python's round, class numbers
    as values, the published (permuted) weights, softmax fed to a torch-weighted-mean CE."""
    config = TrialConfig.model_validate({"published_code": True, "data": {"dataset": "scut-fbp5500", "protocol": "60-40"}})
    d = config.loss.discretization
    disc = fit_discretization(d.rule, Q_SCORE, d.num_classes, d.edges, d.values)
    cls = disc.classes(Q_SCORE)
    gt_cls = [round(s) - 1 for s in Q_SCORE]  # data/datasets.py:121
    assert cls.tolist() == gt_cls == [1, 3, 0, 4, 2, 1, 3, 1]
    eq6 = [1.0] * 5  # what the fold would pass; the published list replaces it
    loss = build_loss(config.loss, disc.values, eq6)
    total, _ = loss(torch.tensor(Q_REG), torch.tensor(Q_LOGITS), torch.tensor(Q_SCORE), torch.as_tensor(cls))
    expected = published_combo(Q_REG, Q_LOGITS, Q_SCORE, gt_cls, [1.88, 1, 1.91, 99.38, 99.38])
    assert total.item() == pytest.approx(expected, rel=1e-5)
    # and it is not the paper's loss on the same batch
    paper = TrialConfig.model_validate({"data": {"dataset": "scut-fbp5500", "protocol": "60-40"}})
    ours, _ = build_loss(paper.loss, disc.values, eq6)(torch.tensor(Q_REG), torch.tensor(Q_LOGITS), torch.tensor(Q_SCORE), torch.as_tensor(cls))
    assert abs(ours.item() - expected) > 0.1


def test_published_code_switch_gives_the_published_smooth_huber():
    config = TrialConfig.model_validate({"published_code": True, "loss": {"name": "smooth_huber"}})
    total, _ = build_loss(config.loss, list(range(1, 6)), [1.0] * 5)(torch.tensor(Q_REG), torch.tensor(Q_LOGITS), torch.tensor(Q_SCORE), torch.zeros(8, dtype=torch.long))
    assert total.item() == pytest.approx(published_smooth_huber(Q_REG, Q_SCORE), rel=1e-6)


def test_smooth_huber_does_not_overflow_on_large_errors():
    loss = build_loss(LossConfig(name="smooth_huber", huber_delta=1000.0), VALUES, WEIGHTS)
    total, _ = loss(torch.tensor([400.0]), LOGITS[:1], torch.tensor([0.0]), CLS[:1])
    assert total.item() == pytest.approx(400 - math.log(2), rel=1e-6)  # log cosh(x) ~ |x| - ln 2


def test_registry_lists_the_papers_losses():
    assert set(LOSSES) == {"combo", "l1", "mse", "smooth_l1", "smooth_huber"}
    assert tuple(LOSSES) == LOSS_NAMES  # what fbp.config validates loss.name against, without torch
    assert tuple(_combo()(REG, LOGITS, SCORE, CLS)[1]) == COMBO_TERMS  # the train_<term> columns the driver and bench name


def test_the_config_reads_the_loss_names_without_importing_the_losses():
    import subprocess
    import sys

    code = "import sys, fbp.config; fbp.config.LossConfig(name='mse'); print(sorted({'torch', 'fbp.losses'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
