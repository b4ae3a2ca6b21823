"""Shared fixtures."""
from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from cockpit.serve import start, wait_healthy

ROOT = Path(__file__).resolve().parent.parent


# ---- the cockpit app served on a free local port (browser tests) -------------------------------------------
@dataclass
class CockpitApp:
    url: str
    runs_dir: Path
    log: Path


def cancel_jobs(runs: Path) -> None:
    """Cancel every job of the run store and kill its worker's process group: jobs outlive the app by design, a
    test's own must not outlive the test."""
    from engine.jobs import JobQueue
    from engine.runs import RunStore

    queue = JobQueue(RunStore(runs))
    for job in queue.jobs():
        queue.cancel(job.run_id)
        if job.pid:
            try:
                os.killpg(job.pid, 9)
            except OSError:
                pass


@contextlib.contextmanager
def served_app(runs: Path, log: Path, timeout_s: float = 60):
    """`streamlit run cockpit/app.py` on a free port over ``runs``; stopped, with its jobs, on leaving."""
    proc, url = start(runs, log)
    if not wait_healthy(url, proc, timeout_s=timeout_s):
        proc.kill()
        pytest.fail(f"the cockpit did not start; log:\n{log.read_text()[-3000:]}")
    try:
        yield CockpitApp(url=url, runs_dir=runs, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        cancel_jobs(runs)


@pytest.fixture(scope="session")
def cockpit_app(tmp_path_factory):
    """`streamlit run cockpit/app.py` on a free port with its own run store; stopped (with its jobs) at the end."""
    runs = tmp_path_factory.mktemp("app-runs")
    with served_app(runs, runs.parent / "streamlit.log") as app:
        yield app


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-component-update", "--disable-sync", "--no-first-run",
                                    "--disable-quic"])
        yield b
        b.close()


@contextlib.contextmanager
def browser_page(browser, height: int = 1100, timeout_ms: int = 60_000):
    """A fresh page in its own context, 1500 px wide (the one way the browser tests open a page)."""
    ctx = browser.new_context(viewport={"width": 1500, "height": height})
    pg = ctx.new_page()
    pg.set_default_timeout(timeout_ms)
    try:
        yield pg
    finally:
        ctx.close()


# ---- the cockpit's pages through Streamlit's AppTest, over a run store of their own ---------------------------
@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """A run store (as $CDA_RUNS_DIR) holding one real counter run through floorplan: (root, run id). Module scope:
    each test module gets its own store, so a module that damages runs does not disturb another."""
    from engine.designs import resolve
    from engine.flow.flow import run_flow
    from engine.runs import RunStore

    root = tmp_path_factory.mktemp("page-runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("CDA_RUNS_DIR", str(root))
    cfg = resolve("counter").flow_config()
    run = run_flow(cfg, RunStore(root), until="floorplan")
    assert run.status == "done"
    yield root, run.id
    mp.undo()

