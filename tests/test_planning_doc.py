"""docs/planning.md is what scripts/planning_doc.py prints: the planner's tables and every figure
the prose quotes come from `dualmind plan` runs, so a change to the planner, a recipe or the
benchmark figures it cites (benchmarks/RESULTS.md) cannot leave the doc behind silently."""
from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@cache
def _script():
    path = REPO / "scripts" / "planning_doc.py"
    spec = importlib.util.spec_from_file_location("planning_doc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_planning_md_is_what_the_generator_prints():
    doc = (REPO / "docs" / "planning.md").read_text(encoding="utf-8")
    assert _script().render() == doc, \
        "docs/planning.md is stale: run `python scripts/planning_doc.py --write` (and --png)"


def test_every_field_of_the_template_is_filled():
    script = _script()
    text = script.render()
    assert "{{" not in text and "}}" not in text
    assert "| core positions (symbols) | 199B |" not in script.TEMPLATE.read_text(), \
        "the summary table's figures come from the planner, not from the template"
