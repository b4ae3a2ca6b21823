"""Placer benchmark: ours vs graywolf (qflow's TimberWolf) on the example designs and generated netlists, and
the scaling of global placement from 1k to 200k cells. Results: bench/results/place.json + place_*.png.

    .venv/bin/python bench/bench_place.py                 # everything (graywolf on 50k cells takes long)
    .venv/bin/python bench/bench_place.py --quick         # small sizes only (a few minutes)

Each measurement runs in a fresh subprocess so that its peak RSS is its own. HPWL is compared after
legalization (graywolf's output is legal rows by construction). graywolf places the IO pads itself while ours
are fixed by the floorplan, so the table also gives the HPWL of the nets without IO pins.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from engine.runs import write_json  # noqa: E402

RESULTS = ROOT / "bench" / "results"
EXAMPLES = ("counter", "alu", "uart", "crc32", "fir", "gray_prio", "rv32e")


def bench_netlist(spec: str):
    """'gen:N' -> generated netlist; an example name -> its floorplanned netlist (synth + floorplan)."""
    if spec.startswith("gen:"):
        from engine.place.generate import generate_netlist

        return generate_netlist(int(spec[4:]), seed=1)
    from engine.config import FlowConfig
    from engine.designs import resolve
    from engine.flow.flow import run_flow
    from engine.io.def_io import read_def
    from engine.pdk import load_pdk
    from engine.runs import RunStore

    d = resolve(spec)
    cfg = FlowConfig(design_files=d.files, top=d.top, clock_port=d.clock_port, clock_ns=d.clock_ns)
    store = RunStore(Path(tempfile.gettempdir()) / "cda-bench-place-runs")
    run = run_flow(cfg, store, until="floorplan")
    if run.status != "done":
        raise RuntimeError(f"{spec}: synth/floorplan failed: {run.info().get('error')}")
    return read_def(run.step_dir("floorplan", create=False) / "floorplan.def", load_pdk())


def _scored_hpwl(nl, x, y) -> float:
    """The one evaluator both placers are scored with: HPWL with each cell's pins under its row's orientation
    (N/FS, as the DEF and the router see them), from the positions alone, whoever placed them."""
    from engine.place.legalize import oriented_hpwl

    return float(oriented_hpwl(nl, x, y))


def _internal_hpwl(nl, x, y) -> float:
    """HPWL of the nets that touch no IO terminal."""
    import numpy as np

    per = nl.net_hpwl(x, y)
    pin_net = nl.pin_net()
    io_pin = nl.cell_is_io[nl.pin_cell]
    touches = np.zeros(nl.n_nets, dtype=bool)
    touches[pin_net[io_pin & (pin_net >= 0)]] = True
    return float((per * nl.net_weight)[~touches].sum())


def measure_ours(spec: str, frames: bool) -> dict:
    from engine.place import PlaceConfig
    from engine.place.api import place  # imports torch before the clock starts

    nl = bench_netlist(spec)
    n_frames = [0]

    def on_frame(f):
        n_frames[0] += 1

    t0, cpu0 = time.perf_counter(), time.process_time()
    res = place(nl, PlaceConfig(frame_every=10 if frames else 0), on_frame=on_frame if frames else None)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    m = res.metrics
    return dict(design=spec, cells=int((~nl.cell_is_io).sum()), nets=nl.n_nets, runtime_s=round(wall, 3),
                cpu_s=round(cpu, 3),
                hpwl=_scored_hpwl(nl, res.netlist.x, res.netlist.y),
                hpwl_plain=float(nl.hpwl(res.netlist.x, res.netlist.y)),
                hpwl_global=m["placement__hpwl__global"],
                hpwl_legal=m["placement__hpwl__legal"], hpwl_internal=_internal_hpwl(nl, res.netlist.x, res.netlist.y),
                overflow=m["placement__overflow"], iterations=m["placement__iterations"],
                runtime_global_s=m["placement__runtime__global_s"],
                runtime_legalize_s=m.get("placement__runtime__legalize_s"),
                runtime_detailed_s=m.get("placement__runtime__detailed_s"),
                frame_seconds=m["placement__frames__seconds"], frames=n_frames[0],
                legal=bool(res.legality and res.legality.ok), peak_rss_mb=_rss_mb())


def measure_graywolf(spec: str, timeout_s: float) -> dict:
    from engine.place.graywolf import run_graywolf

    nl = bench_netlist(spec)
    with tempfile.TemporaryDirectory(prefix="gw-") as tmp:
        try:
            r = run_graywolf(nl, Path(tmp), timeout_s=timeout_s)
        except subprocess.TimeoutExpired:
            return dict(design=spec, timeout=True, runtime_s=timeout_s)
        return dict(design=spec, runtime_s=round(r.runtime_s, 3), cpu_s=round(r.cpu_s, 3),
                    hpwl=_scored_hpwl(nl, r.x, r.y), hpwl_plain=float(nl.hpwl(r.x, r.y)),
                    hpwl_internal=_internal_hpwl(nl, r.x, r.y), timeout=False)


def measure_scaling(n: int, threads: int) -> dict:
    from engine.place.config import PlaceConfig
    from engine.place.generate import generate_netlist
    from engine.place.global_place import GlobalPlacer
    from engine.place.legalize import legalize

    nl = generate_netlist(n, seed=1)
    cfg = PlaceConfig(frame_every=10, num_threads=threads)
    t0 = time.perf_counter()
    gp = GlobalPlacer(nl, cfg)
    setup = time.perf_counter() - t0
    frames = [0]
    cpu0 = time.process_time()
    r = gp.run(on_frame=lambda f: frames.__setitem__(0, frames[0] + 1))
    cpu = time.process_time() - cpu0
    t1 = time.perf_counter()
    x, y = legalize(nl, r.x, r.y)
    leg = time.perf_counter() - t1
    return dict(cells=n, threads=threads if threads > 0 else 1, setup_s=round(setup, 3),
                iterations=r.iterations, global_s=round(r.runtime_s, 3),
                s_per_iter=round(r.runtime_s / max(r.iterations, 1), 5), overflow=round(r.overflow, 4),
                global_cpu_s=round(cpu, 3), cpu_s_per_iter=round(cpu / max(r.iterations, 1), 5),
                frame_seconds=round(r.frame_seconds, 3), frame_share=round(r.frame_seconds / r.runtime_s, 4),
                legalize_s=round(leg, 3), hpwl_global=r.hpwl, hpwl_legal=float(nl.hpwl(x, y)),
                peak_rss_mb=_rss_mb())


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _child(kind: str, arg: str, extra: list[str], timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, arg, *extra]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return dict(design=arg, error=f"timeout after {timeout:.0f} s")
    if out.returncode != 0:
        return dict(design=arg, error=out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    import torch

    load = os.getloadavg()
    return dict(platform=platform.platform(), cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                torch=torch.__version__, torch_threads=torch.get_num_threads(),
                load_average_at_start=[round(v, 2) for v in load])


def plot(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sc = [s for s in result.get("scaling", []) if "error" not in s]
    if sc:
        n = np.array([s["cells"] for s in sc], float)
        spi = np.array([s["s_per_iter"] for s in sc])
        rss = np.array([s["peak_rss_mb"] for s in sc])
        fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
        ax[0].loglog(n, spi, "o-", label="wall (machine shared with other jobs)")
        if all("cpu_s_per_iter" in s for s in sc):
            spi = np.array([s["cpu_s_per_iter"] for s in sc])
            ax[0].loglog(n, spi, "s-", label="CPU seconds (= wall on an idle core)")
        ref = spi[0] * (n * np.log(n)) / (n[0] * np.log(n[0]))
        ax[0].loglog(n, ref, "--", color="gray", label="n log n from the smallest")
        ax[0].set(xlabel="cells", ylabel="seconds / iteration", title="Global placement cost per iteration")
        ax[0].legend()
        ax[1].loglog(n, [s["global_s"] for s in sc], "o-", label="global placement (wall)")
        if all("global_cpu_s" in s for s in sc):
            ax[1].loglog(n, [s["global_cpu_s"] for s in sc], "^-", label="global placement (CPU s)")
        ax[1].loglog(n, [s["legalize_s"] for s in sc], "s-", label="legalization")
        ax[1].axhline(300, color="red", ls=":", label="5 min goal")
        ax[1].set(xlabel="cells", ylabel="seconds", title="Time to overflow 0.10")
        ax[1].legend()
        ax[2].semilogx(n, rss, "o-")
        ax[2].axhline(4096, color="red", ls=":", label="4 GiB goal")
        ax[2].set(xlabel="cells", ylabel="MB", title="Peak RSS")
        ax[2].legend()
        fig.tight_layout()
        fig.savefig(RESULTS / "place_scaling.png", dpi=110)
        plt.close(fig)
    cmp_rows = [c for c in result.get("vs_graywolf", [])
                if "hpwl" in c.get("ours", {}) and "hpwl" in c.get("graywolf", {})]
    if cmp_rows:
        names = [c["design"] for c in cmp_rows]
        fig, ax = plt.subplots(1, 2, figsize=(13, 4.2))
        xs = np.arange(len(names))
        ax[0].bar(xs - 0.2, [c["ours"]["hpwl"] / c["graywolf"]["hpwl"] for c in cmp_rows], 0.4, label="all nets")
        ax[0].bar(xs + 0.2, [c["ours"]["hpwl_internal"] / max(c["graywolf"]["hpwl_internal"], 1e-9)
                             for c in cmp_rows], 0.4, label="nets without IO")
        ax[0].axhline(1.0, color="gray", ls="--")
        ax[0].set(xticks=xs, xticklabels=names, ylabel="HPWL ours / graywolf", title="Wirelength (lower is better)")
        ax[0].legend()
        key = "cpu_s" if all("cpu_s" in c["ours"] and "cpu_s" in c["graywolf"] for c in cmp_rows) else "runtime_s"
        ax[1].bar(xs - 0.2, [c["ours"][key] for c in cmp_rows], 0.4, label="ours")
        ax[1].bar(xs + 0.2, [c["graywolf"][key] for c in cmp_rows], 0.4, label="graywolf")
        ax[1].set(xticks=xs, xticklabels=names, ylabel="CPU seconds" if key == "cpu_s" else "seconds", yscale="log",
                  title="Runtime")
        ax[1].legend()
        for a in ax:
            a.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        fig.savefig(RESULTS / "place_vs_graywolf.png", dpi=110)
        plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=2, metavar=("KIND", "ARG"), help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--designs", default=",".join(EXAMPLES + ("gen:1000", "gen:10000", "gen:50000")),
                    help="comma list: example names and gen:N")
    ap.add_argument("--sizes", default="1000,2000,5000,10000,20000,50000,100000,200000",
                    help="cell counts for the scaling run")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for the scaling run (0 = automatic)")
    ap.add_argument("--skip-graywolf", action="store_true")
    ap.add_argument("--graywolf-timeout", type=float, default=2400.0, help="seconds per graywolf run")
    ap.add_argument("--frames", action="store_true", default=True, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS / "place.json"))
    ap.add_argument("--replot", action="store_true", help="redraw the PNGs from the JSON files")
    ap.add_argument("--merge", action="store_true", help="keep the other section of an existing --out file")
    args = ap.parse_args()
    if args.replot:
        for f in (RESULTS / "place.json", RESULTS / "place_vs_graywolf.json"):
            if f.exists():
                plot(json.loads(f.read_text()))
        return 0
    if args.child:
        kind, arg = args.child
        if kind == "ours":
            print(json.dumps(measure_ours(arg, frames=True)))
        elif kind == "graywolf":
            print(json.dumps(measure_graywolf(arg, args.graywolf_timeout)))
        elif kind == "scaling":
            print(json.dumps(measure_scaling(int(arg), args.threads)))
        return 0

    RESULTS.mkdir(parents=True, exist_ok=True)
    designs = [d for d in args.designs.split(",") if d]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.quick:
        designs = [d for d in designs if not d.startswith("gen:") or int(d[4:]) <= 10000][:4] + ["gen:1000"]
        sizes = [s for s in sizes if s <= 20000]
    out_path = Path(args.out)
    result = dict(machine=machine(), started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  vs_graywolf=[], scaling=[])
    if args.merge and out_path.exists():
        old = json.loads(out_path.read_text())
        for key, todo in (("scaling", sizes), ("vs_graywolf", designs)):
            if not todo:
                result[key] = old.get(key, [])
                result[f"machine_{key}"] = old.get(f"machine_{key}", old.get("machine"))
    result[f"machine_{'scaling' if sizes else 'vs_graywolf'}"] = result["machine"]

    def save():
        write_json(out_path, result, indent=2)
        plot(result)

    for n in sizes:
        r = _child("scaling", str(n), ["--threads", str(args.threads)], timeout=3600)
        print("scaling", json.dumps(r), flush=True)
        result["scaling"].append(r)
        save()
    for d in dict.fromkeys(designs):
        row = dict(design=d, ours=_child("ours", d, [], timeout=3600))
        if not args.skip_graywolf:
            row["graywolf"] = _child("graywolf", d, ["--graywolf-timeout", str(args.graywolf_timeout)],
                                     timeout=args.graywolf_timeout + 600)
        print("compare", json.dumps(row), flush=True)
        result["vs_graywolf"].append(row)
        save()
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
