import math

import pytest

from fbp.config import ScheduleConfig
from fbp.schedules import lr_factor


def test_step_divides_by_ten_every_50_epochs():
    s = ScheduleConfig()  # the paper's
    assert [lr_factor(s, e * 10, 10, 2000) for e in (0, 49, 50, 99, 100, 150)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.001])


def test_cosine_with_warmup():
    s = ScheduleConfig(name="cosine", warmup_epochs=1, min_lr_ratio=0.1)
    # 10 steps per epoch, 100 in all: steps 0..9 warm up linearly to 1
    assert lr_factor(s, 0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(s, 9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(s, 10, 10, 100) == pytest.approx(1.0)
    # half way through the 90 cosine steps: 0.1 + 0.9 * (1 + cos(pi/2)) / 2
    assert lr_factor(s, 55, 10, 100) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(s, 100, 10, 100) == pytest.approx(0.1)


def test_onecycle_rises_then_falls():
    s = ScheduleConfig(name="onecycle", pct_start=0.25)
    assert lr_factor(s, 0, 10, 100) == pytest.approx(1 / 25)
    assert lr_factor(s, 25, 10, 100) == pytest.approx(1.0)
    assert lr_factor(s, 100, 10, 100) == pytest.approx(1 / 25e4)
    mid = lr_factor(s, 12, 10, 100)
    assert mid == pytest.approx(1 + (1 / 25 - 1) * (1 + math.cos(math.pi * 12 / 25)) / 2)


def test_constant():
    assert lr_factor(ScheduleConfig(name="constant"), 77, 10, 100) == 1.0
