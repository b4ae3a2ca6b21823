"""CDA Cockpit: the router. One page per chapter of the story from RTL to GDSII, then the research chapters.

Run with `make run` (or `streamlit run cockpit/app.py`). Pages are thin: they read run folders and start or
cancel jobs; the work runs in worker processes (engine.jobs).
"""
from __future__ import annotations

import logging

import streamlit as st

from cockpit import runpicker, story
from cockpit.nav import PAGES
from engine.errors import EngineError

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="CDA Cockpit", page_icon=":material/memory:", layout="wide",
                   initial_sidebar_state="expanded")


def page(file: str, title: str, icon: str, **kw) -> st.Page:
    # url_path: the chapter's name without its number (/placement?run=...), stable for links and bookmarks
    return st.Page(PAGES / file, title=title, icon=icon, url_path=file.split(".")[0].split("_", 1)[-1], **kw)


chapters = {
    "The story: RTL to GDSII": [
        st.Page(PAGES / "01_design.py", title="1 · Design", icon=":material/edit_note:", default=True),
        page("02_synthesis.py", "2 · Synthesis", ":material/account_tree:"),
        page("03_floorplan.py", "3 · Floorplan", ":material/grid_on:"),
        page("04_placement.py", "4 · Placement", ":material/scatter_plot:"),
        page("05_routing.py", "5 · Routing & congestion", ":material/route:"),
        page("06_timing.py", "6 · Timing", ":material/timer:"),
        page("07_gdsii.py", "7 · GDSII", ":material/layers:"),
    ],
    "Research": [
        page("08_optimizer.py", "Optimizer (RL)", ":material/tune:"),
        page("09_specialists.py", "Specialists (chat)", ":material/forum:"),
        page("10_training.py", "Training", ":material/model_training:"),
        page("11_benchmarks.py", "Benchmarks", ":material/leaderboard:"),
    ],
    "Present and compare": [
        page("demo.py", "Demo mode", ":material/slideshow:"),
        page("compare.py", "Compare runs", ":material/compare:"),
    ],
}

# Less empty space above the title: on a projector every line counts.
st.markdown("<style>.block-container{padding-top:2.2rem;padding-bottom:2rem}</style>", unsafe_allow_html=True)
nav = st.navigation(chapters)
runpicker.sync_url()
with st.sidebar:
    st.markdown("### CDA Cockpit")
    st.caption("Verilog to GDSII with real open tools, told as a story.")
    runpicker.picker(st.sidebar)
try:
    nav.run()
    story.closer(nav.url_path)  # the chapter's takeaway and the link to the next one
except EngineError as exc:  # a run deleted or damaged halfway through a page: one box, the app keeps working
    st.error(exc.message, icon=":material/error:")
