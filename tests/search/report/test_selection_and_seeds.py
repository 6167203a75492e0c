"""The report of a study that chooses on validation parts (objective.on: val) or on the test folds
(on: test), and of one that trains every fold with several seeds (train.repeats). Every number
is recomputed here from predictions.parquet (test figures) or from the val_* metrics
folds.parquet holds (validation parts: their predictions are not kept), with pandas and scipy."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from search.report import build_report, write_report
from search.results import ResultsDir, read_table
from tests.search.report.make_results import T, make_results
from tests.search.report.test_report import BASELINE, run_cli

# test-best and val-worst; val-best and test-worst; the baseline between: the two rankings disagree
DISAGREE = [
    T("base_00000", BASELINE, noise=0.30, val_noise=0.30),
    T("testbest_00001", {"loss.name": "combo", "loss.alpha": 3.0, "train.lr": 0.02}, noise=0.10, val_noise=0.60),
    T("valbest_00002", {"loss.name": "combo", "loss.alpha": 1.0, "train.lr": 0.005}, noise=0.40, val_noise=0.05),
]


def recomputed_runs(root) -> pd.DataFrame:
    """Per (trial, fold, seed) test MAE, RMSE and Pearson PC straight from the predictions."""
    p = read_table(root, "predictions")
    if "seed" not in p.columns:
        p = p.assign(seed=0)
    rows = []
    for (trial, fold, seed), g in p.groupby(["trial_id", "fold", "seed"]):
        e = g["y_pred"] - g["y_true"]
        rows.append({"trial_id": trial, "fold": fold, "seed": seed, "mae": e.abs().mean(), "rmse": np.sqrt((e**2).mean()), "pc": stats.pearsonr(g["y_true"], g["y_pred"])[0]})
    return pd.DataFrame(rows)


def md_row(md: str, start: str) -> list[str]:
    line = next(x for x in md.splitlines() if x.startswith(start))
    return [c.strip() for c in line.strip("|").split("|")]


# --- ranking by the objective -------------------------------------------------------------------


def test_on_val_ranks_by_validation_and_shows_the_test_figures(tmp_path, capsys):
    root = make_results(tmp_path / "val", DISAGREE, baseline=BASELINE, on="val", journal=False)
    assert run_cli(str(root), "--bootstrap", "50") == 0
    out = capsys.readouterr().out
    val = read_table(root, "folds").groupby("trial_id")["val_pc"].agg(["mean", "std"])
    test = recomputed_runs(root).groupby("trial_id")[["mae", "rmse", "pc"]].agg(["mean", "std"])
    assert val["mean"].idxmax() == "valbest_00002" and test[("pc", "mean")].idxmax() == "testbest_00001"  # they disagree

    board = pd.read_csv(root / "report" / "leaderboard.csv").set_index("trial_id")
    assert list(board.index) == list(val["mean"].sort_values(ascending=False).index)  # ranked by val PC, not by test PC
    np.testing.assert_allclose(board.loc[val.index, "val_pc_mean"], val["mean"], rtol=1e-12)
    np.testing.assert_allclose(board.loc[val.index, "val_pc_std"], val["std"], rtol=1e-12)
    for m in ("mae", "rmse", "pc"):
        np.testing.assert_allclose(board.loc[test.index, f"{m}_mean"], test[(m, "mean")], rtol=1e-9)

    # tables.md: the objective's column beside the test figures; the best is the val-best
    md = (root / "report" / "tables.md").read_text()
    header = md_row(md, "| # | trial |")
    assert header[5:9] == ["val PC", "MAE", "RMSE", "PC"]
    cells = md_row(md, "| 1 | valbest_00002 |")
    assert cells[2] == "best"
    b = "valbest_00002"
    assert cells[5] == f"{val.at[b, 'mean']:.4f} ± {val.at[b, 'std']:.4f}"
    assert cells[6:9] == [f"{test.at[b, (m, 'mean')]:.4f} ± {test.at[b, (m, 'std')]:.4f}" for m in ("mae", "rmse", "pc")]
    assert "Chosen on validation parts: trials are ranked by val_pc" in md

    # the paper-format row of loss.name = combo is chosen on val; its figures are the test ones
    paper = pd.read_csv(root / "report" / "paper.csv", keep_default_na=False, na_values=[""])
    combo = paper[(paper["source"] == "ours") & (paper["level"] == "combo")].iloc[0]
    assert combo["trial_id"] == b and combo["trials"] == 3
    assert combo["pc_mean"] == pytest.approx(test.at[b, ("pc", "mean")], rel=1e-9)
    assert combo["val_pc_mean"] == pytest.approx(val.at[b, "mean"], rel=1e-12)
    published = paper[paper["source"] == "published"]
    assert published["val_pc_mean"].isna().all() and (published["pc_mean"] > 0).all()

    # the ablation's best row: the val-best against the baseline, Δ val PC beside the test Δs
    ablation = pd.read_csv(root / "report" / "ablation.csv", keep_default_na=False, na_values=[""]).set_index("knob")
    folds = read_table(root, "folds").set_index(["trial_id", "fold", "seed"])
    assert ablation.at["best trial", "trial_id"] == b
    assert ablation.at["best trial", "d_val_pc"] == pytest.approx((folds.loc[b, "val_pc"] - folds.loc["base_00000", "val_pc"]).mean(), rel=1e-9)

    # the terminal: the val column and the val-best
    assert "val PC" in out and re.search(r"^best · trial: valbest_00002 · ", out, re.M)  # off a terminal: a line per row

    # the same trials (same draws) with objective.on: test: ranked by test PC, the test-best wins
    on_test = build_report(make_results(tmp_path / "test", DISAGREE, baseline=BASELINE, on="test", holdout=True, journal=False), draws=10)
    assert on_test.best == "testbest_00001"
    assert list(on_test.leaderboard.index) == list(test[("pc", "mean")].sort_values(ascending=False).index)


# --- the mark of a study that chose on the test folds -------------------------------------------


def _study(tmp_path, kind: str):
    if kind == "single":  # one configuration: nothing chosen
        return make_results(tmp_path / kind, [T("only_00000", {})], space={}, on="test", journal=False)
    on = {"on-test": "test", "on-val": "val", "old": None}[kind]  # old: study.yaml without objective.on, rows without val_*
    return make_results(tmp_path / kind, DISAGREE, baseline=BASELINE, on=on, journal=False)


@pytest.mark.parametrize("kind, marked", [("on-test", True), ("old", True), ("on-val", False), ("single", False)])
def test_selected_on_test_folds_is_marked_in_every_format(tmp_path, capsys, kind, marked):
    root = _study(tmp_path, kind)
    assert run_cli(str(root), "--bootstrap", "20") == 0
    out = capsys.readouterr().out
    report = root / "report"
    md, tex = (report / "tables.md").read_text(), (report / "tables.tex").read_text()
    csvs = {name: pd.read_csv(report / f"{name}.csv", keep_default_na=False, na_values=[""]) for name in ("leaderboard", "paper", "ablation", "pooled")}
    for t in csvs.values():
        assert "selected_on_test" in t.columns and (t["selected_on_test"].dtype == bool or not len(t))
    if not marked:
        assert "§" not in md and "§" not in out and r"\S" not in tex
        assert not any(t["selected_on_test"].any() for t in csvs.values())
        return
    best = "testbest_00001"  # the best by test PC, which the objective read
    assert "**§ Selected on test folds:**" in md and "§ Selected on test folds" in out
    assert "- § selected on test folds: chosen by mean pc on the test folds among 3 trials" in md
    assert md_row(md, "| 1 |")[1] == f"{best}§"
    assert re.search(rf"^best · trial: {best}§ · ", out, re.M)
    assert r"testbest\_00001$^{\S}$" in tex
    # every table's rows of the chosen trials carry it; the baseline, fixed in advance, does not
    assert not re.search(r"base_00000§", md)
    board = csvs["leaderboard"].set_index("trial_id")["selected_on_test"]
    assert board[best] and not board["base_00000"]
    for name in ("paper", "ablation", "pooled"):
        t = csvs[name]
        assert t.loc[t["trial_id"] == best, "selected_on_test"].all() and len(t.loc[t["trial_id"] == best]), name
        assert not t.loc[t["trial_id"] == "base_00000", "selected_on_test"].any(), name
    if kind == "old":
        assert "written before objective.on existed" in md


# --- seeds ----------------------------------------------------------------------------------------

SEEDED = [
    T("base_00000", BASELINE, noise=0.30),
    T("near_00001", {"loss.name": "l1", "loss.alpha": 2.0, "train.lr": 0.01}, noise=0.30),  # as noisy as the baseline
    T("far_00002", {"loss.name": "mse", "loss.alpha": 3.0, "train.lr": 0.02}, noise=0.12),  # far better
    T("part_00003", {"loss.name": "mse", "loss.alpha": 0.5, "train.lr": 0.02}, folds_done=2),  # 2 folds x 3 seeds: 6 rows, not 5 folds
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = make_results(tmp_path_factory.mktemp("seeded") / "toy", SEEDED, baseline=BASELINE, on="val", repeats=3, journal=False)
    assert run_cli(str(root), "--bootstrap", "50") == 0
    return root


def test_mean_and_std_run_over_folds_times_seeds(seeded):
    runs = recomputed_runs(seeded)
    assert sorted(runs["seed"].unique()) == [0, 1, 2]
    complete = runs[runs["trial_id"] != "part_00003"]
    expected = complete.groupby("trial_id").agg(n=("pc", "size"), pc_mean=("pc", "mean"), pc_std=("pc", "std"), mae_mean=("mae", "mean"), mae_std=("mae", "std"))
    assert set(expected["n"]) == {15}  # 5 folds x 3 seeds, one sample
    board = pd.read_csv(seeded / "report" / "leaderboard.csv").set_index("trial_id")
    for column in ("pc_mean", "pc_std", "mae_mean", "mae_std"):
        np.testing.assert_allclose(board.loc[expected.index, column], expected[column], rtol=1e-9, err_msg=column)
    assert board.loc[expected.index, "folds"].tolist() == [5, 5, 5] and board.loc[expected.index, "seeds"].tolist() == [3, 3, 3]
    # 2 folds with 3 seeds each is 6 rows, but 2 of 5 folds: not complete
    assert board.at["part_00003", "status"] == "INCOMPLETE" and board.at["part_00003", "folds"] == 2
    md = (seeded / "report" / "tables.md").read_text()
    assert md_row(md, "| 1 |")[4] == "5/5 ×3" and "3 seeds per fold" in md


def test_paired_tests_pair_folds_with_their_shared_seeds_averaged(tmp_path):
    """The baseline lost one run (fold 2, seed 1) and near_00001 has an extra one (fold 1, seed 7):
    each fold's value is the mean over the seeds both ran on it (fold 2: seeds 0 and 2; the extra
    seed 7 counts nowhere), and the tests pair the 5 folds, not the 14 (fold, seed) runs: a
    fold's seeds share its images, they are not independent replicates."""
    root = make_results(tmp_path / "pairs", SEEDED[:3], baseline=BASELINE, on="val", repeats=3, journal=False)
    results = ResultsDir(root)
    base = pd.read_parquet(root / "folds.parquet" / "base_00000-fold2.parquet")
    results.write("folds", "base_00000-fold2", base[base["seed"] != 1])
    extra = pd.read_parquet(root / "folds.parquet" / "near_00001-fold1.parquet").iloc[[0]].assign(seed=7, pc=0.5, mae=0.9, rmse=1.0)
    results.write("folds", "compacted-extra", extra)
    report = build_report(root, draws=10)
    folds = read_table(root, "folds")
    row = report.ablation.set_index("trial_id").loc["near_00001"]
    assert row["k"] == 5 and row["runs"] == 14
    for m in ("pc", "mae", "rmse"):
        x, y = [], []  # by hand: per fold, the mean over the seeds both trials ran
        for fold in sorted(folds["fold"].unique()):
            a = {int(r["seed"]): float(r[m]) for _, r in folds[(folds["trial_id"] == "near_00001") & (folds["fold"] == fold)].iterrows()}
            b = {int(r["seed"]): float(r[m]) for _, r in folds[(folds["trial_id"] == "base_00000") & (folds["fold"] == fold)].iterrows()}
            seeds = sorted(set(a) & set(b))
            assert seeds == ([0, 2] if fold == 2 else [0, 1, 2])
            x.append(sum(a[s] for s in seeds) / len(seeds))
            y.append(sum(b[s] for s in seeds) / len(seeds))
        x, y = np.array(x), np.array(y)
        assert len(x) == 5
        assert row[f"d_{m}"] == pytest.approx(np.mean(x - y), rel=1e-9)
        assert row[f"t_p_{m}"] == pytest.approx(stats.ttest_rel(x, y).pvalue, rel=1e-9)
        assert row[f"wilcoxon_p_{m}"] == pytest.approx(stats.wilcoxon(x - y).pvalue, rel=1e-9)


