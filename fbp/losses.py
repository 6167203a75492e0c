"""Losses, a registry by name. Each takes the two heads and the targets and returns the total
and its named terms (so the trainer can log every term without a host sync per step).

Shapes: reg (B,) regression output; logits (B, K) class scores; score (B,) true score;
cls (B,) true class index (long).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:  # fbp.config checks loss names against LOSSES: no import back at run time
    from fbp.config import LossConfig

Terms = dict[str, Tensor]


class ComboLoss(nn.Module):
    """ComboLoss (Xu & Xiang), eq. 7 of the paper:

        L = alpha * mean_i |r_i - s_i|                         regression L1
          + beta  * mean_i |E_i - s_i|,  E_i = sum_k p_ik v_k   expectation L1
          + gamma * sum_i w_{c_i} CE_i / sum_i w_{c_i}          class-weighted cross-entropy

    with p_i = softmax(z_i) over the K class logits, v_k the class values of the discretization,
    w_c = max_m |m| / |c| the class weights counted on the training split (paper eq. 6), and
    CE_i = -log softmax(z_i)_{c_i}. The weighted mean over the batch divides by the summed
    weights of the batch's targets, as torch's `cross_entropy(weight=...)` does.

    `ce_input="probs"` reproduces the published code, which feeds softmax outputs to the
    cross-entropy: CE_i = -log softmax(p_i)_{c_i}. Since p lies in [0, 1], that loss is bounded
    between log(K - 1 + e) - 1 and log(K - 1 + e) and its gradient is small: a measurable flaw.
    A term whose weight is 0 is not computed.
    """

    def __init__(self, alpha: float, beta: float, gamma: float, class_values: Tensor, class_weights: Tensor, ce_input: str = "logits"):
        super().__init__()
        self.alpha, self.beta, self.gamma, self.ce_input = alpha, beta, gamma, ce_input
        self.register_buffer("class_values", torch.as_tensor(class_values, dtype=torch.float32))
        self.register_buffer("class_weights", torch.as_tensor(class_weights, dtype=torch.float32))

    def forward(self, reg: Tensor, logits: Tensor, score: Tensor, cls: Tensor) -> tuple[Tensor, Terms]:
        terms: Terms = {}
        total = reg.new_zeros(())
        if self.alpha:
            terms["l1_reg"] = F.l1_loss(reg.float(), score)
            total = total + self.alpha * terms["l1_reg"]
        if self.beta or self.gamma:
            probs = logits.float().softmax(dim=1)  # (B, K)
        if self.beta:
            expectation = probs @ self.class_values  # (B,)
            terms["l1_exp"] = F.l1_loss(expectation, score)
            total = total + self.beta * terms["l1_exp"]
        if self.gamma:
            ce_in = logits.float() if self.ce_input == "logits" else probs
            terms["ce"] = F.cross_entropy(ce_in, cls, weight=self.class_weights)
            total = total + self.gamma * terms["ce"]
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


def smooth_huber(delta: float) -> Callable[[Tensor], Tensor]:
    """rho(e) = log cosh(e) if |e| < delta, else |e| (the paper's Table 4 'SmoothHuber').

    log cosh(e) is computed as |e| + log1p(exp(-2|e|)) - log 2, which never overflows.
    Note the step at |e| = delta: delta - log cosh(delta) = 0.509 at delta = 0.8.
    """

    def rho(e: Tensor) -> Tensor:
        a = e.abs()
        log_cosh = a + torch.log1p(torch.exp(-2 * a)) - torch.log(torch.tensor(2.0, device=e.device))
        return torch.where(a < delta, log_cosh, a)

    return rho


LossFactory = Callable[["LossConfig", Tensor, Tensor], nn.Module]
LOSSES: dict[str, LossFactory] = {
    "combo": lambda c, values, weights: ComboLoss(c.alpha, c.beta, c.gamma, values, weights, c.ce_input),
    "l1": lambda c, values, weights: RegressionLoss("l1", l1),
    "mse": lambda c, values, weights: RegressionLoss("mse", mse),
    "smooth_l1": lambda c, values, weights: RegressionLoss("smooth_l1", smooth_l1(c.smooth_l1_beta)),
    "smooth_huber": lambda c, values, weights: RegressionLoss("smooth_huber", smooth_huber(c.huber_delta)),
}


def build_loss(config: LossConfig, class_values, class_weights) -> nn.Module:
    return LOSSES[config.name](config, torch.as_tensor(class_values), torch.as_tensor(class_weights))
