"""The placement player (cockpit/components): its frame bundle round-trips, and in a real browser (Debian's
chromium) a finished run's replay starts by itself, advances at the pace asked for, and keeps one colour scale
for the whole run while the picture changes."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from cockpit import figures
from cockpit.components import player

ROOT = Path(__file__).resolve().parent.parent
BOX = (10.0, 20.0, 410.0, 330.0)


def test_frame_bundle_round_trips_within_quantisation():
    rng = np.random.default_rng(3)
    n = 5000
    f = {"iteration": 40, "hpwl": 1234.5, "overflow": 0.42, "cells": np.arange(n, dtype=np.int32),
         "x": rng.uniform(BOX[0], BOX[2], n).astype(np.float32), "y": rng.uniform(BOX[1], BOX[3], n).astype(np.float32),
         "density": rng.uniform(0, 2.0, (32, 24)), "rudy": rng.uniform(0, 9.0, (32, 24))}
    f["x"][0], f["y"][0] = BOX[0] - 5, BOX[3] + 5          # outside the box: clipped onto its edge
    pick = figures.subsample(n, 3000)
    enc = player.encode_frame(f, pick, BOX, rudy_capacity=6.0)
    assert len(enc["x"]) < 3000 * 2 * 1.4                     # 2 bytes a coordinate, base64
    dec = player.decode_frame(enc, BOX, rudy_capacity=6.0)
    assert (dec["iteration"], dec["hpwl"], dec["overflow"]) == (40, 1234.5, 0.42)
    step_x = (BOX[2] - BOX[0]) / 65535
    want_x = np.clip(f["x"][pick], BOX[0], BOX[2])
    np.testing.assert_allclose(dec["x"], want_x, atol=step_x / 2 + 1e-4)
    np.testing.assert_allclose(dec["y"], np.clip(f["y"][pick], BOX[1], BOX[3]),
                               atol=(BOX[3] - BOX[1]) / 65535 / 2 + 1e-4)
    assert np.abs(dec["x"] - want_x).max() > 0                 # it is quantised, not passed through
    dens = figures.HEAT_SCALES["density"]
    np.testing.assert_allclose(dec["density"], np.clip(f["density"], dens.zmin, dens.zmax),
                               atol=(dens.zmax - dens.zmin) / 510 + 1e-9)
    rudy = figures.HEAT_SCALES["rudy"]                          # demand / capacity, saturating at its zmax
    np.testing.assert_allclose(dec["rudy"], np.clip(f["rudy"] / 6.0, rudy.zmin, rudy.zmax),
                               atol=(rudy.zmax - rudy.zmin) / 510 + 1e-9)
    # without a capacity the raw demand goes on its own scale
    raw = player.decode_frame(player.encode_frame(f, pick, BOX), BOX)
    demand = figures.HEAT_SCALES["rudy_demand"]
    np.testing.assert_allclose(raw["rudy"], np.clip(f["rudy"], demand.zmin, demand.zmax),
                               atol=(demand.zmax - demand.zmin) / 510 + 1e-9)
    # the thinned cells are the same on every frame (the picture does not flicker)
    np.testing.assert_array_equal(pick, figures.subsample(n, 3000))


def test_legal_density_map_matches_a_cell_by_cell_reference():
    rng = np.random.default_rng(5)
    core, shape = (0.0, 0.0, 80.0, 60.0), (6, 8)
    x, y = rng.uniform(-5, 75, 40), rng.uniform(-5, 55, 40)
    w, h = rng.uniform(1, 12, 40), np.full(40, 10.0)
    got = player.density_map(x, y, w, h, core, shape)
    ref = np.zeros(shape)
    bw, bh = 10.0, 10.0
    for i in range(40):
        for r in range(shape[0]):
            for c in range(shape[1]):
                ox = max(0.0, min(x[i] + w[i], (c + 1) * bw) - max(x[i], c * bw))
                oy = max(0.0, min(y[i] + h[i], (r + 1) * bh) - max(y[i], r * bh))
                ref[r, c] += ox * oy / (bw * bh)
    np.testing.assert_allclose(got, ref, atol=1e-9)


@pytest.fixture(scope="module")
def placed_store(tmp_path_factory):
    """A run store (as $CDA_RUNS_DIR) with one counter run through placement: (root, run id)."""
    from engine.designs import resolve
    from engine.flow.flow import run_flow
    from engine.runs import RunStore

    root = tmp_path_factory.mktemp("player-runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("CDA_RUNS_DIR", str(root))
    cfg = resolve("counter").flow_config()
    run = run_flow(cfg, RunStore(root), until="place")
    assert run.status == "done", run.info().get("error")
    yield root, run.id
    mp.undo()


def test_placement_page_sends_the_whole_run_once_and_the_stages(placed_store):
    import json

    from page_helpers import app_page

    from engine.runs import RunStore

    root, run_id = placed_store
    run = RunStore(root).get(run_id)
    at = app_page(ROOT / "pages" / "04_placement.py", run_id)
    assert not at.exception, [e.value for e in at.exception]
    (comp,) = at.get("component_instance")
    args = json.loads(comp.proto.json_args)
    files = sorted((run.dir / "03-place" / "frames").glob("*.npz"))
    assert (args["start"], args["total"], len(args["frames"])) == (0, len(files), len(files))
    assert args["done"] and not args["live"] and args["base"]["drawn"] == args["base"]["cells"]
    m = run.metrics()["place"]
    assert args["stage"]["hpwl_legal"] == m["placement__hpwl__legal"] and args["stage"]["hpwl"] == m["placement__hpwl"]
    assert [f["it"] for f in args["frames"]] == [int(np.load(p)["iteration"]) for p in files]
    # the stages table: global -> legal -> detailed, with the run's own numbers
    table = next(t.value for t in at.table if "HPWL (µm)" in getattr(t.value, "columns", []))
    assert list(table.index) == ["global placement", "legalisation (Tetris + Abacus)",
                                 "detailed placement (swap, reorder)"]
    # a later send within the fragment carries only the new frames (none here), without the static part
    later = player.bundle(run, start=len(files) - 2, with_stage=False)
    assert later["start"] == len(files) - 2 and len(later["frames"]) == 2 and "base" not in later
    assert "stage" not in later


# ------------------------------------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def placed(cockpit_app) -> str:
    """A finished counter run with placement frames in the app's store (reused when one is there)."""
    from engine.designs import resolve
    from engine.flow.flow import run_flow
    from engine.runs import RunStore

    store = RunStore(cockpit_app.runs_dir)
    for row in store.list(kind="flow"):
        run = store.get(row["id"])
        if row["status"] == "done" and len(list((run.dir / "03-place" / "frames").glob("*.npz"))) >= 6:
            return run.id
    cfg = resolve("counter").flow_config()
    run = run_flow(cfg, store, until="place")
    assert run.status == "done", run.info().get("error")
    return run.id


