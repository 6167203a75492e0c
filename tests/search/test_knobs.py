"""`fbp-search knobs`: a knob found from its dotted name alone; without a terminal a knob starts a line (tests/search/test_console.py: no wider than COLUMNS)."""

import re

from fbp.config import knobs
from search.cli import main


def _entries(capsys) -> dict[str, dict[str, str]]:
    """Without a terminal (capsys): the title, then a knob a line, `path · type: T · default: D
    · allowed: A · what it does: ...` (empty cells left out), continued on indented lines."""
    lines = capsys.readouterr().out.splitlines()
    assert "knobs of a trial config" in lines[0]
    entries: list[str] = []
    for line in lines[1:]:
        if line.startswith("  "):
            entries[-1] += " " + line.strip()
        else:
            entries.append(line)
    out = {}
    for entry in entries:
        path, _, rest = entry.partition(" · ")
        parts = re.split(r"(?:^| · )(type|default|allowed|what it does): ", rest)
        out[path] = {"default": "", "allowed": "", **dict(zip(parts[1::2], parts[2::2]))}
    return out


def test_a_knob_line_shows_type_default_bound_and_docstring(capsys):
    assert main(["knobs", "loss.alpha"]) == 0
    entries = _entries(capsys)
    assert entries == {"loss.alpha": {"type": "float", "default": "2.0", "allowed": ">= 0", "what it does": "combo: weight of L1(regression, score). Paper: 2."}}


def test_a_filter_narrows_to_the_names_containing_it_and_every_knob_is_one_entry(capsys):
    assert main(["knobs", "schedule"]) == 0
    shown = list(_entries(capsys))
    assert shown == [k.path for k in knobs() if "schedule" in k.path]
    assert shown[0] == "train.schedule" and "train.schedule.pct_start" in shown

    assert main(["knobs"]) == 0  # everything
    cells = _entries(capsys)
    assert list(cells) == [k.path for k in knobs()]
    for k in knobs():  # printed as they are: no markup read into them
        assert (cells[k.path]["type"], cells[k.path]["allowed"], cells[k.path]["what it does"]) == (k.type, k.allowed, k.doc), k.path
    assert (cells["train.augment.scale"]["type"], cells["train.augment.scale"]["default"]) == ("tuple[float, float]", "[1.0, 1.0]")
    assert (cells["data.root"]["type"], cells["data.root"]["default"]) == ("str | None", "null")
    assert (cells["train.augment.hflip"]["type"], cells["train.augment.hflip"]["default"]) == ("bool", "false")
    assert (cells["loss"]["type"], cells["loss"]["default"]) == ("section", "") and cells["data.dataset"]["default"] == "scut-fbp5500"


def test_no_match_is_one_error_line(capsys):
    assert main(["knobs", "loss.alhpa"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: knobs: no dotted name contains 'loss.alhpa'; `fbp-search knobs` lists them all"
