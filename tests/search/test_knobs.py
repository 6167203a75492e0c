"""`fbp-search knobs`: a knob found from its dotted name alone, its line whole without a terminal."""

from fbp.config import knobs
from search.cli import main


def _lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_a_knob_line_shows_type_default_bound_and_docstring(capsys):
    assert main(["knobs", "loss.alpha"]) == 0
    (line,) = [line for line in _lines(capsys) if "loss.alpha" in line and "containing" not in line]
    cells = [cell.strip() for cell in line.strip("│ ").split("│")]
    assert cells == ["loss.alpha", "float", "2.0", ">= 0", "combo: weight of L1(regression, score). Paper: 2."]


def test_a_filter_narrows_to_the_names_containing_it_and_every_row_is_one_whole_line(capsys):
    assert main(["knobs", "schedule"]) == 0
    shown = [line.split("│")[1].strip() for line in _lines(capsys) if line.startswith("│")]
    assert shown == [k.path for k in knobs() if "schedule" in k.path]
    assert shown[0] == "train.schedule" and "train.schedule.pct_start" in shown

    assert main(["knobs"]) == 0  # everything: no docstring wrapped onto a second line
    lines = [line for line in _lines(capsys) if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in lines] == [k.path for k in knobs()]
    cells = {k.path: [cell.strip() for cell in line.strip("│ ").split("│")] for k, line in zip(knobs(), lines, strict=True)}
    for k in knobs():  # printed as they are: no markup read into them
        path, type_, default, allowed, doc = cells[k.path]
        assert (path, type_, allowed, doc) == (k.path, k.type, k.allowed, k.doc)
    assert cells["train.augment.scale"][1:3] == ["tuple[float, float]", "[1.0, 1.0]"]
    assert cells["data.root"][1:3] == ["str | None", "null"] and cells["train.augment.hflip"][1:3] == ["bool", "false"]
    assert cells["loss"][1:3] == ["section", ""] and cells["data.dataset"][2] == "scut-fbp5500"


def test_no_match_is_one_error_line(capsys):
    assert main(["knobs", "loss.alhpa"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: knobs: no dotted name contains 'loss.alhpa'; `fbp-search knobs` lists them all"
