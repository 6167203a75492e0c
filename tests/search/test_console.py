"""Output without a terminal (a pipe, a log): plain lines no wider than COLUMNS (80 when
unset), no padding, one fact a line. A rich table laid out off a terminal padded every row to
the widest: `fbp-search knobs | less` showed 836-column lines, whatever COLUMNS said."""

import io
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from rich.table import Table

from search.console import print_table, wrap

REPO = Path(__file__).parents[2]


RUN_ENDS = "\0 exit "  # a line no command prints (a NUL: splitlines breaks at most other control characters): where a run ends, then its exit code

PIPED_RUNS = {  # name: (COLUMNS or None for unset, the command's arguments)
    "knobs-80": (None, ["knobs"]),
    "knobs-60": ("60", ["knobs"]),
    "validate-80": (None, ["validate", "studies/quickstart.yaml", "--offline"]),
    "validate-60": ("60", ["validate", "studies/quickstart.yaml", "--offline"]),
    "validate-one-configuration-60": ("60", ["validate", "studies/paper.yaml", "--offline"]),
}


@pytest.fixture(scope="module")
def piped() -> dict[str, list[str]]:
    """Each of PIPED_RUNS as `fbp-search ARGS` with stdout to a pipe, in a process of its own;
    each run's lines. One interpreter runs them all (torch's import is paid once), each
    command's console built afresh under its own COLUMNS, as in a process of its own."""
    driver = (
        "import os\n"
        "from search.cli import main\n"
        f"for columns, args in {list(PIPED_RUNS.values())!r}:\n"
        "    os.environ.pop('COLUMNS', None)\n"
        "    os.environ.update({'COLUMNS': columns} if columns else {})\n"
        f"    print({RUN_ENDS!r} + str(main(args)), flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    run = subprocess.run([sys.executable, "-c", driver], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    outputs, lines = [], []
    for line in run.stdout.splitlines():
        if line.startswith(RUN_ENDS):
            assert line == RUN_ENDS + "0", f"{list(PIPED_RUNS)[len(outputs)]} exited {line[len(RUN_ENDS):]}: {run.stderr}"
            outputs.append(lines)
            lines = []
        else:
            lines.append(line)
    assert len(outputs) == len(PIPED_RUNS) and not lines, run.stdout[-2000:]
    return dict(zip(PIPED_RUNS, outputs))


def assert_plain(lines: list[str], width: int) -> None:
    assert lines
    too_wide = [line for line in lines if len(line) > width]
    assert not too_wide, f"{len(too_wide)} lines wider than {width}, e.g. {too_wide[0]!r}"
    padded = [line for line in lines if line != line.rstrip()]
    assert not padded, f"trailing spaces: {padded[0]!r}"


@pytest.mark.parametrize("width", [80, 60])
def test_knobs_piped_is_plain_lines_a_knob_each(piped, width):
    lines = piped[f"knobs-{width}"]
    assert_plain(lines, width)
    assert max(map(len, lines)) > width - 5  # each run's own COLUMNS was the width it filled
    assert lines[0].endswith("knobs of a trial config")
    # each knob starts a line of its own; its continuation lines are indented
    alpha = next(i for i, line in enumerate(lines) if line.startswith("loss.alpha · "))
    assert lines[alpha].startswith("loss.alpha · type: float · default: 2.0 · allowed: >= 0")
    assert lines[alpha + 1].startswith("  ") or lines[alpha + 1].startswith("loss.beta · ")


@pytest.mark.parametrize("width", [80, 60])
def test_validate_piped_is_plain_lines(piped, width):
    lines = piped[f"validate-{width}"]
    assert_plain(lines, width)
    assert "loss.alpha · distribution: float [0.0, 4.0]" in lines
    assert "objective: max pc on val" in lines and "baseline points: 1" in lines


def test_validate_of_one_configuration_gives_each_command_a_line(piped):
    lines = piped["validate-one-configuration-60"]
    assert_plain(lines, 60)
    assert lines[-4:] == ["one configuration, no search. Train it here with:", "  fbp-search train studies/paper.yaml",
                          "or as one trial on Ray with:", "  fbp-search run studies/paper.yaml"]


def test_a_table_off_a_terminal_is_a_line_per_row():
    out = io.StringIO()
    console = Console(file=out, width=44, highlight=False, soft_wrap=True)
    table = Table(title="search space of t")
    for c in ("path", "distribution", "when"):
        table.add_column(c)
    table.add_row("loss.alpha", "float [0.0, 4.0]", "")
    table.add_row("train.schedule.step_size", "int [10, 100] step 10", "train.schedule.name in ['step']")
    print_table(console, table)
    assert out.getvalue().splitlines() == [
        "search space of t",
        "loss.alpha · distribution: float [0.0, 4.0]",  # 44 columns; an empty cell says nothing
        "train.schedule.step_size · distribution: int",
        "  [10, 100] step 10 · when:",
        "  train.schedule.name in ['step']",
    ]


def test_wrap_breaks_at_spaces_and_keeps_a_long_word_whole():
    assert wrap("short", 10) == ["short"]
    assert wrap("  one two three four", 12) == ["  one two", "    three", "    four"]
    path = "/a/path/longer/than/the/width.yaml"
    assert wrap(f"see {path} now", 20) == ["see", f"  {path}", "  now"]


# --- a running set's progress, off a terminal ---------------------------------------------------


def _set_progress(console: Console, names: list[str]):
    from search.spec import validate_spec
    from search.studyset import Member, SetProgress
    from search.trainable import StudyContext

    members = {}
    for name in names:
        spec = validate_spec({"name": name, "data": {"dataset": "synthetic"}, "model": {"backbone": "test_resnet", "pretrained": False},
                              "search": {"num_trials": 40, "space": {"loss.alpha": {"float": [0.0, 4.0]}}}}, f"{name}.yaml")
        members[name] = Member(spec, StudyContext(name, "0" * 16, f"/results/{name}"), None, (1, 2))
    progress = SetProgress(console, members)
    progress._polled = time.monotonic() + 1e9  # no boards to read: no Ray here
    return progress


def test_a_sets_progress_is_a_line_per_study_within_the_width():
    from search.studyset import STUDY_KEY

    names = [f"ablation_discretization_{i:02d}" for i in range(17)]
    out = io.StringIO()
    console = Console(file=out, width=80, highlight=False, soft_wrap=True)
    progress = _set_progress(console, names)
    trials = [SimpleNamespace(trial_id=f"{n}_{j}", config={STUDY_KEY: n}, status=status, last_result={"folds_done": 2, "val_pc": 0.5 + j / 100})
              for n in names for j, status in enumerate(["TERMINATED", "TERMINATED", "RUNNING", "ERROR"])]
    progress.on_step_end(0, trials)
    lines = out.getvalue().splitlines()
    assert_plain(lines, 80)
    assert lines[0].startswith("set of 17 studies · ")
    assert lines[1] == "  ablation_discretization_00 3/40 (1 running) 1 failed best val_pc 0.5100"
    assert lines[18:] == [f"  {n}_2: starting" for n in names]  # then a line per running trial


def test_a_progress_line_and_its_times_are_written_one_way_for_train_and_a_trial_log():
    from fbp.records import TrainProgress
    from search.board import describe
    from search.console import duration, progress_line

    assert [duration(s) for s in (0, 59.9, 61, 3600 * 25 + 62)] == ["0:00:00", "0:00:59", "0:01:01", "25:01:02"]
    p = TrainProgress("epoch", 4, 2, 3, 7, 10, 40, 40, 0.81234, 512.4, 75.0, 3725.0, test={"mae": 0.25, "rmse": 0.3, "pc": 0.875})
    assert progress_line(p) == "fold 4 (2/3)  epoch 7/10  loss 0.8123  test MAE 0.2500 RMSE 0.3000 PC 0.8750  512 images/s  0:01:15 elapsed  ~1:02:05 left"
    state = {"event": "epoch", "fold": 1, "fold_position": 1, "folds_total": 5, "epoch": 7, "epochs": 200, "seconds_left": 95.0}
    assert describe(state) == "fold 1/5 epoch 7/200, ~0:01:35 left"


def test_a_sets_progress_keeps_each_studys_counts_through_tunes_hooks(tmp_path):
    from search.studyset import STUDY_KEY

    out = io.StringIO()
    console = Console(file=out, width=120, highlight=False, soft_wrap=True)
    progress = _set_progress(console, ["a", "b"])
    trial = {(n, j): SimpleNamespace(trial_id=f"{n}_{j}", config={STUDY_KEY: n}, status="RUNNING", last_result={}) for n in "ab" for j in range(2)}
    progress.on_step_end(0, list(trial.values()))  # counted once: 2 running in each
    trial["a", 0].status, trial["a", 0].last_result = "TERMINATED", {"folds_done": 2, "val_pc": 0.61}
    progress.on_trial_complete(1, [], trial["a", 0])
    trial["a", 1].status, trial["a", 1].last_result = "TERMINATED", {"folds_done": 1, "val_pc": 0.7}  # pruned: not a best
    progress.on_trial_complete(2, [], trial["a", 1])
    trial["b", 1].status, trial["b", 1].error_file = "ERROR", tmp_path / "error.txt"
    trial["b", 1].error_file.write_text("Traceback ...\nValueError: boom\n")
    progress.on_trial_error(3, [], trial["b", 1])
    progress.on_trial_start(4, [], trial["b", 0])  # a restarted trial is counted once
    out.truncate(0)
    out.seek(0)
    progress.on_step_end(5, [])  # the counts come from the hooks, not from the list of trials
    assert out.getvalue().splitlines()[1:4] == ["  a 2/40 best val_pc 0.6100", "  b 1/40 (1 running) 1 failed", "  b_0: starting"]
