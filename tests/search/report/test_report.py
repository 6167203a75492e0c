"""`fbp-search report`: every number it prints is recomputed here from predictions.parquet with
pandas and scipy; odd results directories (FAIL, PRUNED, one trial, no journal) still give a
report that says what it could not compute."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from fbp import paper
from fbp.errors import InputError
from search.commands.report import register
from search.report import build_report, write_report
from search.results import read_table
from tests.search.report.make_results import SPACE, T, make_results, standard_trials

BASELINE = {"loss.name": "combo", "loss.alpha": 2.0, "train.lr": 0.01}
TABLES = ["leaderboard.csv", "paper.csv", "ablation.csv", "pooled.csv", "importance.csv", "status.csv", "errors.csv", "tables.md", "tables.tex"]
PLOTS = ["history.png", "importance.png", "knobs.png", "predicted_vs_true.png", "curves.png"]


def run_cli(*argv: str) -> int:
    """The command as `fbp-search` will run it: a parser with the registered subcommand."""
    parser = argparse.ArgumentParser(prog="fbp-search")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *argv])
    return args.run(args)


@pytest.fixture(scope="module")
def standard(tmp_path_factory):
    root = make_results(tmp_path_factory.mktemp("standard") / "toy", standard_trials(), baseline=BASELINE)
    assert run_cli(str(root), "--bootstrap", "500") == 0
    return root


def recomputed_folds(root) -> pd.DataFrame:
    """Per (trial, fold) MAE, RMSE and Pearson PC straight from the predictions."""
    p = read_table(root, "predictions")
    rows = []
    for (trial, fold), g in p.groupby(["trial_id", "fold"]):
        e = g["y_pred"] - g["y_true"]
        rows.append({"trial_id": trial, "fold": fold, "mae": e.abs().mean(), "rmse": np.sqrt((e**2).mean()), "pc": stats.pearsonr(g["y_true"], g["y_pred"])[0]})
    return pd.DataFrame(rows)


# --- the numbers --------------------------------------------------------------------------------


def test_leaderboard_matches_a_recomputation_from_the_predictions(standard):
    board = pd.read_csv(standard / "report" / "leaderboard.csv")
    assert list(board.columns[:9]) == ["trial_id", "status", "folds", "mae_mean", "mae_std", "rmse_mean", "rmse_std", "pc_mean", "pc_std"]
    assert [c for c in board.columns if c.startswith("param.")] == [f"param.{p}" for p in SPACE]
    per_fold = recomputed_folds(standard)
    expected = per_fold.groupby("trial_id").agg(
        folds=("fold", "size"), mae_mean=("mae", "mean"), mae_std=("mae", "std"), rmse_mean=("rmse", "mean"),
        rmse_std=("rmse", "std"), pc_mean=("pc", "mean"), pc_std=("pc", "std"),
    )
    got = board.set_index("trial_id").loc[expected.index]
    for column in expected.columns:
        np.testing.assert_allclose(got[column].to_numpy(float), expected[column].to_numpy(float), rtol=1e-9, err_msg=column)
    # ranking: complete trials by mean PC, then the pruned ones, then the failed one
    status = dict(zip(board["trial_id"], board["status"]))
    assert status == {"tr_00003": "COMPLETE", "tr_00004": "COMPLETE", "base_00000": "COMPLETE", "tr_00001": "COMPLETE", "tr_00002": "COMPLETE",
                      "tr_00005": "PRUNED", "tr_00006": "PRUNED", "tr_00007": "FAIL"}
    complete = board[board["status"] == "COMPLETE"]
    assert complete["pc_mean"].is_monotonic_decreasing
    assert list(board["status"]) == sorted(board["status"], key=["COMPLETE", "INCOMPLETE", "PRUNED", "FAIL"].index)
    fail = board.set_index("trial_id").loc["tr_00007"]
    assert fail["folds"] == 0 and np.isnan(fail["pc_mean"])


def test_pooled_and_per_subset_metrics_match_a_recomputation(standard):
    pooled = pd.read_csv(standard / "report" / "pooled.csv", keep_default_na=False, na_values=[""])
    p = read_table(standard, "predictions")
    assert set(pooled["role"]) == {"best", "baseline"}
    assert set(pooled.loc[pooled["role"] == "best", "trial_id"]) == {"tr_00003"}
    assert set(pooled.loc[pooled["role"] == "baseline", "trial_id"]) == {"base_00000"}
    for _, row in pooled.iterrows():
        g = p[p["trial_id"] == row["trial_id"]]
        if row["subset"] != "all":
            g = g[g["subset"] == row["subset"]]
        e = g["y_pred"] - g["y_true"]
        assert row["n"] == len(g)
        assert row["mae"] == pytest.approx(e.abs().mean(), rel=1e-9)
        assert row["rmse"] == pytest.approx(np.sqrt((e**2).mean()), rel=1e-9)
        assert row["pc"] == pytest.approx(stats.pearsonr(g["y_true"], g["y_pred"])[0], rel=1e-9)
    assert sorted(pooled.loc[pooled["role"] == "best", "subset"]) == ["AF", "AM", "CF", "CM", "all"]


def test_ablation_paired_tests_and_bootstrap(standard):
    ablation = pd.read_csv(standard / "report" / "ablation.csv", keep_default_na=False, na_values=[""])
    assert set(ablation["reference"]) == {"base_00000"}
    assert list(ablation["knob"]) == ["best trial", "loss.name", "loss.name", "loss.name"]
    assert list(ablation["level"].fillna("")) == ["", "combo", "l1", "mse"]
    assert list(ablation["trial_id"]) == ["tr_00003", "tr_00003", "tr_00004", "tr_00002"]  # best of each level
    per_fold = recomputed_folds(standard).set_index(["trial_id", "fold"])
    base = per_fold.loc["base_00000"]
    for _, row in ablation.iterrows():
        a = per_fold.loc[row["trial_id"]]
        assert row["k"] == 5
        for m in ("pc", "mae", "rmse"):
            assert row[f"d_{m}"] == pytest.approx((a[m] - base[m]).mean(), rel=1e-9)
            assert row[f"t_p_{m}"] == pytest.approx(stats.ttest_rel(a[m], base[m]).pvalue, rel=1e-9)
            assert row[f"wilcoxon_p_{m}"] == pytest.approx(stats.wilcoxon(a[m] - base[m]).pvalue, rel=1e-9)
        d = (a["pc"] - base["pc"]).to_numpy()  # the t test's 95% CI of the fold PC difference, by hand
        half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
        assert row["ci_low_pc"] == pytest.approx(d.mean() - half, rel=1e-9) and row["ci_high_pc"] == pytest.approx(d.mean() + half, rel=1e-9)
        assert row["oof_n"] == 80
        assert row["oof_ci_low"] <= row["oof_d_pc"] <= row["oof_ci_high"]
    text = (standard / "report" / "tables.md").read_text()
    assert "With k = 5 the smallest two-sided Wilcoxon p is 2/2^5 = 0.0625: it cannot reach 0.05; the t test can." in text
    assert "ΔPC [95% CI]" in text and "ΔPC pooled" in text


def test_bootstrap_is_seeded_and_matches_a_plain_resampling():
    from fbp.metrics import pearson as _pearson
    from search.report._stats import bootstrap_pc_difference

    rng = np.random.default_rng(3)
    y = rng.uniform(1, 5, 40)
    a, b = y + rng.normal(0, 0.3, 40), y + rng.normal(0, 0.5, 40)
    got = bootstrap_pc_difference(y, a, b, draws=300, seed=7)
    assert got == bootstrap_pc_difference(y, a, b, draws=300, seed=7)
    draws = np.random.default_rng(7)
    plain = []
    for start in range(0, 300, 256):  # the same draws, resampled the obvious way
        for i in draws.integers(0, 40, size=(min(256, 300 - start), 40)):
            plain.append(_pearson(y[i], a[i]) - _pearson(y[i], b[i]))
    low, high = np.quantile(plain, [0.025, 0.975])
    assert got["ci_low"] == pytest.approx(low, abs=1e-10) and got["ci_high"] == pytest.approx(high, abs=1e-10)
    assert got["pc_diff"] == pytest.approx(stats.pearsonr(y, a)[0] - stats.pearsonr(y, b)[0], rel=1e-12)


def test_importance_and_edge_of_the_space(standard):
    imp = pd.read_csv(standard / "report" / "importance.csv", keep_default_na=False, na_values=[""])
    assert set(imp["knob"]) == set(SPACE)
    assert imp["importance"].notna().all() and imp["importance"].sum() == pytest.approx(1, abs=1e-6)
    edge = imp.set_index("knob")["edge"].fillna("")
    assert edge["loss.alpha"] == "upper edge"  # best alpha 3.9 in [0, 4]
    assert edge["train.lr"] == "inside"
    assert "sits at the upper edge" in (standard / "report" / "tables.md").read_text()


def test_paper_table_puts_published_rows_beside_ours(standard):
    t = pd.read_csv(standard / "report" / "paper.csv", keep_default_na=False, na_values=[""])
    ours = t[t["source"] == "ours"]
    assert list(ours["level"]) == ["combo", "l1", "mse"]
    assert list(ours["trial_id"]) == ["tr_00003", "tr_00004", "tr_00002"]
    published = t[t["source"] == "published"]
    assert len(published) == len(paper.published("scut-fbp5500", "5fold")) + len(paper.published("scut-fbp5500", "5fold", source="readme"))
    combo = published[published["method"] == "Table 3: ComboLoss (Ours)"].iloc[0]
    assert (combo["mae_mean"], combo["rmse_mean"], combo["pc_mean"]) == (0.2050, 0.2704, 0.9199)
    assert combo["reference"] == f"{paper.PAPER}, Table 3"
    assert t.index[t["method"] == "Table 3: ComboLoss (Ours)"][0] == t.index[t["level"] == "combo"][0] + 1  # right under our combo row
    assert "Table 3: ResNeXt-50 [16]" in set(published["method"])
    assert "Published figures, not ours" in (standard / "report" / "tables.md").read_text()


@pytest.mark.parametrize("backbone, alpha, differs", [
    ("resnet18", 2.0, "model.backbone: ours resnet18, published seresnext50_32x4d"),  # fbp-search run --set model.backbone=resnet18
    ("seresnext50_32x4d", 2.0, ""),  # the paper's configuration: nothing to mark
    ("seresnext50_32x4d", 3.5, "loss.alpha: ours 3.5, published 2"),
])
def test_a_published_row_beside_ours_of_another_configuration_is_marked(tmp_path, backbone, alpha, differs):
    import yaml

    trials = [T("combo_0", {"loss.name": "combo", "loss.alpha": alpha}, noise=0.2), T("l1_0", {"loss.name": "l1", "loss.alpha": alpha})]
    root = make_results(tmp_path / "swapped", trials, space={"loss.name": {"choice": ["combo", "l1"]}, "loss.alpha": {"float": [0.0, 4.0]}}, journal=False)
    study = yaml.safe_load((root / "study.yaml").read_text())
    study["model"]["backbone"] = backbone  # as a --set override resolves into study.yaml
    (root / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    report = build_report(root, draws=10, cache=False)
    t = report.paper
    combo = t.index[(t["source"] == "ours") & (t["level"] == "combo")][0]
    beside = t.loc[combo + 1]
    assert beside["method"] == "Table 3: ComboLoss (Ours)" and beside["differs"] == differs
    assert (t.loc[t["method"] != "Table 3: ComboLoss (Ours)", "differs"] == "").all()  # other authors' rows define no configuration
    write_report(report, root / "report", formats=("md", "csv"))
    md = (root / "report" / "tables.md").read_text()
    note = f"¶ Table 3: ComboLoss (Ours) was measured with another configuration than ours beside it ({differs}): not a like-for-like comparison."
    assert ("Table 3: ComboLoss (Ours)¶" in md and note in md) == bool(differs)
    assert pd.read_csv(root / "report" / "paper.csv", keep_default_na=False)["differs"].tolist() == t["differs"].tolist()


def test_with_no_level_to_pair_by_our_one_row_is_compared_with_each_published_row(tmp_path):
    import yaml

    root = make_results(tmp_path / "one", [T("only_0", {})], space={}, journal=False)
    study = yaml.safe_load((root / "study.yaml").read_text())
    study["model"]["backbone"] = "resnet18"
    (root / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    t = build_report(root, draws=10, cache=False).paper
    assert t.loc[t["method"] == "Table 3: ComboLoss (Ours)", "differs"].tolist() == ["model.backbone: ours resnet18, published seresnext50_32x4d"]


def test_published_data():
    rows = paper.published("scut-fbp5500", "5fold")
    combo = [r for r in rows if r.config.get("loss.name") == "combo"]
    assert [(r.mae, r.rmse, r.pc) for r in combo] == [(0.2050, 0.2704, 0.9199)]
    assert paper.published("synthetic", "5fold") == []
    for r in paper.ROWS:
        assert 0 < r.pc < 1 and r.source in ("paper", "readme")


# --- marks, counts, files -----------------------------------------------------------------------


def test_test_oracle_rows_carry_the_mark(standard):
    md = (standard / "report" / "tables.md").read_text()
    tex = (standard / "report" / "tables.tex").read_text()
    oracle_lines = [line for line in md.splitlines() if "tr_00004" in line]
    assert oracle_lines and all("tr_00004†" in line for line in oracle_lines)
    assert not any("tr_00003†" in line for line in md.splitlines())
    assert "† eval.select = test_oracle" in md
    assert r"tr\_00004$^\dagger$" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    board = pd.read_csv(standard / "report" / "leaderboard.csv").set_index("trial_id")
    assert board.at["tr_00004", "select"] == "test_oracle" and board.at["tr_00003", "select"] == "last"
    for name in ("ablation.csv", "pooled.csv", "paper.csv"):
        t = pd.read_csv(standard / "report" / name)
        assert set(t.loc[t["trial_id"] == "tr_00004", "select"]) <= {"test_oracle"}


def test_fail_and_pruned_counts_are_stated(standard):
    status = pd.read_csv(standard / "report" / "status.csv").set_index("status")
    assert status["trials"].to_dict() == {"COMPLETE": 5, "INCOMPLETE": 0, "PRUNED": 2, "FAIL": 1}
    md = (standard / "report" / "tables.md").read_text()
    assert "2 trials PRUNED" in md and "1 trial FAILED" in md and "loss is NaN" in md and "(s)" not in md


def test_every_output_file_is_written(standard):
    out = standard / "report"
    for name in TABLES + PLOTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in PLOTS:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 150
    md = (out / "tables.md").read_text()
    sections = ("## Leaderboard", "## Paper format", "## Ablation", "## Pooled and per-subset", "## Knob importance", "## Trials and fold rows by status",
                "## Errors of failed trials", "## Plots")
    for section in sections:
        assert section in md


def test_a_single_trial_says_what_it_could_not_compute(tmp_path):
    root = make_results(tmp_path / "one", [T("only_00000", {"loss.name": "combo", "loss.alpha": 2.0, "train.lr": 0.01})], baseline=BASELINE)
    assert run_cli(str(root), "--format", "md,csv,png", "--bootstrap", "100") == 0
    out = root / "report"
    md = (out / "tables.md").read_text()
    assert "importance needs at least 2 completed trials (the journal has 1)" in md
    assert "ablation: only one completed trial, nothing to compare" in md
    assert not (out / "tables.tex").exists()  # not asked for
    for name in ("leaderboard.csv", "pooled.csv", "history.png", "predicted_vs_true.png", "curves.png", "knobs.png"):
        assert (out / name).is_file(), name
    board = pd.read_csv(out / "leaderboard.csv")
    assert list(board["trial_id"]) == ["only_00000"] and board.at[0, "folds"] == 5


def test_no_journal_and_a_fail_before_any_fold(tmp_path):
    trials = standard_trials()[:3]
    root = make_results(tmp_path / "nojournal", trials, baseline=BASELINE, journal=False, dataset="synthetic")
    from search.results import ResultsDir

    ResultsDir(root).write("folds", "early_00009-fail", pd.DataFrame([{"trial_id": "early_00009", "fold": -1, "status": "FAIL", "error": "InputError: data.root missing", "param.loss.name": "l1"}]))
    ResultsDir(root).write("folds", "nan_00010-fail", pd.DataFrame([{"trial_id": "nan_00010", "fold": np.nan, "status": "FAIL", "error": None}]))
    report = build_report(root, draws=50)
    write_report(report, root / "report", formats=("md", "csv"))
    assert report.leaderboard.loc[["early_00009", "nan_00010"], "status"].tolist() == ["FAIL", "FAIL"]
    notes = " ".join(report.notes)
    assert "no optuna.journal" in notes and "importance skipped" in notes
    assert "no published ComboLoss figures for dataset synthetic" in notes
    assert "InputError: data.root missing" in notes
    assert report.importance["importance"].isna().all()


def test_no_baseline_compares_with_the_best(tmp_path):
    root = make_results(tmp_path / "nobase", standard_trials()[:5], journal=False)
    report = build_report(root, draws=50)
    assert report.baseline is None and set(report.ablation["reference"]) == {"tr_00003"}
    assert any("names no baseline" in n for n in report.notes)


def test_history_draws_the_trials_in_the_order_they_started(tmp_path):
    """Written a, b, c, d, started a, d, b, c; then compacted, as a finished study's folds are
    (one part: every row the same mtime). The history was drawn best first, its best-so-far flat."""
    started = {"t_a": 1000.0, "t_b": 2000.0, "t_c": 3000.0, "t_d": 1500.0}
    noise = {"t_a": 0.45, "t_b": 0.30, "t_c": 0.12, "t_d": 0.38}
    trials = [T(t, {"loss.name": "combo", "loss.alpha": 2.0, "train.lr": 0.01}, noise=noise[t], extra={"started_at": at, "finished_at": at + 60}) for t, at in started.items()]
    root = make_results(tmp_path / "history", trials, journal=False)
    from search.results import ResultsDir

    assert ResultsDir(root).compact("folds") == 4 * 5
    history = build_report(root, draws=10, cache=False).history
    assert list(history["trial_id"]) == ["t_a", "t_d", "t_b", "t_c"]
    assert list(history["order"]) == [1, 2, 3, 4]
    pc = read_table(root, "folds").groupby("trial_id")["pc"].mean()
    assert pc["t_a"] < pc["t_d"] < pc["t_b"] < pc["t_c"]  # so the best so far rises at every trial
    np.testing.assert_allclose(history["best_so_far"], pc[["t_a", "t_d", "t_b", "t_c"]].cummax().to_numpy())


def test_importance_of_several_objectives_is_for_the_first_ones_good_end_and_optuna_warns_nothing(tmp_path, recwarn):
    """Two objectives (max pc, min mae): the knobs are weighed for the first, as the search
    wanted it. A high PC needs loss.beta near 1; a low one comes of loss.alpha near 3. PED-ANOVA
    takes a target's low values as good: the report weighed the knobs for a low PC (loss.alpha
    first) and Optuna's UserWarning saying so leaked to stderr (into `fbp-search paper`)."""
    import optuna
    import yaml

    space = {"loss.alpha": {"float": [0.0, 4.0]}, "loss.beta": {"float": [0.0, 4.0]}}
    root = make_results(tmp_path / "multi", [T(f"t{i}", {"loss.alpha": 2.0, "loss.beta": 1.0}) for i in range(3)], space=space, k=2, n_images=40, journal=False)
    study = yaml.safe_load((root / "study.yaml").read_text())
    study["objective"] = [{"metric": "pc", "mode": "max", "on": "test"}, {"metric": "mae", "mode": "min", "on": "test"}]
    (root / "study.yaml").write_text(yaml.safe_dump(study))
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(root / "optuna.journal")))
    journal = optuna.create_study(study_name="toy", storage=storage, directions=["maximize", "minimize"])
    rng = np.random.default_rng(0)
    trials = []
    for a, b in rng.uniform(0, 4, (60, 2)):
        pc = 0.5 + 0.4 * (abs(b - 1) < 0.3) - 0.4 * (abs(a - 3) < 0.3) + 0.01 * rng.normal()
        trials.append(optuna.trial.create_trial(params={"loss.alpha": a, "loss.beta": b}, distributions={p: optuna.distributions.FloatDistribution(0, 4) for p in space}, values=[pc, 1 - pc]))
    journal.add_trials(trials)
    recwarn.clear()
    report = build_report(root, draws=10, cache=False)
    assert list(report.importance["knob"]) == ["loss.beta", "loss.alpha"]
    assert report.importance["importance"].iloc[0] > 0.5
    assert not [w for w in recwarn if "optuna" in (w.filename + str(w.message)).lower() or "importance" in str(w.message)]


