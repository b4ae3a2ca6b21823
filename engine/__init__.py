"""CDA Cockpit engine: the headless core (flow, placer, RL, specialists, training, benchmarks).

Never imports streamlit."""

__version__ = "0.1.0"
