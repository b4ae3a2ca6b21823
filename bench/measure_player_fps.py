"""How fast the placement player really plays, in headless chromium, on a generated design (default 10k cells).

Not a test: a measurement. It makes a run store with one run, starts the cockpit on it, opens the Placement
chapter in Debian's chromium, and then runs the real placer (engine.place, one torch thread) in a worker process
that writes frames and progress into the run the way the flow's place step does. While it runs, the script
samples the player inside its iframe (window.__player): frames the placer has written, frames the browser has
received, frames the player has shown. Then it measures the replay that starts by itself, a replay at 0.1 s a
frame, and how long one frame takes to draw. Results go to stdout and bench/results/player_fps.json.

    .venv/bin/python bench/measure_player_fps.py --cells 10000
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from cockpit.serve import start, wait_healthy  # noqa: E402 - after the checkout is on the path


def _osu_netlist(n_cells: int, seed: int):
    """A generated netlist whose cells carry osu018 macro names of about their width (so the cockpit can read its
    DEF for cell sizes); the placer sees the same widths."""
    from engine.pdk import load_pdk
    from engine.place.generate import generate_netlist

    pdk = load_pdk(None)
    nl = generate_netlist(n_cells, seed=seed)
    macros = [(m.width_um, name) for name, m in pdk.macros.items() if name != "FILL"]
    widths = np.array([w for w, _ in macros])
    types = list(nl.cell_types)
    for i, t in enumerate(types):
        if t.startswith("GEN"):
            j = int(np.argmin(np.abs(widths - nl.cell_w[i])))
            types[i], nl.cell_w[i] = macros[j][1], widths[j]
    nl.cell_types = types
    return nl, pdk


def _write_def_cells_only(nl, path: Path, pdk) -> None:
    """DEF with the cells (the generated nets name pins the osu018 macros do not have: left out, the page only
    needs positions and sizes)."""
    from engine.io.def_io import write_def

    write_def(nl, path, pdk)
    text = path.read_text()
    path.write_text(re.sub(r"\nNETS \d+ ;.*?END NETS\n", "\n", text, flags=re.S))


def worker(run_dir: Path, n_cells: int, seed: int, frame_every: int, nice: int) -> None:
    """The placer in its own process, writing what engine.flow.place writes (frames, events, metrics)."""
    import torch

    if nice:
        os.nice(nice)  # a viewer's browser does not share the server's cores: let chromium have them first
    torch.set_num_threads(1)
    from engine.place.api import place
    from engine.place.config import PlaceConfig
    from engine.runs import RunStore, write_json

    store = RunStore(run_dir.parent)
    run = store.get(run_dir.name)
    nl, pdk = _osu_netlist(n_cells, seed)
    step = run.step_dir("place")
    frames = step / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    run.event("step_start", step="place")
    written = []
    # The cockpit indexes frame cells into the floorplan DEF as read back (the flow places that very netlist);
    # this netlist was generated, so map its cell indices onto the DEF's order.
    from engine.io.def_io import read_def

    order = {name: i for i, name in enumerate(read_def(run.step_dir("floorplan") / "floorplan.def", pdk).cell_names)}
    to_def = np.array([order[name] for name in nl.cell_names], dtype=np.int32)

    def on_frame(fr: dict) -> None:
        fr = {**fr, "cells": to_def[np.asarray(fr["cells"])]}
        np.savez(frames / f"frame_{fr['iteration']:05d}.npz", **{k: np.asarray(v) for k, v in fr.items()})
        written.append(time.time())

    def progress(fraction: float, message: str) -> None:
        run.event("progress", step="place", fraction=fraction, message=message)

    t0, cpu0 = time.time(), time.process_time()
    result = place(nl, PlaceConfig(frame_every=frame_every), progress=progress, on_frame=on_frame)
    # the placer's own CPU time against its wall time: how much of a core the viewer's side left it
    write_json(step / "placer_cpu.json", {"cpu_s": round(time.process_time() - cpu0, 3),
                                          "wall_s": round(time.time() - t0, 3)})
    _write_def_cells_only(result.netlist, step / "placed.def", pdk)
    hist = result.history
    write_json(step / "history.json", {k: [h[k] for h in hist] for k in ("iteration", "hpwl", "overflow")})
    write_json(step / "metrics.json", result.metrics)
    write_json(step / "frame_times.json", written)
    run.event("step_end", step="place", status="done", seconds=round(time.time() - t0, 3), message="placed")
    run.set_status("done")


def _wait_health(url: str, proc, timeout_s: float = 90) -> None:
    if not wait_healthy(url, proc, timeout_s):
        raise SystemExit("the cockpit did not start")


def _player_frame(page):
    for fr in page.frames:
        if "placement_player" in fr.url or "placement_player" in (fr.name or ""):
            return fr
    return None


SAMPLE_JS = """() => { const S = window.__player; return {origin: performance.timeOrigin, t: performance.now(),
  idx: S.idx, have: S.frames.length, mode: S.mode, playing: S.playing, stage: !!S.stage,
  advances: S.advances.map((t) => performance.timeOrigin + t), modes: S.advanceModes,
  draws: S.draws.map((t) => performance.timeOrigin + t), drawModes: S.drawModes}; }"""


def _cpu_s(procs) -> float:
    """CPU seconds (user + system) the processes have used so far; ones that have ended count 0."""
    import psutil

    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _by_kind(procs) -> dict[str, float]:
    """CPU seconds so far per kind of chromium process (browser, renderer, gpu-process, utility)."""
    import psutil

    out: dict[str, float] = {}
    for p in procs:
        try:
            kind = next((a.split("=", 1)[1] for a in p.cmdline() if a.startswith("--type=")), "browser")
            t = p.cpu_times()
            out[kind] = out.get(kind, 0.0) + t.user + t.system
        except psutil.Error:
            pass
    return out


def _browser_procs() -> list:
    """Chromium's processes started under this script (browser, renderers, GPU process)."""
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]


