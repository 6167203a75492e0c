import math
import re

import numpy as np
import pytest

from fbp.discretize import class_count, class_counts, class_weights, fit_discretization
from fbp.errors import InputError
from tests.conftest import SCUT5500_LABELS


def _scores(relative: str) -> np.ndarray:
    lines = (SCUT5500_LABELS / relative).read_text().split()
    return np.array([float(x) for x in lines[1::2]])


FOLD1_TRAIN = "5_folders_cross_validations_files/cross_validation_1/train_1.txt"
SIXTY_TRAIN = "split_of_60%training and 40%testing/train.txt"


# Class counts and weights checked on the real SCUT-FBP5500 label files in tests/fixtures.
@pytest.mark.parametrize(
    "split, rule, counts, weights",
    [
        (FOLD1_TRAIN, "round_half_even", [23, 1085, 2146, 1125, 21], [93.3, 1.98, 1.0, 1.91, 102.19]),
        (FOLD1_TRAIN, "paper", [25, 1083, 2169, 1102, 21], [86.76, 2.0, 1.0, 1.97, 103.29]),
        (SIXTY_TRAIN, "round_half_even", [16, 831, 1590, 847, 16], [99.38, 1.91, 1.0, 1.88, 99.38]),
        (SIXTY_TRAIN, "paper", [17, 830, 1607, 830, 16], None),
    ],
)
def test_real_label_files_give_the_published_class_vectors(split, rule, counts, weights):
    scores = _scores(split)
    d = fit_discretization(rule, scores)
    got = class_counts(d.classes(scores), d.num_classes)
    assert got.tolist() == counts
    if weights is not None:
        assert np.round(class_weights(got), 2).tolist() == weights


def test_rules_agree_with_their_python_definitions_on_every_real_score():
    scores = _scores("All_labels.txt")
    assert (fit_discretization("paper", scores).classes(scores) == [math.ceil(s - 0.5) - 1 for s in scores]).all()
    assert (fit_discretization("round_half_even", scores).classes(scores) == [round(s) - 1 for s in scores]).all()


def test_half_points_by_hand():
    s = [1.0, 1.5, 2.5, 3.5, 4.5, 5.0, 2.49, 2.51]
    assert fit_discretization("paper", s).classes(s).tolist() == [0, 0, 1, 2, 3, 4, 1, 2]
    # Python's round: 1.5 -> 2, 2.5 -> 2, 3.5 -> 4, 4.5 -> 4
    assert fit_discretization("round_half_even", s).classes(s).tolist() == [0, 1, 1, 3, 3, 4, 1, 2]
    assert fit_discretization("paper", s).values == (1.0, 2.0, 3.0, 4.0, 5.0)


def test_uniform_bins_over_the_scale_with_centres_and_means():
    train = [1.0, 1.2, 2.0, 2.9, 3.1, 5.0]
    d = fit_discretization("uniform", train, num_classes=4, values="centre", score_range=(1.0, 5.0))
    assert d.edges == (2.0, 3.0, 4.0)
    assert d.values == (1.5, 2.5, 3.5, 4.5)
    assert d.classes([1.0, 1.99, 2.0, 3.99, 4.0, 5.0]).tolist() == [0, 0, 1, 2, 3, 3]
    means = fit_discretization("uniform", train, num_classes=4, score_range=(1.0, 5.0))
    # bins: {1.0, 1.2} -> 1.1; {2.0, 2.9} -> 2.45; {3.1} -> 3.1; {5.0} -> 5.0
    assert np.allclose(means.values, [1.1, 2.45, 3.1, 5.0])


def test_quantile_bins_hold_equal_counts():
    train = np.arange(1, 13, dtype=float)  # 1..12
    d = fit_discretization("quantile", train, num_classes=3)
    # np.quantile(1..12, 1/3) = 1 + 11/3, at 2/3 = 1 + 22/3
    assert np.allclose(d.edges, [1 + 11 / 3, 1 + 22 / 3])
    assert class_counts(d.classes(train), 3).tolist() == [4, 4, 4]
    assert np.allclose(d.values, [2.5, 6.5, 10.5])


def test_hotornot_three_intervals():
    train = [-2.0, -1.0, -0.5, 0.0, 0.99, 1.0, 1.5]
    d = fit_discretization("intervals", train, edges=[-1, 1])
    assert d.classes([-1.01, -1.0, 0.0, 0.999, 1.0, 3.0]).tolist() == [0, 1, 1, 1, 2, 2]
    assert np.allclose(d.values, [-2.0, (-1.0 - 0.5 + 0.0 + 0.99) / 4, 1.25])
    # centres close the outer bins at the training min and max
    assert fit_discretization("intervals", train, edges=[-1, 1], values="centre").values == (-1.5, 0.0, 1.25)


def test_class_weights_eq6_and_empty_class():
    assert class_weights([10, 5, 2]).tolist() == [1.0, 2.0, 5.0]
    with pytest.warns(UserWarning, match=r"classes \[1\] have no training scores"):
        w = class_weights([4, 0, 2])
    assert w.tolist() == [1.0, 0.0, 2.0]


@pytest.mark.parametrize(
    "rule, kwargs, message",
    [
        ("nope", {}, "unknown discretization rule 'nope'; valid: intervals, paper, quantile, round_half_even, uniform"),
        ("paper", {"num_classes": 3}, "5 classes on the 1..5 scale, got num_classes=3"),
        ("uniform", {}, "needs num_classes >= 2, got None"),
        ("intervals", {}, "needs edges"),
        ("intervals", {"edges": [1, 0]}, "must increase strictly"),
        ("quantile", {"num_classes": 3}, "need distinct quantiles"),
        ("uniform", {"num_classes": 3, "values": "median"}, "'mean' or 'centre', got 'median'"),
    ],
)
def test_bad_rules_say_what_is_wrong(rule, kwargs, message):
    with pytest.raises(InputError, match=re.escape(message)):
        fit_discretization(rule, [3.0, 3.0, 3.0, 3.0, 4.0], **kwargs)


@pytest.mark.parametrize(
    "rule, kwargs",
    [("paper", {}), ("round_half_even", {}), ("intervals", {"edges": [2.0, 4.0]}), ("uniform", {"num_classes": 3, "score_range": (1.0, 5.0)})],
)
def test_an_explicit_values_list_replaces_the_rules_own_and_keeps_its_classes(rule, kwargs):
    s = [1.0, 1.5, 2.5, 3.5, 4.5, 5.0, 2.49, 2.51]
    own = fit_discretization(rule, s, **kwargs)
    values = [10.0 * (k + 1) for k in range(own.num_classes)]
    d = fit_discretization(rule, s, values=values, **kwargs)
    assert d.values == tuple(values)
    # the classes do not depend on the values: round_half_even still sends 2.5 -> 2, 3.5 -> 4
    assert d.classes(s).tolist() == own.classes(s).tolist()


def test_an_explicit_values_list_of_the_wrong_length_is_refused():
    with pytest.raises(InputError, match=re.escape("discretization values: 3 given, but rule 'paper' makes 5 classes")):
        fit_discretization("paper", [3.0], values=[1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "rule, num_classes, edges, k",
    [("paper", None, None, 5), ("round_half_even", None, None, 5), ("intervals", None, [-1, 1], 3), ("uniform", 4, None, 4), ("quantile", 7, None, 7), ("uniform", None, None, None)],
)
def test_class_count_before_fitting(rule, num_classes, edges, k):
    assert class_count(rule, num_classes, edges) == k
