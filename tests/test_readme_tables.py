"""The README's results tables are what ``bench/readme_tables.py`` generates from the JSON files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import readme_tables  # noqa: E402


def test_readme_tables_match_their_json():
    found = readme_tables.check()
    assert found == [], "README differs; run python bench/readme_tables.py\n" + "\n".join(found)


def test_every_table_is_in_the_readme_once():
    text = readme_tables.README.read_text(encoding="utf-8")
    names = [m.group("name") for m in readme_tables.BLOCK.finditer(text)]
    assert sorted(names) == sorted(readme_tables.TABLES)


def test_an_edited_cell_is_reported():
    text = readme_tables.README.read_text(encoding="utf-8")
    block = readme_tables.render_block("meld_text")
    row = next(line for line in block.splitlines() if "`frozen_gcn`" in line)
    cell = row.split(" | ")[3]  # test wF1
    edited_row = row.replace(cell, "99.99 ± 0.01", 1)
    edited = text.replace(row, edited_row, 1)
    assert edited != text
    found = readme_tables.problems(edited)
    assert found, "an edited table cell went unnoticed"
    diff = "\n".join(found)
    assert f"-{edited_row}" in diff and f"+{row}" in diff
    # and the generator puts the JSON's value back
    assert readme_tables.render_readme(edited) == text


def test_a_figure_outside_the_tables_is_reported():
    text = readme_tables.README.read_text(encoding="utf-8")
    marker = "### Minority emotions"
    edited = text.replace(marker, "The graph adds 1.4 points.\n\n" + marker, 1)
    assert any("1.4 points" in p for p in readme_tables.problems(edited))


def test_a_missing_block_is_reported():
    text = readme_tables.README.read_text(encoding="utf-8")
    block = readme_tables.render_block("graph_speed")
    assert any("table:graph_speed" in p for p in readme_tables.problems(text.replace(block, "")))


@pytest.mark.parametrize("name", sorted(readme_tables.TABLES))
def test_renderers_tolerate_missing_keys(name, tmp_path):
    stem, render = readme_tables.TABLES[name]
    assert isinstance(render({}), str)
    assert isinstance(render({"rows": [{}]}), str)
    (tmp_path / f"{stem}.json").write_text(json.dumps({"rows": [{"variant": "x"}]}))
    block = readme_tables.render_block(name, tmp_path)
    assert f"bench/results/{stem}.json" in block and "revision not recorded" in block


def test_source_line_of_a_new_result():
    line = readme_tables.source_line(
        "graph_speed",
        {
            "git_revision": "0123456789abcdef" * 2 + "01234567",
            "dirty": True,
            "started": "2026-11-30T05:00:57+00:00",
            "threads": {"torch": 1, "cpu_count": 2},
            "rows": [],
        },
    )
    assert "`bench/results/graph_speed.json`" in line
    assert "`0123456789` with uncommitted changes" in line
    assert "started 2026-11-30 05:00" in line and "1 torch thread" in line


def test_merged_rows_are_named_in_the_source_line():
    rows = [{"variant": "a"}, {"variant": "b", "date": "2026-11-23 19:30"}]
    line = readme_tables.source_line("meld_text", {"rows": rows})
    assert "Rows from 2 invocations" in line and "`b` 2026-11-23 19:30" in line


def test_a_sweep_result_renders_its_trials_and_its_best_once():
    data = {
        "select_metric": "accuracy",
        "space": "bench/spaces/x.yaml",
        "config": "configs/x.yaml",
        "seeds": [0],
        "sampler": "grid",
        "pruning": False,
        "space_spec": {"params": {"model": {}, "model.dropout": {}}},
        "trials": [
            {
                "trial": 1,
                "state": "COMPLETE",
                "dev": 80.9,
                "epochs": 12,
                "params": {"model": '{"name": "mlp"}', "model.dropout": 0.3},
            },
            {
                "trial": 0,
                "state": "PRUNED",
                "dev": None,
                "epochs": 3,
                "params": {"model": '{"name": "gcn"}', "model.dropout": 0.5},
            },
        ],
        "best": {"trial": 1, "dev": 80.9, "test": 79.1},
    }
    lines = readme_tables.sweep_optuna(data).splitlines()
    assert lines[0] == "| trial | `model` | `model.dropout` | dev accuracy | state | epochs |  |"
    assert lines[2] == "| 0 | `{name: gcn}` | 0.5 | – | pruned | 3 |  |"
    assert lines[3] == "| 1 | `{name: mlp}` | 0.3 | 80.90 | complete | 12 | **best** |"
    assert "Best on dev: trial 1 (dev 80.90)" in lines[-1]
    assert "scored once after the sweep: 79.10" in lines[-1]
