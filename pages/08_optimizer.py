"""Optimizer (RL): placeholder until its issue lands. It says what the page will show and never fakes data."""
import streamlit as st

st.title("Optimizer (RL)")
st.info("This chapter is being built. Nothing on this page is made up: it will fill in with real results once "
        "its engine component lands.", icon=":material/construction:")
st.markdown("""An agent that turns the flow's knobs (utilisation, placer density, clock) to improve a reward built from wirelength, timing and routability. This page will show its episodes as they run, the reward curve, and the best configuration found, with a button to run the flow with it.""")
