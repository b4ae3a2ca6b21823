"""Waiting for a started cockpit (`streamlit run cockpit/app.py`) to answer: the tests' app fixture and the
player measurement start one and must know when it serves. No streamlit import here."""
from __future__ import annotations

import subprocess
import time
import urllib.request


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> bool:
    """True once ``url``'s Streamlit health endpoint answers 200; False when ``proc`` exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.3)