def test_seed_spread_of_the_baseline_flags_differences_inside_it(seeded):
    runs = recomputed_runs(seeded)
    base = runs[runs["trial_id"] == "base_00000"]
    per_seed = base.groupby("seed")["pc"].mean()  # each seed's mean test PC over the 5 folds
    spread = float(np.std(per_seed.to_numpy(), ddof=1))
    ablation = pd.read_csv(seeded / "report" / "ablation.csv", keep_default_na=False, na_values=[""])
    np.testing.assert_allclose(ablation["seed_spread"], spread, rtol=1e-9)
    assert set(ablation["seeds"]) == {3}
    pc = runs.set_index(["trial_id", "fold", "seed"])["pc"]
    d = {trial: (pc.loc[trial] - pc.loc["base_00000"]).mean() for trial in ("near_00001", "far_00002")}  # paired on (fold, seed)
    for trial, diff in d.items():
        np.testing.assert_allclose(ablation.loc[ablation["trial_id"] == trial, "d_pc"], diff, rtol=1e-9)
    assert abs(d["near_00001"]) < spread < abs(d["far_00002"])  # the data as built: one difference inside the noise, one outside
    flags = ablation.set_index("trial_id")["within_seed_noise"]
    assert flags[["near_00001"]].tolist() == [True] and flags[["far_00002"]].tolist() == [False, False]  # best trial, best mse
    assert flags[["base_00000"]].isna().all()  # the reference against itself: no flag
    md = (seeded / "report" / "tables.md").read_text()
    assert f"seed-to-seed spread is {spread:.4f} PC (sample std over its 3 seeds" in md
    near_line = md_row(md, "| loss.name = l1 | near_00001 |")
    far_line = md_row(md, "| loss.name = mse | far_00002 |")
    assert "within seed noise" in near_line and "within seed noise" not in far_line
    assert f"{spread:.4f}" in near_line and f"{spread:.4f}" in far_line


