"""The chapters' page files in one place, and links between them that work inside the app's navigation."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent.parent / "pages"


def link(file: str, label: str, icon: str | None = None) -> None:
    """A link to another chapter (`file` is the name under pages/). Silent outside the navigation (AppTest)."""
    try:
        st.page_link(st.Page(PAGES / file), label=label, icon=icon)
    except Exception:  # noqa: BLE001 - StreamlitPageNotFoundError when the page runs on its own
        pass
