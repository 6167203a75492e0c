"""Learning-rate schedules as one pure function: the LR factor at optimizer step t.

    step      factor = step_gamma ** floor(epoch / step_size)          (paper: / 10 every 50)
    cosine    linear warmup 0 -> 1 over warmup_epochs, then
              min_lr_ratio + (1 - min_lr_ratio) * (1 + cos(pi * progress)) / 2
    onecycle  cosine rise from 1/25 to 1 over pct_start of the steps, cosine fall to 1/(25e4)
              (torch's OneCycleLR defaults: div_factor 25, final_div_factor 1e4)
    constant  factor = 1
"""

from __future__ import annotations

import math

from fbp.config import ScheduleConfig


def _cos(start: float, end: float, progress: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * progress)) / 2


def lr_factor(schedule: ScheduleConfig, step: int, steps_per_epoch: int, total_steps: int) -> float:
    epoch = step // steps_per_epoch
    if schedule.name == "step":
        return schedule.step_gamma ** (epoch // schedule.step_size)
    if schedule.name == "cosine":
        warmup = round(schedule.warmup_epochs * steps_per_epoch)
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return _cos(1.0, schedule.min_lr_ratio, min(progress, 1.0))
    if schedule.name == "onecycle":
        rise = max(1, round(schedule.pct_start * total_steps))
        if step < rise:
            return _cos(1 / 25, 1.0, step / rise)
        return _cos(1.0, 1 / 25e4, min((step - rise) / max(1, total_steps - rise), 1.0))
    return 1.0
