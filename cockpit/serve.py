"""Starting the cockpit (`streamlit run cockpit/app.py`) on a free port over a run store of its own, and waiting
until it serves: the tests' app fixture and the cockpit benchmarks start it this one way. No streamlit import here."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(runs_dir: Path, log: Path, port: int | None = None, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """(process, url) of a headless cockpit serving ``runs_dir`` (output to ``log``); not yet known to answer."""
    port = port or free_port()
    full_env = {**os.environ, "CDA_RUNS_DIR": str(runs_dir), "HF_HUB_OFFLINE": "1", **(env or {})}
    streamlit = Path(sys.executable).with_name("streamlit")
    with open(log, "w") as out:
        proc = subprocess.Popen([str(streamlit), "run", "cockpit/app.py", "--server.headless", "true",
                                 "--server.port", str(port), "--server.address", "127.0.0.1",
                                 "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                                cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


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