def test_optunas_warnings_while_weighing_knobs_become_notes():
    import warnings

    import optuna

    from search.report._build import _optuna_warnings

    notes: list[str] = []
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        with _optuna_warnings(notes):
            warnings.warn("Target and region quantiles select the same set of trials.\n Parameter importances will be equal.", UserWarning, stacklevel=1)
            warnings.warn("an experimental feature", optuna.exceptions.ExperimentalWarning, stacklevel=1)
    assert not leaked
    assert notes == ["importance: optuna warns: Target and region quantiles select the same set of trials. Parameter importances will be equal."]


def test_by_a_fixed_path_an_unknown_one_and_bad_formats(tmp_path, standard):
    report = build_report(standard, by="model.backbone", draws=10)
    ours = report.paper[report.paper["source"] == "ours"]
    assert list(ours["trial_id"]) == ["tr_00003"] and any("not searched" in n for n in report.notes)
    with pytest.raises(InputError, match="--by loss.nope"):
        build_report(standard, by="loss.nope")
    with pytest.raises(InputError, match="--format"):
        run_cli(str(standard), "--format", "md,pdf")


def test_missing_or_foreign_results_dirs_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match=f"results directory not found: {tmp_path / 'nope'}"):
        build_report(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        build_report(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a results directory"):
        build_report(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "study.yaml").write_text("name: [unclosed\n")
    with pytest.raises(InputError, match="study.yaml"):
        build_report(tmp_path / "bad")
    (tmp_path / "corrupt" / "folds.parquet").mkdir(parents=True)
    (tmp_path / "corrupt" / "folds.parquet" / "t1-fold1.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="t1-fold1.parquet") as e:
        build_report(tmp_path / "corrupt")
    assert "\n" not in str(e.value)


def test_an_empty_study_gives_an_empty_report(tmp_path):
    root = make_results(tmp_path / "empty", [], journal=False)
    report = build_report(root, draws=10)
    written = write_report(report, root / "report", formats=("md", "tex", "csv", "png"))
    assert {p.name for p in written} >= set(TABLES)
    assert any("no trials recorded yet" in n for n in report.notes)


def test_neither_ray_nor_torch_is_imported():
    """In a fresh interpreter: the report's modules and what they import lazily."""
    code = (
        "import sys, search.report, search.report._build, search.report._plots, search.report._render, optuna, matplotlib.figure, scipy.stats; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'torch')); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])


def test_a_train_run_directory(tmp_path):
    """`fbp-search train` writes study.yaml as a study of one configuration (no search): one trial, no knobs."""
    import yaml

    root = make_results(tmp_path / "train", [T("t1234abcd", {})], space={}, journal=False)
    config = yaml.safe_load((root / "study.yaml").read_text())
    (root / "study.yaml").write_text(yaml.safe_dump({"name": "train", "spec_hash": "x", **{k: config[k] for k in ("data", "model", "loss", "train", "eval")}}))
    report = build_report(root, draws=10)
    written = write_report(report, root / "report", formats=("md", "csv", "png"))
    assert report.best == "t1234abcd" and report.study.dataset == "scut-fbp5500" and not report.study.knobs
    assert any("one configuration, no search" in n for n in report.notes)
    assert {p.name for p in written} >= {"leaderboard.csv", "pooled.csv", "tables.md", "predicted_vs_true.png", "curves.png"}
    assert list(report.paper.loc[report.paper["source"] == "ours", "trial_id"]) == ["t1234abcd"]


# --- a study in which nothing completed ---------------------------------------------------------

NAN_LOSS = "TrainingError: fold 1, epoch 1: loss term 'loss' is not finite (nan)"
OOM = "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"


def failed_study(root: Path, pruned: bool, nan_metrics: bool) -> Path:
    """Three FAIL trials (two share an error; the first is the baseline point) and, with
    `pruned`, a PRUNED trial that finished its first fold. With `nan_metrics` the FAIL rows
    carry mae, rmse and pc columns holding NaN; without, they carry none (as the Tune callback
    writes them), so with no PRUNED trial the folds table has no metric column at all."""
    trials = [
        T("f_00000", BASELINE, status="FAIL", error=NAN_LOSS),
        T("f_00001", {"loss.name": "l1", "loss.alpha": 1.0, "train.lr": 0.003}, status="FAIL", error=OOM),
        T("f_00002", {"loss.name": "mse", "loss.alpha": 3.0, "train.lr": 0.05}, status="FAIL", error=NAN_LOSS),
    ]
    if pruned:
        trials.append(T("p_00003", {"loss.name": "combo", "loss.alpha": 1.5, "train.lr": 0.02}, status="PRUNED", folds_done=1))
    root = make_results(root, trials, baseline=BASELINE)
    if nan_metrics:
        from search.results import ResultsDir

        for t in trials:
            if t.status == "FAIL":
                rows = pd.read_parquet(root / "folds.parquet" / f"{t.trial_id}-fail.parquet")
                ResultsDir(root).write("folds", f"{t.trial_id}-fail", rows.assign(mae=np.nan, rmse=np.nan, pc=np.nan))
    return root


@pytest.mark.parametrize("pruned, nan_metrics", [(False, False), (False, True), (True, False)], ids=["all-fail", "all-fail-nan-metrics", "fail-and-pruned"])
def test_a_study_in_which_nothing_completed_writes_what_it_can(tmp_path, capsys, pruned, nan_metrics):
    root = failed_study(tmp_path / "failed", pruned, nan_metrics)
    assert run_cli(str(root), "--bootstrap", "50") == 0
    out = capsys.readouterr().out
    assert "Nothing completed (none of the" in out
    report = root / "report"

    # trials by status, and their fold rows by each row's own status: 3 FAIL trials x 5 folds;
    # the PRUNED trial finished fold 1 and has PRUNED rows for folds 2..5
    status = pd.read_csv(report / "status.csv").set_index("status")
    assert status["trials"].to_dict() == {"COMPLETE": 0, "INCOMPLETE": 0, "PRUNED": int(pruned), "FAIL": 3}
    assert status.loc["FAIL", ["fold_rows_complete", "fold_rows_pruned", "fold_rows_fail"]].tolist() == [0, 0, 15]
    assert status.loc["PRUNED", ["fold_rows_complete", "fold_rows_pruned", "fold_rows_fail"]].tolist() == ([1, 4, 0] if pruned else [0, 0, 0])

    # the distinct errors, how many trials raised each, and the first trial that did
    errors = pd.read_csv(report / "errors.csv")
    assert errors.to_dict("records") == [
        {"error": NAN_LOSS, "trials": 2, "first_trial": "f_00000"},
        {"error": OOM, "trials": 1, "first_trial": "f_00001"},
    ]
    md = (report / "tables.md").read_text()
    assert f"| {NAN_LOSS} | 2 | f_00000 |" in md.replace("\\|", "|")
    # every section that needs a complete trial is there as its title and a one-line note
    for title in ("Paper format", "Ablation", "Pooled and per-subset out-of-fold metrics", "Knob importance and the edge of the space"):
        after = md.split(f"## {title}\n\n", 1)[1].split("\n")
        assert after[0].startswith("_Omitted: ") and after[1] == "", title
    assert "## Trials and fold rows by status" in md and "## Errors of failed trials" in md
    assert "\\begin{tabular}" in (report / "tables.tex").read_text()
    board = pd.read_csv(report / "leaderboard.csv")
    assert sorted(board["trial_id"]) == sorted(["f_00000", "f_00001", "f_00002"] + (["p_00003"] if pruned else []))
    for name in ("predicted_vs_true.png", "curves.png", "knobs.png"):
        assert not (report / name).exists(), name


def test_the_cli_exits_0_when_every_trial_failed(tmp_path):
    """Through the installed entry point, in a fresh interpreter: no traceback, exit 0."""
    root = failed_study(tmp_path / "failed", pruned=False, nan_metrics=False)
    argv = [sys.executable, "-m", "search.cli", "report", str(root), "--bootstrap", "10", "--format", "md,csv"]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, cwd=Path(__file__).parents[3])
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Nothing completed" in done.stdout


def test_a_failed_baseline_is_not_the_reference(tmp_path):
    """The baseline point was a trial that failed: differences are taken against the best."""
    failed = standard_trials()[-1]  # tr_00007, FAIL
    root = make_results(tmp_path / "basefail", standard_trials(), baseline=failed.params, journal=False)
    report = build_report(root, draws=50)
    assert report.baseline == "tr_00007" and report.best == "tr_00003"
    assert set(report.ablation["reference"]) == {"tr_00003"}
    assert any("baseline trial tr_00007 did not complete (FAIL)" in n for n in report.notes)
    write_report(report, root / "report", formats=("md", "csv"))
    assert "a trial minus the best trial" in (root / "report" / "tables.md").read_text()


# --- cosmetics ----------------------------------------------------------------------------------


def test_status_table_splits_trials_from_their_fold_rows(standard):
    """standard_trials: 5 COMPLETE trials of 5 folds; PRUNED tr_00005 finished 2 folds and
    tr_00006 one, each with PRUNED rows for the rest; FAIL tr_00007 has 5 FAIL rows."""
    status = pd.read_csv(standard / "report" / "status.csv").set_index("status")
    rows = status[["trials", "fold_rows_complete", "fold_rows_pruned", "fold_rows_fail"]]
    assert rows.loc["COMPLETE"].tolist() == [5, 25, 0, 0]
    assert rows.loc["PRUNED"].tolist() == [2, 2 + 1, 3 + 4, 0]
    assert rows.loc["FAIL"].tolist() == [1, 0, 0, 5]
    assert rows.loc["INCOMPLETE"].tolist() == [0, 0, 0, 0]
    assert rows["fold_rows_complete"].sum() == (read_table(standard, "folds")["status"] == "COMPLETE").sum()


def test_one_fold_shows_the_mean_alone_and_singular_words(tmp_path, capsys):
    root = make_results(tmp_path / "one", [T("a_00000", BASELINE), T("b_00001", {"loss.name": "l1", "loss.alpha": 1.0, "train.lr": 0.01})], k=1, baseline=BASELINE, journal=False)
    assert run_cli(str(root), "--bootstrap", "50") == 0
    out = capsys.readouterr().out
    md = (root / "report" / "tables.md").read_text()
    tex = (root / "report" / "tables.tex").read_text()
    for text in (md, tex, out):
        assert not re.search(r"\bnan\b", text, re.I), text
        assert "1 folds" not in text and "1 trials" not in text
    assert "1 fold per trial" in md and "1 fold per trial" in out
    per_fold = recomputed_folds(root).set_index("trial_id")
    # § selected on test folds: a searched study whose study.yaml has no objective.on chose on them
    line = next(x for x in md.splitlines() if x.startswith("| 1 | a_00000§ |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[5:8] == [f"{per_fold.at['a_00000', m]:.4f}" for m in ("mae", "rmse", "pc")]  # no "±": one fold has no spread


def test_curves_join_the_evaluated_epochs(tmp_path, monkeypatch):
    """eval_every 2 over 5 epochs: test metrics at epochs 2, 4 and 5 only (NaN elsewhere);
    each fold's test line goes through those points, unbroken."""
    from search.report import _plots

    root = make_results(tmp_path / "every2", standard_trials()[:2], baseline=BASELINE, epochs=5, eval_every=2, journal=False)
    report = build_report(root, draws=10)
    drawn = {}

    def keep(fig, path):
        drawn["fig"] = fig
        return path

    monkeypatch.setattr(_plots, "_save", keep)
    assert _plots.curves(report, tmp_path / "curves.png") is not None
    epochs = read_table(root, "epochs")
    epochs = epochs[epochs["trial_id"] == report.best]
    ax = next(a for a in drawn["fig"].axes if a.get_ylabel() == "test_pc")
    lines = {line.get_label(): line for line in ax.get_lines()}
    for fold, g in epochs.groupby("fold"):
        line = lines[f"fold {fold}"]
        assert list(line.get_xdata()) == [2, 4, 5]
        np.testing.assert_allclose(line.get_ydata(), g.set_index("epoch").loc[[2, 4, 5], "test_pc"].to_numpy(float), rtol=1e-12)


def test_by_a_float_knob_gives_quantile_bins(tmp_path):
    """12 complete trials, alpha 0.25, 0.5, ..., 3.0: four quantile bins of three trials each
    (alpha order), and in each the trial with the highest mean PC."""
    alphas = [0.25 * (i + 1) for i in range(12)]
    trials = [T(f"t_{i:05d}", {"loss.name": ["combo", "l1", "mse"][i % 3], "loss.alpha": a, "train.lr": 0.01}) for i, a in enumerate(alphas)]
    space = {"loss.alpha": SPACE["loss.alpha"], "loss.name": SPACE["loss.name"], "train.lr": SPACE["train.lr"]}  # a float knob first
    root = make_results(tmp_path / "float", trials, space=space, journal=False, n_images=40)
    assert build_report(root, draws=0).by == "loss.name"  # the default is the first categorical knob, not the float one
    assert run_cli(str(root), "--by", "loss.alpha", "--bootstrap", "0", "--format", "csv,md") == 0
    ours = pd.read_csv(root / "report" / "paper.csv").query("source == 'ours'")
    pc = recomputed_folds(root).groupby("trial_id")["pc"].mean()
    groups = [[t.trial_id for t in trials[3 * b : 3 * b + 3]] for b in range(4)]
    assert list(ours["trials"]) == [3, 3, 3, 3]
    # quartiles of 12 evenly spaced values (linear interpolation): 0.25 + 2.75 * 0.25, 0.25 + 5.5 * 0.25
    assert list(ours["level"])[:2] == ["[0.25, 0.9375]", "(0.9375, 1.625]"]
    assert list(ours["trial_id"]) == [pc[g].idxmax() for g in groups]
    md = (root / "report" / "tables.md").read_text()
    assert "Best trial per quantile bin of loss.alpha" in md and "4 quantile bins" in md
