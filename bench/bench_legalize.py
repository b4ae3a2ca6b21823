"""Legalisation and detailed placement, old vs new, on the same global placement: bench/results/legalize.json.

    .venv/bin/python bench/bench_legalize.py                         # gen:5000, gen:10000, rv32e
    .venv/bin/python bench/bench_legalize.py --designs gen:5000      # one design

For each design one global placement (default PlaceConfig, one torch thread) is computed and cached under
--cache; then the committed legaliser and detailed placer (``git show <ref>:engine/place/...`` loaded as a
temporary module, the baseline) and the working tree's run on the same positions. Reported per variant: HPWL
after legalisation and after detailed placement, both with the pin offsets of each cell's row orientation
(N/FS) and as the N cell (what the placer reported before), loss and gain in %, max/mean displacement (um,
Manhattan, global -> legal), CPU seconds of each stage, and the legality checker's verdict; for the new
legaliser also the loss of each candidate it chooses from, where the loss comes from (loss_sources_pct: y
rounded to rows alone, with and without the rows' N/FS, the legal x alone, the orientation's share), and the
working tree's result from a global placement run further, to overflow 0.07 (new_gp_overflow_0.07).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.runs import write_json  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DESIGNS = ("gen:5000", "gen:10000", "rv32e")


def _netlist(spec: str):
    from bench_place import bench_netlist  # synth + floorplan for an example, generator for gen:N

    return bench_netlist(spec)


def _module_at(ref: str, path: str, name: str, imports: dict[str, str] | None = None):
    """The file at git ref `ref` as a fresh module (the baseline code, untouched by the working tree); imports
    maps a module it imports to the one to use instead (the baseline detailed placer takes the baseline
    legaliser's helpers, whose names may have changed since)."""
    src = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    for a, b in (imports or {}).items():
        src = src.replace(f"from {a} import", f"from {b} import")
    tmp = Path(tempfile.mkdtemp(prefix="bench-legalize-")) / f"{name}.py"
    tmp.write_text(src)
    spec = importlib.util.spec_from_file_location(name, tmp)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod          # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _global(nl, spec: str, cache: Path, overflow: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    from engine.place.config import PlaceConfig
    from engine.place.global_place import GlobalPlacer

    cfg = PlaceConfig(num_threads=1)
    if overflow is not None:
        cfg.target_overflow = overflow
    tag = "" if overflow is None else f"_ovf{overflow:g}"
    f = cache / (spec.replace(":", "_") + tag + ".npz")
    if f.exists():
        d = np.load(f)
        return d["x"], d["y"], float(d["cpu_s"])
    cpu0 = time.process_time()
    r = GlobalPlacer(nl, cfg).run()
    cpu = time.process_time() - cpu0
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(f, x=r.x, y=r.y, cpu_s=cpu)
    return r.x, r.y, cpu


def _variant(nl, gx, gy, legalize_fn, detailed_fn, hpwl_global: float) -> dict:
    from engine.place.legalize import check_legality, oriented_hpwl

    mov = ~nl.cell_fixed
    c0 = time.process_time()
    lx, ly = legalize_fn(nl, gx, gy)
    leg_s = time.process_time() - c0
    disp = np.abs(lx[mov] - gx[mov]) + np.abs(ly[mov] - gy[mov])
    h_leg = oriented_hpwl(nl, lx, ly)
    c1 = time.process_time()
    dx, dy, st = detailed_fn(nl, lx, ly)
    det_s = time.process_time() - c1
    h_det = oriented_hpwl(nl, dx, dy)
    return dict(
        hpwl_legal=round(h_leg, 1), hpwl_legal_n=round(float(nl.hpwl(lx, ly)), 1),
        legal_loss_pct=round(100 * (h_leg / hpwl_global - 1), 2),
        displacement_max=round(float(disp.max()), 2), displacement_mean=round(float(disp.mean()), 3),
        legalize_cpu_s=round(leg_s, 2), legal=bool(check_legality(nl, lx, ly).ok),
        hpwl_detailed=round(h_det, 1), hpwl_detailed_n=round(float(nl.hpwl(dx, dy)), 1),
        detailed_gain_pct=round(100 * (1 - h_det / h_leg), 2), detailed_cpu_s=round(det_s, 2),
        detailed_legal=bool(check_legality(nl, dx, dy).ok),
        total_vs_global_pct=round(100 * (h_det / hpwl_global - 1), 2),
    )


def measure(spec: str, ref: str, cache: Path) -> dict:
    from engine.place import detailed as new_detailed
    from engine.place import legalize as new_legalize

    old_leg = _module_at(ref, "engine/place/legalize.py", "old_legalize")
    old_det = _module_at(ref, "engine/place/detailed.py", "old_detailed", {"engine.place.legalize": "old_legalize"})
    nl = _netlist(spec)
    gx, gy, gp_cpu = _global(nl, spec, cache)
    h_glob = float(nl.hpwl(gx, gy))          # global cells are off rows: N offsets, what GP optimised
    out = dict(design=spec, cells=int((~nl.cell_fixed).sum()), nets=int(nl.n_nets),
               macros=int((nl.cell_fixed & ~nl.cell_is_io).sum()), hpwl_global=round(h_glob, 1),
               global_cpu_s=round(gp_cpu, 2))
    out["old"] = _variant(nl, gx, gy, old_leg.legalize,
                          lambda n, x, y: old_det.detailed_place(n, x, y, passes=2, time_limit_s=600.0), h_glob)
    out["new"] = _variant(nl, gx, gy, new_legalize.legalize,
                          lambda n, x, y: new_detailed.detailed_place(n, x, y, passes=2, time_limit_s=600.0),
                          h_glob)
    out["new"]["candidates_loss_pct"] = _candidates(nl, gx, gy, h_glob)
    out["loss_sources_pct"] = _loss_sources(nl, gx, gy, h_glob)
    # global placement run further (overflow 0.07): less legalisation loss, but is the end result better?
    ex, ey, ecpu = _global(nl, spec, cache, overflow=0.07)
    v = _variant(nl, ex, ey, new_legalize.legalize,
                 lambda n, x, y: new_detailed.detailed_place(n, x, y, passes=2, time_limit_s=600.0),
                 float(nl.hpwl(ex, ey)))
    out["new_gp_overflow_0.07"] = dict(hpwl_global=round(float(nl.hpwl(ex, ey)), 1), global_cpu_s=round(ecpu, 2),
                                       legal_loss_pct=v["legal_loss_pct"], detailed_gain_pct=v["detailed_gain_pct"],
                                       hpwl_detailed=v["hpwl_detailed"],
                                       vs_overflow_0_10_pct=round(100 * (v["hpwl_detailed"] /
                                                                         out["new"]["hpwl_detailed"] - 1), 2))
    return out


def _loss_sources(nl, gx, gy, hpwl_global: float) -> dict:
    """Where the legalisation loss comes from, each part alone against the global HPWL (N pin offsets):
    y rounded to the nearest row with x kept (pins as N, then under the rows' N/FS), and the legal x with the
    global y kept; `orientation` is what the rows' N/FS adds to the legal placement's HPWL."""
    from engine.place import legalize as L

    x, y, mov, segs, _site, w, mx, my = L.prepare_inputs(nl, gx, gy)
    ry = y.copy()
    ry[mov] = segs.row_y[np.argmin(np.abs(segs.row_y[None, :] - my[:, None]), axis=1)]
    lx, ly = L.legalize(nl, gx, gy)

    def pct(h):
        return round(100 * (h / hpwl_global - 1), 2)

    return dict(y_to_nearest_row=pct(float(nl.hpwl(gx, ry))),
                y_to_nearest_row_oriented=pct(L.oriented_hpwl(nl, gx, ry)),
                legal_x_only=pct(float(nl.hpwl(lx, gy))), legal_n=pct(float(nl.hpwl(lx, ly))),
                orientation=round(100 * (L.oriented_hpwl(nl, lx, ly) / float(nl.hpwl(lx, ly)) - 1), 2))


def _candidates(nl, gx, gy, hpwl_global: float) -> dict:
    """Loss of each of the three legal candidates new legalize() chooses from (it returns the least HPWL)."""
    from engine.place import legalize as L

    x, y, mov, segs, _site, w, mx, my = L.prepare_inputs(nl, gx, gy)
    out = {}
    for cost in ("cell", "quadratic"):
        seg_of, nx = L.abacus_assign(segs, mx, my, w, 6, cost=cost)
        cx, cy = x.copy(), y.copy()
        cx[mov], cy[mov] = nx, segs.y[seg_of]
        out[f"abacus/{cost}"] = round(100 * (L.oriented_hpwl(nl, cx, cy) / hpwl_global - 1), 2)
    tx, ty = L.legalize_tetris(nl, gx, gy)
    out["tetris"] = round(100 * (L.oriented_hpwl(nl, tx, ty) / hpwl_global - 1), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--designs", nargs="*", default=list(DESIGNS))
    ap.add_argument("--ref", default="HEAD", help="git ref of the baseline legaliser and detailed placer")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cda-bench-legalize",
                    help="global placements are kept here so that a rerun only redoes legal + detailed")
    ap.add_argument("--out", type=Path, default=RESULTS / "legalize.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for spec in args.designs:
        r = measure(spec, args.ref, args.cache)
        print(json.dumps(r), flush=True)
        rows.append(r)
        write_json(args.out, dict(
            machine=dict(platform=platform.platform(), python=platform.python_version(), torch_threads=1),
            baseline=f"git {args.ref}: engine/place/legalize.py + detailed.py", results=rows))


if __name__ == "__main__":
    main()
