"""The cockpit under hostile or broken input, through Streamlit's AppTest on the real pages and the real app:
a `?run=` that is not a run id, a damaged run.json, a run deleted while a page shows it, a damaged index. Each
gives one error box and the rest of the app keeps working: never a Streamlit exception screen."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from page_helpers import app_page
from streamlit.testing.v1 import AppTest

from engine.errors import EngineError
from engine.runs import Run, RunStore

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "cockpit" / "app.py"
COUNTER = ROOT / "assets" / "designs" / "counter" / "counter.v"
# The pages that show the selected run (the research pages list their own runs).
RUN_PAGES = sorted([*(ROOT / "pages").glob("0[1-7]_*.py"), ROOT / "pages" / "demo.py"])
HOSTILE = {"traversal": "../../etc/passwd", "long": "x" * 10_000, "markup": "<script>alert(1)</script>",
           "dotdot": "20260101-000000-a..b", "spaces": "a run", "nul": "abc\x00def"}


def _no_exception(at: AppTest, what: str) -> None:
    assert not at.exception, f"{what} raised: {[e.value for e in at.exception]}"


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


@pytest.mark.parametrize("page", RUN_PAGES, ids=[p.stem for p in RUN_PAGES])
def test_hostile_run_query_gives_one_error_box(runs_dir, page):
    for name, value in HOSTILE.items():
        at = app_page(page, value)
        _no_exception(at, f"{page.name} with {name}")
        errors = _errors(at)
        assert len(errors) == 1, (name, errors)
        assert "not a valid run id" in errors[0] and len(errors[0]) < 300
        assert "<script>" not in errors[0] and "etc/passwd" not in errors[0]  # the value is not echoed
        assert at.title, f"{page.name} lost its title"
        assert at.query_params.get("run") is None  # dropped, so the next page does not inherit it


@pytest.mark.parametrize("page", RUN_PAGES, ids=[p.stem for p in RUN_PAGES])
def test_damaged_and_deleted_runs_give_one_error_box(runs_dir, page):
    root, _ = runs_dir
    store = RunStore(root)
    damaged = store.create({}, "broken")
    (damaged.dir / "run.json").write_text('{"status": "done", "config": {')
    deleted = store.create({}, "gone")
    shutil.rmtree(deleted.dir)
    for rid, expect in ((damaged.id, "is damaged"), (deleted.id, "(deleted?)")):
        at = app_page(page, rid)
        _no_exception(at, f"{page.name} with {rid}")
        errors = _errors(at)
        assert len(errors) == 1 and expect in errors[0] and rid in errors[0], errors
    shutil.rmtree(damaged.dir)


def test_run_deleted_while_the_page_shows_it(runs_dir, tmp_path):
    root, good = runs_dir
    copy = root / f"{good}-copy"
    shutil.copytree(root / good, copy)
    for page in ("02_synthesis.py", "03_floorplan.py", "01_design.py"):
        at = app_page(ROOT / "pages" / page, copy.name)
        _no_exception(at, page)
        assert not _errors(at), _errors(at)
        assert not [i for i in at.info if "No run is selected" in i.value], page  # it showed the run
        shutil.rmtree(copy)
        at.run()  # the next rerun (a click, a poll) finds the folder gone
        _no_exception(at, f"{page} after the delete")
        assert [e for e in _errors(at) if "no longer exists" in e or "(deleted?)" in e], _errors(at)
        shutil.copytree(root / good, copy)
    shutil.rmtree(copy)


def test_the_app_drops_a_hostile_run_and_shows_the_newest(runs_dir):
    _, good = runs_dir
    for name, value in HOSTILE.items():
        at = app_page(APP, value)
        _no_exception(at, f"app with {name}")
        sidebar = [e.value for e in at.sidebar.error]
        assert len(sidebar) == 1 and "not a valid run id" in sidebar[0] and "newest" in sidebar[0]
        assert at.query_params["run"] == good  # the newest readable run is shown instead
        assert at.title


def test_the_app_skips_a_damaged_newest_run_and_survives_errors_midapp_page(runs_dir, monkeypatch):
    root, good = runs_dir
    damaged = RunStore(root).create({}, "broken-newest")
    (damaged.dir / "run.json").write_bytes(b"\x00\x01\x02")
    try:
        at = app_page(APP, None)
        _no_exception(at, "app")
        assert at.query_params["run"] == good  # not the damaged one, although it is newer
        assert any("DAMAGED" in o for o in at.sidebar.selectbox[0].options)  # listed, so it can be seen
        # The run vanishes halfway through a page (between the picker and a later read): one box.
        real = Run.metrics

        def vanish(self):
            if self.id == good:
                raise EngineError(f"Run {good} no longer exists (its folder was deleted).")
            return real(self)

        monkeypatch.setattr(Run, "metrics", vanish)
        at = app_page(APP, good)
        _no_exception(at, "app with a run vanishing mid-page")
        assert any("no longer exists" in e for e in _errors(at)), _errors(at)
    finally:
        shutil.rmtree(damaged.dir)


def test_the_app_rebuilds_a_garbage_index_and_says_so(runs_dir):
    root, good = runs_dir
    index = root / "index.sqlite"
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (root / extra).unlink(missing_ok=True)
    index.write_bytes(b"this is not a database" * 100)
    at = app_page(APP, None)
    _no_exception(at, "app over a garbage index")
    assert any("rebuilt" in i.value for i in at.sidebar.info), [i.value for i in at.sidebar.info]
    assert at.query_params["run"] == good


def test_the_app_says_when_the_runs_folder_is_unusable(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path / "file" / "runs"))
    at = app_page(APP, None)
    _no_exception(at, "app over an unusable runs folder")
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "not a folder" in errors[0]
