"""The three-line chapter opener every page starts with: what this step does, what just happened in this
run (its numbers), and what to look at now."""
from __future__ import annotations

import streamlit as st


def opener(title: str, does: str, happened: str | None, look: str) -> None:
    """Render a chapter's title and its three lines. `happened` None means the run has not reached this step."""
    st.title(title)
    with st.container(border=True):
        st.markdown(f"**What this step does** — {does}")
        st.markdown(f"**What just happened** — {happened or 'this run has not reached this step yet.'}")
        st.markdown(f"**What to look at** — {look}")


def fmt(value, digits: int = 3, unit: str = "") -> str:
    """A number for a sentence: thousands separators, a few significant digits, its unit."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        a = abs(value)
        if a >= 1000 or (a >= 100 and value.is_integer()):
            text = f"{value:,.0f}"
        elif a >= 100:
            text = f"{value:,.1f}"
        elif a == 0:
            text = "0"
        else:
            text = f"{value:.{digits}g}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()