def test_without_repeats_the_seed_spread_is_said_to_be_unknown_once(tmp_path):
    root = make_results(tmp_path / "one_seed", SEEDED[:3], baseline=BASELINE, on="val", journal=False)
    report = build_report(root, draws=10)
    write_report(report, root / "report", formats=("md", "csv"))
    ablation = pd.read_csv(root / "report" / "ablation.csv", keep_default_na=False, na_values=[""])
    assert ablation["seed_spread"].isna().all() and ablation["within_seed_noise"].isna().all()
    md = (root / "report" / "tables.md").read_text()
    assert md.count("Seed noise: not known") == 1 and "within seed noise" not in md


def test_the_bootstrap_resamples_an_image_with_all_its_runs():
    """Three runs per image: each draw takes images with replacement, every run of a drawn image."""
    from fbp.metrics import pearson
    from search.report._stats import bootstrap_pc_difference

    rng = np.random.default_rng(5)
    images = np.repeat(np.arange(30), 3)  # rows: image 0 three times, then image 1, ...
    y = rng.uniform(1, 5, 30)[images]
    a, b = y + rng.normal(0, 0.3, 90), y + rng.normal(0, 0.5, 90)
    shuffled = rng.permutation(90)  # the rows' order does not matter, their image does
    got = bootstrap_pc_difference(y[shuffled], a[shuffled], b[shuffled], draws=200, seed=3, groups=images[shuffled].astype(str))
    draws = np.random.default_rng(3)
    names = np.unique(images.astype(str))  # the order images are numbered in: sorted names
    rows_of = {int(n): np.flatnonzero(images == int(n)) for n in names}
    plain = []
    for i in draws.integers(0, 30, size=(200, 30)):
        rows = np.concatenate([rows_of[int(names[j])] for j in i])
        plain.append(pearson(y[rows], a[rows]) - pearson(y[rows], b[rows]))
    low, high = np.quantile(plain, [0.025, 0.975])
    assert got["n"] == 90 and got["ci_low"] == pytest.approx(low, abs=1e-10) and got["ci_high"] == pytest.approx(high, abs=1e-10)


