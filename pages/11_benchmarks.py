"""Benchmarks: placeholder until its issue lands. It says what the page will show and never fakes data."""
import streamlit as st

st.title("Benchmarks")
st.info("This chapter is being built. Nothing on this page is made up: it will fill in with real results once "
        "its engine component lands.", icon=":material/construction:")
st.markdown("""Placement problems with truth computed by the engine, and how models and the placer score on them. This page will show the score table, per-problem results and plots across models.""")
