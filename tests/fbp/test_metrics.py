import math

import numpy as np
import pytest
from scipy import stats

from fbp import metrics


def test_metrics_by_hand():
    y, p = [1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.0, 5.0]
    assert metrics.mae(y, p) == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert metrics.rmse(y, p) == pytest.approx(math.sqrt((0.25 + 0 + 1 + 1) / 4))
    assert metrics.pearson(y, p) == pytest.approx(stats.pearsonr(y, p)[0])


def test_constant_prediction_gives_nan_pc_not_an_error():
    assert math.isnan(metrics.pearson([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]))
    assert metrics.scores([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])["mae"] == pytest.approx(2 / 3)


def test_mean_std_over_folds_and_by_subset():
    folds = [{"mae": 0.2, "rmse": 0.3, "pc": 0.8}, {"mae": 0.4, "rmse": 0.5, "pc": 0.9}]
    summary = metrics.mean_std(folds)
    assert summary["pc"] == pytest.approx((0.85, np.std([0.8, 0.9], ddof=1)))
    assert math.isnan(metrics.mean_std(folds[:1])["mae"][1])
    subsets = metrics.by_subset([1, 2, 3, 4], [1, 2, 4, 3], ["AF", "AF", "CM", "CM"])
    assert subsets["AF"]["mae"] == 0 and subsets["CM"]["mae"] == 1 and subsets["CM"]["pc"] == pytest.approx(-1)


def test_column_names_of_a_metric_where_it_was_measured():
    assert metrics.VAL_NAMES == ("val_mae", "val_rmse", "val_pc") and metrics.TEST_CURVES == ("test_mae", "test_rmse", "test_pc")
    assert metrics.REPORTED == ("mae", "rmse", "pc", "val_mae", "val_rmse", "val_pc")
    assert [metrics.base_name(c) for c in ("val_pc", "test_mae", "rmse", "val_loss")] == ["pc", "mae", "rmse", "val_loss"]
