"""How long each cockpit page takes to settle in a real browser (Debian's chromium through Playwright).

Not a test: a measurement (speed lives in benchmarks). The script makes a run store holding one finished run of a
small example design through GDSII (engine.flow.flow.run_flow on the `counter` design, unless --runs-dir names a
store that already holds a finished run), starts the cockpit on it (`streamlit run cockpit/app.py`, as the tests'
`cockpit_app` fixture does), and opens every page under pages/ at its URL path with ``?run=<id>``: once to warm
the app (imports, caches), then N times (default 3) for the record.

Settle, precisely: a page is *settled* at the first moment T at which all of these hold:

- the Streamlit app root (``[data-testid=stApp]``) says its script is not running
  (``data-test-script-state="notRunning"``; "initial" - no run yet - does not count),
- no running indicator shows (no ``stStatusWidgetRunningIcon``, no "Running..." in ``stStatusWidget``),
- the main area holds at least one element (``stMainBlockContainer`` has an ``stElementContainer``),
- no DOM mutation (child list, attribute or text, anywhere in the document) has happened for 300 ms.

The *settle time* is the time of the last DOM mutation before that quiet window, measured from the navigation
start of the document (``performance.now()``, whose origin is the navigation start): the moment the page stopped
changing, not counting the 300 ms spent proving it. A page not settled after --timeout seconds is recorded as
``null`` with ``timed_out``.

With each time go two numbers that other jobs on the machine hardly change: the CPU seconds the app's server
process spent on the view (``server_cpu_s``: the page script, the sidebar, the encoding), the seconds the
browser's renderer main thread was busy from the navigation's commit to the settle (``browser_main_thread_s``:
Chrome's TaskDuration metric, script, style, layout and paint) and the kilobytes the page received over
Streamlit's websocket (``received_kb``: what the browser has to parse and draw).

The machine's load average (os.getloadavg) is written with the numbers; above 1.5 (the machine has 2 cores and
other jobs may run on it) the JSON carries a note that the times are inflated.

    nice -n 15 .venv/bin/python bench/bench_cockpit.py            # -> bench/results/cockpit.json and .png
    nice -n 15 .venv/bin/python bench/bench_cockpit.py --out /tmp/before.json --runs-dir /tmp/runs
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit.serve import start, wait_healthy  # noqa: E402 - after the checkout is on the path

QUIET_MS = 300
LOAD_NOTE_ABOVE = 1.5
# The page files and the URL paths the app gives them (cockpit/app.py: the file name without its number; the
# Design page is the default page, at the root).
DEFAULT_PAGE = "01_design.py"

# Installed before any page script: remembers the time of the last DOM mutation.
OBSERVER_JS = """
(() => {
  window.__cdaLastMutation = performance.now();
  const obs = new MutationObserver(() => { window.__cdaLastMutation = performance.now(); });
  obs.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
})();
"""

SETTLED_JS = """
(quietMs) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')) return false;
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  if (status && /Running/.test(status.innerText)) return false;
  if (!document.querySelector('[data-testid="stMainBlockContainer"] [data-testid="stElementContainer"]')) return false;
  return performance.now() - window.__cdaLastMutation >= quietMs;
}
"""


def url_path(page_file: str) -> str:
    """The page's URL path in the app ('' for the default page): '04_placement.py' -> 'placement'."""
    if page_file == DEFAULT_PAGE:
        return ""
    return page_file.split(".")[0].split("_", 1)[-1]


def page_files() -> list[str]:
    return sorted(p.name for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))


def finished_run(root: Path, design: str) -> str:
    """The id of a finished run of ``design`` in the store at ``root``, made (through GDSII) if there is none."""
    from engine.runs import RunStore

    store = RunStore(root)
    for folder in sorted(root.glob("*")):
        info = folder / "run.json"
        if info.is_file():
            meta = json.loads(info.read_text())
            if meta.get("design") == design and meta.get("status") == "done" and "gds" in (meta.get("steps") or []):
                return folder.name
    from engine.designs import resolve
    from engine.flow.flow import run_flow

    run = run_flow(resolve(design).flow_config(), store)
    if run.status != "done":
        raise SystemExit(f"the {design} run did not finish: {run.status}")
    return run.id


def start_app(runs: Path, log: Path) -> tuple[subprocess.Popen, str]:
    proc, url = start(runs, log, env={"OMP_NUM_THREADS": "1"})
    if not wait_healthy(url, proc, timeout_s=90):
        proc.kill()
        raise SystemExit(f"the cockpit did not start; log:\n{log.read_text()[-3000:]}")
    return proc, url


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Received:
    """Bytes the page's websockets (Streamlit's one) have received: the pages' payload, load-independent."""

    def __init__(self, page) -> None:
        self.bytes = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        self.bytes += len(payload)


def _main_thread_s(cdp) -> float:
    """Seconds the page's renderer main thread has spent on tasks (script, style, layout, paint) so far."""
    return next(m["value"] for m in cdp.send("Performance.getMetrics")["metrics"] if m["name"] == "TaskDuration")