@pytest.fixture(scope="module")
def player_frame(browser, cockpit_app, placed):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1300})
    pg = ctx.new_page()
    pg.set_default_timeout(90_000)
    pg.goto(f"{cockpit_app.url}/placement?run={placed}")
    pg.get_by_role("heading").first.wait_for()
    frame = pg.frame_locator("iframe[title*='placement_player']")
    frame.locator("#player[data-mode='replay']").wait_for()
    yield pg, frame
    ctx.close()


def _attr(frame, name: str) -> str:
    return frame.locator("#player").get_attribute(name)


def _set(frame, selector: str, value) -> None:
    frame.locator(selector).evaluate(
        "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input', {bubbles: true})); }", value)


@pytest.mark.browser
def test_replay_starts_by_itself_and_advances_at_the_pace_asked(player_frame, placed, cockpit_app):
    pg, frame = player_frame
    n = int(_attr(frame, "data-frames"))
    frames = len(list((cockpit_app.runs_dir / placed / "03-place" / "frames").glob("*.npz")))
    assert n == frames + 2  # every placer frame, then the legalised and the detailed stage
    # The counter places in well under a second: the replay starts on its own, at presenter pace, to the end.
    deadline = time.monotonic() + 60
    seen = {_attr(frame, "data-frame")}
    stages = []
    while _attr(frame, "data-stage") != "detailed":
        assert time.monotonic() < deadline, f"the replay did not reach the detailed stage (saw frames {seen})"
        if not stages or stages[-1] != _attr(frame, "data-stage"):
            stages.append(_attr(frame, "data-stage"))
        seen.add(_attr(frame, "data-frame"))
        time.sleep(0.2)
    assert len(seen) >= 3, seen
    assert stages[-1] == "legal", stages  # the legalised stage was on screen on its own, before the detailed one
    # Ask for 0.3 s a frame from the first frame: about 6-7 frames in 2 s (behaviour, with room for a busy machine).
    _set(frame, "#pace", 0.3)
    _set(frame, "#slider", 0)
    assert _attr(frame, "data-frame") == "0" and _attr(frame, "data-playing") == "0"
    frame.get_by_role("button", name="Play").click()
    t0, f0 = time.monotonic(), int(_attr(frame, "data-frame"))
    time.sleep(2.0)
    moved, dt = int(_attr(frame, "data-frame")) - f0, time.monotonic() - t0
    assert 4 <= moved <= int(dt / 0.3) + 2, f"{moved} frames in {dt:.2f} s at 0.3 s a frame"
    frame.get_by_role("button", name="Pause").click()
    held = _attr(frame, "data-frame")
    time.sleep(0.8)
    assert _attr(frame, "data-frame") == held  # paused means paused
    pg.screenshot(path=str(ROOT / "tests" / "screenshots" / "04_placement_player.png"), full_page=True)


