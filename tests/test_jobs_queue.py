"""Jobs: real worker processes, the SQLite queue, cancel, and workers that die."""

import textwrap
import time

import pytest

from engine.jobs import JobQueue, JobsConfig
from engine.runs import RunStore

TARGETS = textwrap.dedent('''
    import os, signal, time
    from engine.errors import EngineError

    def quick(run, progress, cancelled):
        for i in range(3):
            progress((i + 1) / 3, f"step {i}")
        (run.dir / "out.txt").write_text("ok")

    def slow(run, progress, cancelled):
        # a well-behaved long job: checks cancel between iterations
        for i in range(600):
            if cancelled():
                from engine.errors import Cancelled
                raise Cancelled()
            time.sleep(0.05)

    def stubborn(run, progress, cancelled):
        time.sleep(60)  # a tool that never looks at the CANCEL file

    def dies(run, progress, cancelled):
        os.kill(os.getpid(), signal.SIGKILL)

    def bad_input(run, progress, cancelled):
        raise EngineError("top module 'nope' not found in the design")

    def bug(run, progress, cancelled):
        return 1 / 0
''')


@pytest.fixture
def queue(tmp_path, monkeypatch):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "jobtargets.py").write_text(TARGETS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "mods"))
    store = RunStore(tmp_path / "runs")
    return JobQueue(store, JobsConfig(max_workers=1, poll_s=0.1, cancel_grace_s=1.0))


def _until(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_quick_job_runs_in_its_own_process(queue):
    run = queue.store.create({}, "demo")
    st = queue.submit(run.id, "jobtargets:quick")
    assert st.state in ("queued", "running")
    assert queue.wait(run.id, timeout_s=30) == "done"
    assert run.status == "done"
    assert (run.dir / "out.txt").read_text() == "ok"
    fractions = [e["fraction"] for e in run.events() if e["kind"] == "progress"]
    assert fractions[-1] == pytest.approx(1.0)
    assert (run.dir / "worker.log").exists()
    with pytest.raises(ValueError, match="Unknown job kind"):
        queue.submit(run.id, "no-such-kind")


def test_queue_positions_and_cancel(queue):
    a, b, c = (queue.store.create({}, f"d{i}") for i in range(3))
    queue.submit(a.id, "jobtargets:slow")
    assert _until(lambda: queue.status(a.id).state == "running")
    queue.submit(b.id, "jobtargets:slow")
    queue.submit(c.id, "jobtargets:slow")
    assert queue.status(b.id).position == 1 and queue.status(c.id).position == 2
    assert [j.run_id for j in queue.jobs()] == [a.id, b.id, c.id]
    # cancel the queued one: it leaves the queue and the next moves up
    queue.cancel(b.id)
    assert queue.wait(b.id, timeout_s=20) == "cancelled"
    assert b.status == "cancelled"
    assert queue.status(c.id).position == 1
    # cancel the running one: it stops at a check point, then c starts
    queue.cancel(a.id)
    assert queue.wait(a.id, timeout_s=20) == "cancelled"
    assert a.status == "cancelled"
    assert _until(lambda: queue.status(c.id).state == "running")
    queue.cancel(c.id)
    assert queue.wait(c.id, timeout_s=20) == "cancelled"


def test_stubborn_job_is_killed_after_grace(queue):
    run = queue.store.create({}, "stub")
    queue.submit(run.id, "jobtargets:stubborn")
    assert _until(lambda: queue.status(run.id).state == "running")
    queue.cancel(run.id)
    assert queue.wait(run.id, timeout_s=20) == "cancelled"
    assert run.status == "cancelled"


def test_dead_worker_marks_run_failed_with_log(queue):
    run = queue.store.create({}, "dies")
    queue.submit(run.id, "jobtargets:dies")
    assert queue.wait(run.id, timeout_s=20) == "failed"
    info = run.info()
    assert info["status"] == "failed" and "worker.log" in info["error"]


def test_errors_become_messages(queue):
    r1 = queue.store.create({}, "bad")
    r2 = queue.store.create({}, "bug")
    queue.submit(r1.id, "jobtargets:bad_input")
    queue.submit(r2.id, "jobtargets:bug")
    assert queue.wait(r1.id, timeout_s=20) == "failed"
    assert queue.wait(r2.id, timeout_s=20) == "failed"
    assert r1.info()["error"] == "top module 'nope' not found in the design"
    assert "ZeroDivisionError" in r2.info()["error"]
    assert "Traceback" in (r2.dir / "worker.log").read_text()
    assert "Traceback" not in r2.info()["error"]


def test_cli_submit_wait_list_cancel(queue, capsys):
    from engine.cli import main

    run = queue.store.create({}, "cli")
    root = str(queue.store.root)
    assert main(["--runs-dir", root, "jobs", "submit", run.id, "--kind", "jobtargets:quick", "--wait"]) == 0
    assert f"{run.id}: done" in capsys.readouterr().out
    assert main(["--runs-dir", root, "jobs", "list"]) == 0
    assert "no jobs" in capsys.readouterr().out
    assert main(["--runs-dir", root, "jobs", "cancel", "no-such-run"]) == 1
    assert "no run 'no-such-run'" in capsys.readouterr().err
