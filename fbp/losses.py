"""Losses, a registry by name. Each takes the two heads and the targets and returns the total
and its named terms (so the trainer can log every term without a host sync per step).

Shapes: reg (B,) regression output; logits (B, K) class scores; score (B,) true score;
cls (B,) true class index (long).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fbp.config import LossConfig
from fbp.errors import InputError
from fbp.loss_names import CE, EXP, REG

Terms = dict[str, Tensor]


class ComboLoss(nn.Module):
    """ComboLoss (Xu & Xiang), section 2.1 of the paper, L = alpha L_reg + beta L_exp + gamma L_cls:

        L_reg = (1/N) sum_i |r_i - s_i|                              eq. 2
        L_exp = (1/N) sum_i |E_i - s_i|,  E_i = sum_k p_ik v_k        eqs. 4, 5
        L_cls = (1/N) sum_i w_{c_i} CE_i                             eq. 3      ce_reduction: mean
              = sum_i w_{c_i} CE_i / sum_i w_{c_i}                              ce_reduction: weighted_mean
        CE_i  = -log softmax(z_i)_{c_i}                                         ce_input: logits
              = -log softmax(p_i)_{c_i}                                         ce_input: probs

    with z_i the K class logits, p_i = softmax(z_i), s_i the true score, c_i its class, v_k the
    class values of the discretization and w_c the class weights: the paper's eq. 6,
    w_c = max_m |m| / |c| counted on the training split, or an explicit list (`class_weights`),
    or, with `class_weights=None` (`loss.ce_weighted: false`), w_c = 1: plain cross-entropy,
    where the two reductions agree.

    `weighted_mean` is torch's `cross_entropy(weight=...)`, which the published code uses: it
    divides by the batch's summed weights, not by N as eq. 3 writes. With eq. 6 weights a whole
    training split sums to K max|c|, so the two differ by about K max|c| / N (2.44 on
    SCUT-FBP5500 fold 1: 5 * 2146 / 4400), more on a batch that holds a rare class.

    `ce_input="probs"` reproduces the published code, which feeds softmax outputs to the
    cross-entropy. Since p lies in [0, 1], that loss is bounded between log(K - 1 + e) - 1 and
    log(K - 1 + e) and its gradient is small: a measurable flaw.

    Eq. 5 writes the regression output where the true score stands; its sentence ("the gap
    between groundtruth beauty score and the expectation score") and the published code use the
    true score, as here. Eq. 4 weights class k by its number (v_k = k), as the published code
    does; the discretization's values give v. A term whose weight is 0 is not computed.
    """

    def __init__(
        self,
        alpha: float,
        beta: float,
        gamma: float,
        class_values: Tensor,
        class_weights: Tensor | None,
        ce_input: str = "logits",
        ce_reduction: str = "mean",
    ):
        super().__init__()
        self.alpha, self.beta, self.gamma, self.ce_input, self.ce_reduction = alpha, beta, gamma, ce_input, ce_reduction
        self.register_buffer("class_values", torch.as_tensor(class_values, dtype=torch.float32))
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights)  # None: plain cross-entropy

    def extra_repr(self) -> str:
        weights = "none" if self.class_weights is None else [round(w, 4) for w in self.class_weights.tolist()]
        return f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, ce_input={self.ce_input}, ce_reduction={self.ce_reduction}, class_weights={weights}"

    def forward(self, reg: Tensor, logits: Tensor, score: Tensor, cls: Tensor) -> tuple[Tensor, Terms]:
        terms: Terms = {}
        total = reg.new_zeros(())
        if self.alpha:
            terms[REG] = F.l1_loss(reg.float(), score)
            total = total + self.alpha * terms[REG]
        if self.beta or self.gamma:
            probs = logits.float().softmax(dim=1)  # (B, K)
        if self.beta:
            expectation = probs @ self.class_values  # (B,)
            terms[EXP] = F.l1_loss(expectation, score)
            total = total + self.beta * terms[EXP]
        if self.gamma:
            ce_in = logits.float() if self.ce_input == "logits" else probs
            if self.ce_reduction == "weighted_mean":
                terms[CE] = F.cross_entropy(ce_in, cls, weight=self.class_weights)
            else:  # eq. 3: w_{c_i} CE_i per sample (reduction none applies the weight), over N
                terms[CE] = F.cross_entropy(ce_in, cls, weight=self.class_weights, reduction="none").mean()
            total = total + self.gamma * terms[CE]
        return total, terms


class RegressionLoss(nn.Module):
    """A baseline on the regression head only, mean over the batch of rho(r_i - s_i)."""

    def __init__(self, name: str, rho: Callable[[Tensor], Tensor]):
        super().__init__()
        self.name, self.rho = name, rho

    def forward(self, reg: Tensor, logits: Tensor, score: Tensor, cls: Tensor) -> tuple[Tensor, Terms]:
        loss = self.rho(reg.float() - score).mean()
        return loss, {self.name: loss}


def l1(e: Tensor) -> Tensor:
    """rho(e) = |e|"""
    return e.abs()


def mse(e: Tensor) -> Tensor:
    """rho(e) = e^2"""
    return e * e


def smooth_l1(beta: float) -> Callable[[Tensor], Tensor]:
    """rho(e) = e^2 / (2 beta) if |e| < beta, else |e| - beta / 2 (torch's SmoothL1)."""
    return lambda e: torch.where(e.abs() < beta, 0.5 * e * e / beta, e.abs() - 0.5 * beta)


def smooth_huber(delta: float, variant: str = "paper") -> Callable[[Tensor], Tensor]:
    """The paper's Table 4 'SmoothHuber', per sample of a batch e = r - s:

        paper:    rho(e_i) = log cosh(e_i) if |e_i| < delta, else |e_i|
        upstream: rho(e_i) = log cosh(e_i) if |e_i| < delta, else (1/B) sum_j |e_j|

    `paper` is the rule the published SmoothHuberLoss states in its docstring. `upstream` is
    what that code computes: above delta it takes `F.l1_loss(input, target)`, the batch's mean
    |e| (a scalar that torch.where broadcasts), so every sample above delta counts the same.

    log cosh(e) is computed as |e| + log1p(exp(-2|e|)) - log 2, which never overflows.
    Note the step at |e| = delta: delta - log cosh(delta) = 0.509 at delta = 0.8.
    """

    def rho(e: Tensor) -> Tensor:  # e: (B,)
        a = e.abs()
        log_cosh = a + torch.log1p(torch.exp(-2 * a)) - torch.log(torch.tensor(2.0, device=e.device))
        above = a if variant == "paper" else a.mean().expand_as(a)
        return torch.where(a < delta, log_cosh, above)

    return rho


LossFactory = Callable[[LossConfig, Tensor, "Tensor | None"], nn.Module]
LOSSES: dict[str, LossFactory] = {  # keyed by fbp.loss_names.LOSS_NAMES, in its order (tests/fbp/test_losses.py)
    "combo": lambda c, values, weights: ComboLoss(c.alpha, c.beta, c.gamma, values, weights, c.ce_input, c.ce_reduction),
    "l1": lambda c, values, weights: RegressionLoss("l1", l1),
    "mse": lambda c, values, weights: RegressionLoss("mse", mse),
    "smooth_l1": lambda c, values, weights: RegressionLoss("smooth_l1", smooth_l1(c.smooth_l1_beta)),
    "smooth_huber": lambda c, values, weights: RegressionLoss("smooth_huber", smooth_huber(c.huber_delta, c.huber_variant)),
}


def build_loss(config: LossConfig, class_values, class_weights) -> nn.Module:
    """The loss `config` names. `class_values` are the discretization's; `class_weights` the
    eq. 6 weights of the training split, which `config.class_weights` replaces when it is a
    list, and which `config.ce_weighted: false` drops (plain cross-entropy)."""
    values = torch.as_tensor(class_values)
    weights = None
    if config.ce_weighted:
        weights = torch.as_tensor(config.class_weights if config.class_weights is not None else class_weights)
        if len(weights) != len(values):
            raise InputError(f"loss.class_weights: {len(weights)} weights for the {len(values)} classes of the discretization")
    return LOSSES[config.name](config, values, weights)