@pytest.mark.browser
def test_colour_scale_is_fixed_while_the_maps_change(player_frame):
    _, frame = player_frame
    want = figures.HEAT_SCALES["density"]

    def look():
        legend = frame.locator("#lg-density")
        return ((legend.get_attribute("data-zmin"), legend.get_attribute("data-zmax"), legend.inner_text()),
                frame.locator("#c-density").evaluate("c => c.toDataURL()"))

    _set(frame, "#slider", 0)
    first_legend, first_map = look()
    _set(frame, "#slider", int(_attr(frame, "data-frames")) - 3)   # the last global frame (then legal, detailed)
    last_legend, last_map = look()
    assert first_map != last_map                       # the density map did change (cells spread)
    assert first_legend == last_legend                 # on one scale, labelled the same
    assert (float(first_legend[0]), float(first_legend[1])) == (want.zmin, want.zmax)
    assert "fixed scale" in first_legend[2] and "1 = full" in first_legend[2]
    rudy = frame.locator("#lg-rudy").get_attribute("data-quantity")
    assert rudy in ("rudy", "rudy_demand")


@pytest.mark.browser
def test_live_frames_play_as_they_come_then_the_replay_starts_by_itself(player_frame, placed, cockpit_app):
    """The page's fragment sends new frames in batches; fed the same way (Streamlit's render message, as the
    page sends it), the player follows them live, glides between them, then replays once placement ends."""
    from engine.runs import RunStore

    pg, _ = player_frame
    full = player.bundle(RunStore(cockpit_app.runs_dir).get(placed))
    frames = full["frames"]
    fr = next(f for f in pg.frames if "placement_player" in f.url)

    def send(start: int, part: list, **extra) -> None:
        args = {**{k: v for k, v in full.items() if k not in ("stage", "curves", "autoplay", "base")},
                "run_key": "live-test", "start": start, "frames": part, "total": start + len(part), **extra}
        if start == 0:
            args["base"] = full["base"]
        fr.evaluate("a => window.postMessage({type: 'streamlit:render', args: a}, '*')", args)

    k = 0
    while k < len(frames) - 2:
        send(k, frames[k:k + 2], live=True, done=False)
        k += 2
        pg.wait_for_timeout(500)
        assert fr.evaluate("() => window.__player.mode") == "live"
    shown = fr.evaluate("() => [window.__player.idx, window.__player.advances.length, window.__player.draws.length]")
    assert shown[0] >= 2, shown                                   # it follows the frames as they come
    send(k, frames[k:], live=False, done=True, autoplay=True, stage=full["stage"], curves=full.get("curves"))
    deadline = time.monotonic() + 20
    while fr.evaluate("() => window.__player.mode + (window.__player.playing ? ':playing' : '')") != "replay:playing":
        assert time.monotonic() < deadline, "the replay did not start by itself after live placement"
        pg.wait_for_timeout(100)
    live = fr.evaluate("() => window.__player.drawModes.filter(m => m === 'live').length")
    moved = fr.evaluate("() => window.__player.advanceModes.filter(m => m === 'live').length")
    assert moved >= len(frames) - 3, moved                         # every live frame was on screen
    assert live > moved, (live, moved)                             # and the cells glided between them
