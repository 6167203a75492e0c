"""`fbp-search paper RESULTS_ROOT`: the ComboLoss paper in one document, from a folder that holds
one results directory per study (`TABLE_STUDIES`, `ABLATIONS`, `OTHER_STUDIES`, and `BEYOND`:
studies beyond the paper run into the same root), without torch or Ray.

    fbp-search paper results
      -> results/paper/{paper.md, paper.tex, figure2.png, ablation_<name>.png, studies.csv,
         table1.csv .. table5.csv, table4_ordering.csv, table5_ordering.csv, figure2.csv,
         ablation_<name>.csv, other_studies.csv, beyond_backbones.csv, later_results.csv}

Tables 1-5 in the paper's layout (its published rows, then ours beside them with the
difference; Tables 4 and 5 with paired tests of ComboLoss against each row), Figure 2 (the 6
best and 6 worst predicted faces of Table 3's ComboLoss run), the ablations, and beyond the
paper ComboLoss against L1 on modern backbones. Every row of Tables 1-5 has two arms, "as
written" and "as published" (`ARMS`). A study not run
yet is listed with the command that runs it.

In Python: `build_paper(root)` gives the numbers (`search.paper._build.Paper`), `write_paper`
writes them.
"""

from __future__ import annotations

from pathlib import Path

from search.paper._build import ABLATIONS, ALPHA, BEYOND, FIGURE_N, FIGURE_TABLE, OTHER_STUDIES, RUN_ALL, STUDIES, TABLE_STUDIES, Paper, build_paper, run_command

__all__ = ["ABLATIONS", "ALPHA", "BEYOND", "FORMATS", "OTHER_STUDIES", "RUN_ALL", "STUDIES", "TABLE_STUDIES", "Paper", "build_paper", "run_command", "write_paper"]

FORMATS = ("md", "tex", "csv", "png")


def write_paper(paper: Paper, out: Path, formats=FORMATS) -> list[Path]:
    """Write the chosen formats into `out`; returns the files written."""
    from search.paper import _plots, _render
    from search.report._render import write_csvs, write_text

    out.mkdir(parents=True, exist_ok=True)
    parts = _render.blocks(paper)
    written: list[Path] = []
    if "png" in formats:
        title = f"{TABLE_STUDIES[FIGURE_TABLE]}, trial {paper.figure2.trial_id}: the {FIGURE_N} most (top) and least (bottom) accurately predicted faces; green true, red predicted score"
        written += _plots.draw_all(paper.figure2, paper.ablations, out, title)
    drawn = {p.name for p in written} if "png" in formats else {p.name for p in out.glob("*.png")}
    if "csv" in formats:
        written = write_csvs(out, [b.section for b in parts if b.section is not None]) + written
    if "md" in formats:
        written.insert(0, write_text(out / "paper.md", _render.markdown(paper, parts, drawn)))
    if "tex" in formats:
        written.insert(1 if "md" in formats else 0, write_text(out / "paper.tex", _render.latex(paper, parts, drawn)))
    return written
