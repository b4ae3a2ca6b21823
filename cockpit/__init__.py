"""Shared pieces of the Streamlit cockpit: run picker, story opener, figures, explanations, job controls.

Pages import these and stay thin. Nothing here runs long work: jobs go through engine.jobs.
"""
