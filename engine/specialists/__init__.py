"""Specialists: a chat that routes each question to a phase specialist, grounds the answer in retrieved
documentation and real engine runs, and uses Ollama or a local Hugging Face model when one is there."""
