"""Documents generated from the code stay in step with it."""

from __future__ import annotations

from pathlib import Path

from rosterd import config

REPO = Path(__file__).resolve().parents[2]


def test_the_config_reference_is_generated_from_config_py() -> None:
    committed = (REPO / "docs" / "reference" / "config.md").read_text()
    assert committed == config.reference_markdown(), (
        "docs/reference/config.md is stale: run 'make docs' and commit the result"
    )
