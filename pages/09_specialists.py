"""Specialists (chat): placeholder until its issue lands. It says what the page will show and never fakes data."""
import streamlit as st

st.title("Specialists (chat)")
st.info("This chapter is being built. Nothing on this page is made up: it will fill in with real results once "
        "its engine component lands.", icon=":material/construction:")
st.markdown("""A chat with specialists (placement, timing, routing) that answer from this project's documents and from engine runs they start themselves. This page will say which model answered, or that none was available and the answer came from retrieval and runs.""")
