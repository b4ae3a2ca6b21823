"""Shared by the AppTest page tests."""
from __future__ import annotations

from pathlib import Path


def app_page(path: Path, run_id: str | None):
    """The page (or app) at ``path`` run once by AppTest, with ``?run=run_id`` when one is given."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(path), default_timeout=60)
    if run_id is not None:
        at.query_params["run"] = run_id
    at.run()
    return at
