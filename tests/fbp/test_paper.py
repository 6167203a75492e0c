"""fbp.paper against the paper's own text: every figure a paper row holds is printed in its
table, every other figure is labelled as the README's."""

from pathlib import Path

import pytest

from fbp import paper
from fbp.config import set_path, validate_config
from fbp.metrics import METRICS

PAPER_TEXT = Path(__file__).parents[1] / "fixtures" / "paper" / "comboloss-tables.md"
"""The paper's Tables 1-5 and reference list, copied verbatim from its text."""

ROW_COUNTS = {1: 10, 2: 7, 3: 8, 4: 5, 5: 4}
"""Rows per table, counted in the paper."""


@pytest.fixture(scope="module")
def tables() -> dict[int, list[list[str]]]:
    """Table number -> its printed lines split into cells: the header, then one per row."""
    lines = PAPER_TEXT.read_text(encoding="utf-8").splitlines()
    out: dict[int, list[list[str]]] = {}
    for number in paper.TABLE_NUMBERS:
        start = next(i for i, line in enumerate(lines) if line.startswith(f"Table {number}. "))
        block = []
        for line in lines[start + 1:]:
            if line.strip():
                block.append(line.split("\t"))
            elif block:  # the blank line after the rows (the one after the caption opens)
                break
        out[number] = block
    return out


def test_captions_are_printed(tables):
    text = PAPER_TEXT.read_text(encoding="utf-8")
    for n, t in paper.TABLES.items():
        assert f"Table {n}. {t.caption}\n" in text
        assert all(r.caption == t.caption and (r.dataset, r.protocol) == (t.dataset, t.protocol) for r in t.rows)


def test_metric_columns_are_the_printed_ones(tables):
    label = {m.label: name for name, m in METRICS.items()}
    for n, t in paper.TABLES.items():
        header = tables[n][0]
        assert header[0] in ("Model", "Loss Function")
        assert tuple(label[h] for h in header[1:]) == t.metrics


def test_every_paper_figure_is_printed_on_its_rows_line(tables):
    for n, t in paper.TABLES.items():
        printed = tables[n][1:]
        assert len(t.rows) == len(printed) == ROW_COUNTS[n], f"Table {n}"
        # in the paper's order, each line the method with its reference, then the figures
        for row, cells in zip(t.rows, printed):
            assert cells == [row.name, *(row.printed[m] for m in t.metrics)], f"Table {n}: {row.name}"
            assert set(row.printed) == set(t.metrics)


def test_references_are_the_papers(tables):
    text = PAPER_TEXT.read_text(encoding="utf-8")
    for ref in paper.REFERENCES:
        assert f"- {ref} " in text
    cited = {r.ref for r in paper.ROWS if r.ref}
    assert cited == set(paper.REFERENCES)  # no short name for a reference no row cites


def test_readme_rows_are_labelled_and_apart():
    in_tables = [r for t in paper.TABLES.values() for r in t.rows]
    assert all(r.source == "paper" and r.table in paper.TABLE_NUMBERS for r in in_tables)
    for r in paper.README_ROWS:
        assert r.source == "readme" and r.table is None and r.where == "README"
        assert r.caption.startswith("README") and paper.README in r.citation
        assert all(r is not p for p in in_tables)
    assert paper.ROWS == (*in_tables, *paper.README_ROWS)


def test_headline_and_row_counts():
    row = paper.TABLES[3].rows[-1]
    assert (row.method, row.mae, row.rmse, row.pc) == ("ComboLoss (Ours)", 0.2050, 0.2704, 0.9199)
    assert {n: len(t.rows) for n, t in paper.TABLES.items()} == ROW_COUNTS
    # kept as printed: Tables 1 and 2 print PC only, at the precision printed
    region_scat, pi_cnn = paper.TABLES[1].rows[5:7]
    assert (region_scat.printed, pi_cnn.printed) == ({"pc": "0.83"}, {"pc": "0.87"})
    assert paper.TABLES[2].rows[-1].printed == {"pc": "0.503"} and paper.TABLES[2].rows[-1].mae is None


def test_paper_wins_over_the_readme():
    table4 = {r.config["loss.name"]: r.pc for r in paper.TABLES[4].rows}
    assert table4 == {"l1": 0.9030, "mse": 0.9008, "smooth_l1": 0.9064, "smooth_huber": 0.9052, "combo": 0.9117}
    # no README row on the 60/40 split has a paper row's configuration
    readme = [r.config for r in paper.published("scut-fbp5500", "60-40", source="readme")]
    for r in (*paper.TABLES[4].rows, *paper.TABLES[5].rows):
        assert r.config not in readme, r.name


def test_configs_are_trial_configs():
    for r in paper.ROWS:
        if r.ref and r.source == "paper" and r.table in (1, 2, 3):
            assert r.config == {}, r.name  # another author's method
            continue
        assert r.config, r.name
        raw: dict = {"data": {"dataset": r.dataset, "protocol": r.protocol}}
        for path, value in r.config.items():
            set_path(raw, path, value)
        config = validate_config(raw, source=r.name)
        if r.config["loss.name"] == "combo" and r.source == "paper":
            assert (config.loss.alpha, config.loss.beta, config.loss.gamma) == (2.0, 1.0, 1.0)
    without = [r for r in paper.README_ROWS if "without" in r.method]
    assert [r.config["loss.ce_weighted"] for r in without] == [False]


def test_published_by_dataset_and_protocol():
    assert paper.published("scut-fbp5500", "5fold") == list(paper.TABLES[3].rows)
    assert paper.published("scut-fbp5500", "60-40") == [*paper.TABLES[4].rows, *paper.TABLES[5].rows]
    assert paper.published("scut-fbp5500", "5fold", source="readme") == []
    assert len(paper.published("scut-fbp5500", "60-40", source="readme")) == 8
    assert paper.published("hotornot", "5split") == list(paper.TABLES[2].rows)
    assert paper.published("synthetic", "5fold") == []
    with pytest.raises(ValueError, match="source must be"):
        paper.published("scut-fbp", "5fold", source="arxiv")  # type: ignore[arg-type]


def test_a_row_checks_itself():
    with pytest.raises(ValueError, match="a paper row needs a table"):
        paper.PublishedRow("paper", None, "", "scut-fbp", "5fold", "x", "", {"pc": "0.9"})
    with pytest.raises(ValueError, match="not in REFERENCES"):
        paper.PublishedRow("paper", 1, "", "scut-fbp", "5fold", "x", "[99]", {"pc": "0.9"})
    with pytest.raises(ValueError, match="must be a number as printed"):
        paper.PublishedRow("readme", None, "", "scut-fbp", "5fold", "x", "", {"pc": "0,9"})
