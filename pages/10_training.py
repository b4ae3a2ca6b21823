"""Training: placeholder until its issue lands. It says what the page will show and never fakes data."""
import streamlit as st

st.title("Training")
st.info("This chapter is being built. Nothing on this page is made up: it will fill in with real results once "
        "its engine component lands.", icon=":material/construction:")
st.markdown("""Engine-grounded training data, LoRA fine-tuning of small models and hyper-parameter search. This page will show the data sets built from runs, the training curves and the exported models.""")
