"""A trial timeout stops the external tool that hangs, not only the Python side: a fake Yosys that is a wrapper
script running its work in a child process (as tool launchers do) must leave no process behind."""
from __future__ import annotations

import os
import signal
import time

from engine.rl.env import design_config
from engine.rl.reward import RewardConfig
from engine.rl.tune import run_trial

HUNG_TOOL = """#!/bin/bash
sleep 300 &
echo "$$ $!" > "$FAKE_PIDS"
wait
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped; only its entry is left
    except OSError:
        return False


def test_trial_timeout_kills_a_hung_tool_and_its_children(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "yosys"
    fake.write_text(HUNG_TOOL)
    fake.chmod(0o755)
    pids_file = tmp_path / "pids"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PIDS", str(pids_file))

    _, cfg = design_config("counter")
    timeout_s = 3.0
    ctx = {"base_config": cfg.to_dict(), "knobs": ["floorplan.utilization"], "base_knobs": {}, "baseline": {},
           "reward": {}, "stages": ["place"], "runs_root": str(tmp_path / "runs"), "parent": None, "label": "",
           "cancel_file": None, "trial_timeout_s": timeout_s, "reuse": False}
    t0 = time.time()
    pids: list[int] = []
    try:
        last = run_trial({"floorplan.utilization": 0.5}, ctx)
        took = time.time() - t0
        pids = [int(p) for p in pids_file.read_text().split()]  # the hung tool did start (wrapper, child)
        assert len(pids) == 2
        assert last["status"] == "failed" and "timed out" in last["error"]
        assert last["reward"] == RewardConfig().failure_reward
        assert took < timeout_s + 5.0, took  # stopped at the deadline, not when the tool would have ended
        deadline = time.time() + 5.0
        while any(_alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if _alive(p)], "the hung tool (or its child) outlived the trial timeout"
        assert "(in place)" in last["error"] and last["run_id"]  # the trial's flow run is kept, stopped in synth
    finally:
        for p in pids:  # a failing run of this test leaves no `sleep 300` behind
            if _alive(p):
                os.kill(p, signal.SIGKILL)