def test_one_split_prints_no_p_value_and_says_why(tmp_path):
    """60/40 x 3 seeds: one fold, so no fold-paired test; the footnote says the seeds are not
    independent replicates and a Wilcoxon p over 3 seeds could not go below 0.25. The image
    bootstrap's PC difference is the pooled PC difference, recomputed here with numpy."""
    root = make_results(tmp_path / "split", SEEDED[:3], baseline=BASELINE, on="val", repeats=3, k=1, test_share=0.4, protocol="60-40", journal=False)
    assert run_cli(str(root), "--bootstrap", "50") == 0
    ablation = pd.read_csv(root / "report" / "ablation.csv")
    assert (ablation["k"] == 1).all() and ablation[[f"{t}_p_{m}" for t in ("t", "wilcoxon") for m in ("pc", "mae", "rmse")]].isna().all().all()
    md = (root / "report" / "tables.md").read_text()
    assert "No p-value: one split and 3 seeds" in md and "not independent replicates of the comparison" in md
    assert "a two-sided Wilcoxon p over 3 seeds could not go below 2/2^3 = 0.25" in md
    preds = read_table(root, "predictions")
    key = ["fold", "seed", "image"]
    for _, row in ablation[ablation["trial_id"] != ablation["reference"]].iterrows():
        both = preds[preds["trial_id"] == row["trial_id"]].merge(preds[preds["trial_id"] == row["reference"]], on=key)
        pc = [np.corrcoef(both["y_true_x"], both[f"y_pred_{s}"])[0, 1] for s in ("x", "y")]
        assert row["oof_n"] == len(both) and row["oof_d_pc"] == pytest.approx(pc[0] - pc[1], rel=1e-9)
        assert row["oof_ci_low"] <= row["oof_d_pc"] <= row["oof_ci_high"]