def _rate(times_ms: list[float]) -> float | None:
    """Frames per second over a run of advance timestamps (ms)."""
    if len(times_ms) < 2:
        return None
    return round((len(times_ms) - 1) / ((times_ms[-1] - times_ms[0]) / 1000), 2)


def measure(args) -> dict:
    from playwright.sync_api import sync_playwright

    from engine.runs import RunStore

    tmp = Path(tempfile.mkdtemp(prefix="player-fps-"))
    store = RunStore(tmp)
    run = store.create({}, f"gen{args.cells // 1000}k", label="player fps measurement")
    run.set_status("running")
    nl, pdk = _osu_netlist(args.cells, args.seed)
    _write_def_cells_only(nl, run.step_dir("floorplan") / "floorplan.def", pdk)
    app, url = start(tmp, tmp / "streamlit.log")
    out: dict = {"cells": args.cells, "frame_every": args.frame_every, "worker_nice": args.worker_nice,
                 "machine": f"{os.cpu_count()} cores, shared with other jobs; load {os.getloadavg()[0]:.1f}"}
    try:
        _wait_health(url, app)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                  args=["--no-sandbox", "--disable-gpu"])
            page = b.new_page(viewport={"width": 1500, "height": 1300})
            page.goto(f"{url}/placement?run={run.id}")
            page.get_by_role("heading").first.wait_for(timeout=90_000)
            page.wait_for_timeout(1500)
            import psutil

            server, browser_procs = psutil.Process(app.pid), _browser_procs()
            cpu_server0, cpu_browser0, load0 = _cpu_s([server]), _cpu_s(browser_procs), os.getloadavg()[0]
            kinds0 = _by_kind(browser_procs)
            t_start = time.time()
            placer = subprocess.Popen([sys.executable, __file__, "--worker", str(run.dir), "--cells", str(args.cells),
                                       "--seed", str(args.seed), "--frame-every", str(args.frame_every),
                                       "--worker-nice", str(args.worker_nice)], cwd=ROOT)
            samples, last_error, ended = [], None, None
            while True:
                fr = _player_frame(page)
                if fr is not None:
                    try:
                        s = fr.evaluate(SAMPLE_JS)
                        s["wall"] = time.time()
                        samples.append(s)
                    except Exception as exc:  # noqa: BLE001 - the iframe is being (re)mounted
                        last_error = exc
                if placer.poll() is not None and "cpu" not in out:  # the live part is over: who used the CPU
                    out["cpu"] = {"server_s": round(_cpu_s([server]) - cpu_server0, 2),
                                  "browser_s": round(_cpu_s(browser_procs) - cpu_browser0, 2),
                                  "browser_by_process_s": {k: round(v - kinds0.get(k, 0.0), 2)
                                                           for k, v in _by_kind(browser_procs).items()},
                                  "wall_s": round(time.time() - t_start, 2),
                                  "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}
                if ended is None and placer.poll() is not None and samples and samples[-1]["mode"] != "live":
                    ended = time.time()
                if ended is not None and time.time() - ended > args.replay_watch_s:
                    break
                if time.time() - t_start > args.timeout_s or (not samples and time.time() - t_start > 120):
                    page.screenshot(path=str(tmp / "stuck.png"), full_page=True)
                    placer.kill()
                    raise SystemExit(f"no player or placement did not end in time ({last_error}; frames "
                                     f"{[f.url for f in page.frames]}); see {tmp}/stuck.png")
                page.wait_for_timeout(100)  # (not time.sleep: Playwright learns of new frames while it waits)
            assert placer.returncode == 0, "the placer worker failed"
            written = json.loads((run.step_dir("place") / "frame_times.json").read_text())
            metrics = json.loads((run.step_dir("place") / "metrics.json").read_text())
            own = json.loads((run.step_dir("place") / "placer_cpu.json").read_text())
            out["placer"] = {"frames": len(written), "global_s": metrics["placement__runtime__global_s"],
                             "frames_per_s": _rate([1000 * t for t in written]),
                             "cpu_s": own["cpu_s"], "wall_s": own["wall_s"],
                             "core_share": round(own["cpu_s"] / max(own["wall_s"], 1e-9), 2)}
            # every player instance (a remount starts a new one) by its time origin: its last sample holds all
            last = {}
            for s in samples:
                last[s["origin"]] = s
            adv = sorted((t, m) for s in last.values() for t, m in zip(s["advances"], s["modes"]))
            live = [t for t, m in adv if m == "live"]
            drawn = sorted(t for s in last.values() for t, m in zip(s["draws"], s["drawModes"]) if m == "live")
            replay = [t for t, m in adv if m == "replay"]
            first_seen = next((s["wall"] for s in samples if s["have"] > 0), None)
            out["live"] = {"frames_shown": len(live), "frames_per_s": _rate(live),
                           "pictures_drawn_per_s": _rate(drawn),
                           "first_frame_on_screen_after_written_s":
                               round(first_seen - written[0], 2) if first_seen else None,
                           "last_frame_on_screen_after_written_s":
                               round(live[-1] / 1000 - written[-1], 2) if live else None,
                           "player_instances": len(last)}
            gaps = np.diff(replay) / 1000 if len(replay) > 1 else np.array([])
            out["replay_autoplay"] = {"pace_asked_s": 0.5, "frames_shown": len(replay),
                                      "s_per_frame_median": round(float(np.median(gaps)), 3) if len(gaps) else None,
                                      "s_per_frame_mean": round(float(gaps.mean()), 3) if len(gaps) else None,
                                      "gaps_s": [round(float(g), 2) for g in gaps],
                                      "started_after_placement_s":
                                          round(replay[0] / 1000 - ended, 2) if replay and ended else None}
            # as fast as the pace slider goes: 0.1 s a frame
            fr = _player_frame(page)
            fr.evaluate("""() => { const p = document.getElementById('pace'); p.value = '0.1';
                p.dispatchEvent(new Event('input')); const s = document.getElementById('slider'); s.value = '0';
                s.dispatchEvent(new Event('input')); document.getElementById('play').click(); }""")
            a0 = fr.evaluate("() => window.__player.advances.length")
            page.wait_for_timeout(3000)
            fast = fr.evaluate(f"() => window.__player.advances.slice({a0})")
            draw = fr.evaluate("() => window.__player.drawMs.slice(-200)")
            out["replay_fast"] = {"pace_asked_s": 0.1, "frames_per_s": _rate(fast)}
            out["draw_ms"] = {"mean": round(float(np.mean(draw)), 2), "p95": round(float(np.percentile(draw, 95)), 2),
                              "max_fps_by_draw_time": round(1000 / max(float(np.mean(draw)), 1e-3), 1)}
            shot = ROOT / "tests" / "screenshots"
            shot.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot / f"player_{args.cells}.png"), full_page=True)
            b.close()
    finally:
        app.terminate()
        app.wait(timeout=20)
    name = f"player_fps_{args.cells}_every{args.frame_every}" + (f"_nice{args.worker_nice}" if args.worker_nice else "")
    path = args.out or ROOT / "bench" / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frame-every", type=int, default=10, help="the placer's place.frame_every")
    ap.add_argument("--timeout-s", type=float, default=500)
    ap.add_argument("--replay-watch-s", type=float, default=12.0, help="how long to watch the replay after")
    ap.add_argument("--worker-nice", type=int, default=0,
                    help="run the placer at this niceness (10: the browser is not starved of CPU by it)")
    ap.add_argument("--out", type=Path, default=None,
                    help="result file (default bench/results/player_fps_<cells>_every<k>[_nice<n>].json)")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        worker(args.worker, args.cells, args.seed, args.frame_every, args.worker_nice)
        return
    print(json.dumps(measure(args), indent=2))


if __name__ == "__main__":
    main()
