"""Custom Streamlit components of the cockpit: plain HTML + JS folders served as they are (no npm build)."""