def settle(page, url: str, timeout_s: float, server_pid: int, received: Received, cdp) -> dict:
    """Open ``url`` and wait until it settles (see the module docstring): the settle time in seconds, with the
    CPU seconds the app's server process spent meanwhile, the browser main thread's busy seconds from the
    navigation's commit and the bytes the page received (all three much less affected by other jobs on the
    machine than the wall-clock time)."""
    cpu0, bytes0 = _cpu_s(server_pid), received.bytes
    page.goto(url, wait_until="commit")
    main0 = _main_thread_s(cdp)
    try:
        page.wait_for_function(SETTLED_JS, arg=QUIET_MS, polling=50, timeout=timeout_s * 1000)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: recorded, the bench goes on
        return {"settle_s": None, "timed_out": True}
    last = page.evaluate("window.__cdaLastMutation")
    errors = page.locator("[data-testid='stException']").count()
    return {"settle_s": round(last / 1000, 3), "timed_out": False, "exceptions": errors,
            "server_cpu_s": round(_cpu_s(server_pid) - cpu0, 3),
            "browser_main_thread_s": round(_main_thread_s(cdp) - main0, 3),
            "received_kb": round((received.bytes - bytes0) / 1e3, 1)}


def measure(url: str, run_id: str, pages: list[str], n: int, timeout_s: float, server_pid: int) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--disable-sync", "--no-first-run",
                                          "--disable-quic"])
        ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
        ctx.add_init_script(OBSERVER_JS)
        page = ctx.new_page()
        received = Received(page)
        cdp = ctx.new_cdp_session(page)
        cdp.send("Performance.enable")
        for name in pages:
            target = f"{url}/{url_path(name)}?run={run_id}"
            warm = settle(page, target, timeout_s, server_pid, received, cdp)
            tries = [settle(page, target, timeout_s, server_pid, received, cdp) for _ in range(n)]
            times = [t["settle_s"] for t in tries if t["settle_s"] is not None]
            cpus = [t["server_cpu_s"] for t in tries if "server_cpu_s" in t]
            mains = [t["browser_main_thread_s"] for t in tries if "browser_main_thread_s" in t]
            out[name] = {
                "url_path": "/" + url_path(name),
                "warmup_s": warm["settle_s"],
                "settle_s": [t["settle_s"] for t in tries],
                "median_s": round(statistics.median(times), 3) if times else None,
                "max_s": round(max(times), 3) if times else None,
                "server_cpu_median_s": round(statistics.median(cpus), 3) if cpus else None,
                "browser_main_thread_median_s": round(statistics.median(mains), 3) if mains else None,
                "received_kb": tries[-1].get("received_kb"),
                "timed_out": sum(t["timed_out"] for t in tries),
                "exceptions": max((t.get("exceptions", 0) for t in tries), default=0),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            }
            print(f"{name:22s} median {out[name]['median_s']} s  max {out[name]['max_s']} s  "
                  f"server CPU {out[name]['server_cpu_median_s']} s, browser main thread "
                  f"{out[name]['browser_main_thread_median_s']} s, {out[name]['received_kb']} kB "
                  f"(warm-up {warm['settle_s']} s, load {out[name]['load_avg_1min']})", flush=True)
        ctx.close()
        browser.close()
    return out


def chart(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    med = [results[k]["median_s"] or 0 for k in names]
    top = [(results[k]["max_s"] or 0) - (results[k]["median_s"] or 0) for k in names]
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(names) + 1.4), dpi=100)
    ax.barh(names, med, xerr=[[0] * len(names), top], color="#0b5cad", ecolor="#555", capsize=3)
    ax.axvline(2.0, color="#c92a2a", ls="--", lw=1, label="2 s goal")
    ax.invert_yaxis()
    ax.set_xlabel("settle time (s), median of the runs, whisker to the max")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--design", default="counter")
    ap.add_argument("--runs-dir", type=Path, help="a run store to use (a finished run is made in it if missing)")
    ap.add_argument("-n", type=int, default=3, help="measured opens per page, after one warm-up")
    ap.add_argument("--timeout", type=float, default=45.0, help="seconds a page may take to settle")
    ap.add_argument("--pages", nargs="*", help="page files to measure (default: all of pages/*.py)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cockpit.json")
    ap.add_argument("--before", type=Path, help="an earlier result file, kept in the output as 'before'")
    args = ap.parse_args()

    runs = args.runs_dir or Path(tempfile.mkdtemp(prefix="cockpit-bench-"))
    runs.mkdir(parents=True, exist_ok=True)
    run_id = finished_run(runs, args.design)
    pages = args.pages or page_files()
    load_start = os.getloadavg()
    proc, url = start_app(runs, runs.parent / f"{runs.name}-streamlit.log")
    try:
        results = measure(url, run_id, pages, args.n, args.timeout, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    load_end = os.getloadavg()
    loads = [load_start[0], load_end[0]] + [r["load_avg_1min"] for r in results.values()]
    slow = {k: r["median_s"] for k, r in results.items() if r["median_s"] is None or r["median_s"] > 2.0}
    doc = {
        "what": "seconds from navigation start until each cockpit page settles (Streamlit not running, no running "
                f"indicator, no DOM mutation for {QUIET_MS} ms; the time of the last mutation), warm app",
        "design": args.design, "run": run_id, "n": args.n, "browser": "Debian chromium (headless, Playwright)",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
        "load_avg_start": [round(v, 2) for v in load_start], "load_avg_end": [round(v, 2) for v in load_end],
        "goal_s": 2.0, "over_goal": slow, "pages": results,
    }
    if max(loads) > LOAD_NOTE_ABOVE:
        doc["note"] = (f"measured while the machine was loaded (1-min load average up to {max(loads):.2f} on "
                       f"{os.cpu_count()} cores, above {LOAD_NOTE_ABOVE}): other jobs shared the CPUs, so these "
                       "times are inflated against an idle machine")
    if args.before and args.before.is_file():
        doc["before"] = json.loads(args.before.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    title = f"Cockpit page settle times ({args.design}, warm app, load {max(loads):.1f})"
    chart(results, args.out.with_suffix(".png"), title)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
