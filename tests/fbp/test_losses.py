import math

import pytest
import torch

from fbp.config import LossConfig
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
    # weighted CE divides by the summed weights of the targets: w = 4 (class 2) and 2 (class 1)
    ce = (4 * math.log(3) + 2 * math.log(4)) / (4 + 2)
    assert terms["l1_reg"].item() == pytest.approx(l1_reg)
    assert terms["l1_exp"].item() == pytest.approx(l1_exp)
    assert terms["ce"].item() == pytest.approx(ce)
    assert total.item() == pytest.approx(2 * l1_reg + 1 * l1_exp + 1 * ce)
    assert total.item() == pytest.approx(3.319506, abs=1e-6)


def test_combo_probs_variant_is_cross_entropy_on_softmax_outputs():
    _, terms = _combo(ce_input="probs")(REG, LOGITS, SCORE, CLS)
    # sample 1: softmax of (1/3, 1/3, 1/3) is uniform again -> ln 3
    # sample 2: p = (1/4, 1/4, 1/2), target 1 -> log(2 e^0.25 + e^0.5) - 0.25
    second = math.log(2 * math.exp(0.25) + math.exp(0.5)) - 0.25
    assert terms["ce"].item() == pytest.approx((4 * math.log(3) + 2 * second) / 6)
    assert terms["ce"].item() == pytest.approx(1.128765, abs=1e-6)


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


def test_smooth_huber_does_not_overflow_on_large_errors():
    loss = build_loss(LossConfig(name="smooth_huber", huber_delta=1000.0), VALUES, WEIGHTS)
    total, _ = loss(torch.tensor([400.0]), LOGITS[:1], torch.tensor([0.0]), CLS[:1])
    assert total.item() == pytest.approx(400 - math.log(2), rel=1e-6)  # log cosh(x) ~ |x| - ln 2


def test_registry_lists_the_papers_losses():
    assert set(LOSSES) == {"combo", "l1", "mse", "smooth_l1", "smooth_huber"}
