"""Chapter 8 · Optimizer (RL): agents turning the flow's knobs, their reward curves side by side, the best point.

The page reads optimisation runs (kind "optimize") from the run store and starts new ones as jobs
(engine.jobs, target engine.rl.optimize:optimize_target); it polls the run folders while any is active, re-reading
a run's files only when their size or mtime changed. Each trial lands in the scatter and the Pareto front
(engine.rl.pareto) the moment it finishes, parallel trials too.
"""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from cockpit import data, figures, runpicker, story
from engine.designs import list_examples
from engine.errors import EngineError
from engine.jobs import register_target
from engine.rl import pareto
from engine.rl.evaluate import EvalConfig
from engine.rl.knobs import KNOB_BY_NAME, KNOBS
from engine.rl.optimize import AGENTS, OptimizeConfig, optimize_run_config, read_optimize_run
from engine.runs import Run, read_json

register_target("optimize", "engine.rl.optimize:optimize_target")
ACTIVE = ("queued", "running")
AGENT_COLOR = {"ppo": "#0b5cad", "random": "#868e96", "tpe": "#d9480f"}
POLL_S = 2.0
SYMBOL = {"done": "circle", "stopped": "triangle-down"}  # stopped: ASHA ended the trial after an early stage


def run_title(info: dict) -> str:
    opt = (info.get("config") or {}).get("optimize") or {}
    agent = opt.get("agent", "?") + (" (from policy)" if opt.get("policy") else "")
    return (f"{agent} · {info.get('design', '')} · {opt.get('budget', '?')} evals · {info.get('status')} · "
            f"{info['id'][-4:]}")


def optimize_runs(store) -> list[Run]:
    return [Run(store, r["id"]) for r in store.list(limit=60, kind="optimize")]


RUN_FILES = ("evaluations.jsonl", "curve.json", "best.json", "policy.pt")  # what the worker writes as trials land


def _stamp(run: Run) -> tuple:
    out = []
    for name in RUN_FILES:
        try:
            stat = (run.dir / name).stat()
            out.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


@st.cache_data(max_entries=128, show_spinner=False)
def _read_run(_run: Run, run_dir: str, stamp: tuple) -> dict:
    # Keyed on the folder and its files' (mtime, size): a poll of an idle run reads nothing; a new trial, a new read.
    d = read_optimize_run(_run)
    return {**d, "fronts": pareto.fronts(d["evaluations"])}


def run_data(run: Run) -> dict:
    """read_optimize_run's dict plus the Pareto fronts by design (engine.rl.pareto), cached on the files' mtimes."""
    return _read_run(run, str(run.dir.resolve()), _stamp(run))


AXES_WORDS = " vs ".join(pareto.Objective.of(axis[0]).label.lower() for axis in pareto.AXES)


store = runpicker.store()
runs = optimize_runs(store)
designs = sorted({r.design for r in runs})
chosen_design = st.session_state.get("opt_design") if st.session_state.get("opt_design") in designs else (
    runs[0].design if runs else None)
shown = [r for r in runs if r.design == chosen_design]
latest: dict[str, Run] = {}
for r in shown:  # newest first: keep the latest run per agent for the side-by-side view
    latest.setdefault(r.config.get("optimize", {}).get("agent", "?"), r)

happened = None
if latest:
    parts = []
    for agent, r in latest.items():
        d = run_data(r)
        best = d["best"].get("reward")
        on_front = sum(len(f.front) for f in d["fronts"].values() if f.note is None)
        parts.append(f"**{agent}** {len(d['curve'])} evaluations, best reward "
                     f"**{story.fmt(best) if best is not None else '—'}**"
                     + (f", **{on_front}** on the Pareto front" if on_front else ""))
    happened = f"on **{chosen_design}**: " + "; ".join(parts) + " (0 = the design's default knobs)."
story.opener(
    "8 · Optimizer (RL)",
    "an agent turns the flow's knobs (utilisation, aspect ratio, placer density and smoothing, synthesis script, "
    "clock target); every trial is a real flow run, scored (power, performance, area, wirelength; unrouted nets "
    "a hard penalty) against the design's own default run. TPE (Bayesian) and random search run on Ray Tune; PPO "
    "learns a policy at the same number of runs.",
    happened,
    "the best-so-far lines: the agent whose line climbs fastest finds good settings in fewer flow runs. Then the "
    f"Pareto front of {AXES_WORDS}: each finished trial is a dot, the step line joins the trials no other beats on "
    "both (a star marks the best reward, a diamond the defaults); a front moving down and left is a better "
    "trade-off the single reward hides. Below, the knobs of the best point and its layout.",
)

# ------------------------------------------------------------------ start
with st.expander("Start an optimisation", expanded=not runs):
    examples = [e.name for e in list_examples()]
    with st.form("opt-start"):
        c1, c2, c3 = st.columns(3)
        design = c1.selectbox("Design", examples, index=examples.index("counter") if "counter" in examples else 0)
        agents = c2.multiselect("Searchers (one job each)", list(AGENTS), default=["tpe", "random"])
        budget = c3.number_input("Budget (flow runs per agent)", 1, 500, 16)
        c4, c5, c6 = st.columns(3)
        steps = ["floorplan", "place", "route", "timing"]
        until = c4.selectbox("Each evaluation runs until", steps, index=steps.index(EvalConfig().until))
        parallel = c5.number_input("Trials at once (Ray)", 1, 64, 1)
        max_iter = c6.number_input("Placer iteration cap (0 = knob's own)", 0, 5000, 300)
        reward_kind = st.radio("Reward", ["qor", "ecp"], horizontal=True,
                               help="qor: weighted HPWL / wirelength / timing / area vs the defaults; ecp: "
                                    "AutoTuner's effective clock period (needs timing)")
        knob_names = st.multiselect("Knobs", [k.name for k in KNOBS], default=[k.name for k in KNOBS],
                                    help="\n".join(f"- {k.name}: {k.doc}" for k in KNOBS))
        policies = [r for r in runs if (r.dir / "policy.pt").exists()]
        policy = st.selectbox("Start PPO from a saved policy (transfer)", [None] + policies,
                              format_func=lambda r: "— none (learn from scratch)" if r is None else run_title(r.info()))
        go_btn = st.form_submit_button("Start", type="primary", icon=":material/play_arrow:")
    if go_btn:
        try:
            from engine.rl.env import EnvConfig
            from engine.rl.reward import RewardConfig

            if not agents or not knob_names:
                raise EngineError("choose at least one agent and one knob")
            for agent in agents:
                ev = EvalConfig(until=until, parallel=int(parallel))
                if max_iter and "place.max_iterations" not in knob_names:
                    ev.place_overrides["max_iterations"] = int(max_iter)
                cfg = OptimizeConfig(agent=agent, budget=int(budget), env=EnvConfig(
                    knobs=knob_names, eval=ev, reward=RewardConfig(kind=reward_kind)),
                    policy=str(policy.dir / "policy.pt") if (policy and agent == "ppo") else None)
                run = store.create(optimize_run_config([design], cfg), design=design, kind="optimize", label=agent)
                runpicker.queue().submit(run.id, "optimize")
            st.session_state["opt_design"] = design
            st.toast(f"Started {len(agents)} optimisation job(s) on {design}.")
            st.rerun()
        except EngineError as exc:
            st.error(exc.message)

if not runs:
    st.info("No optimisation yet. Start one above, or from a terminal: `cda optimize counter --agent ppo "
            "--budget 16 --until place`.")
    st.stop()

if len(designs) > 1:
    pick = st.selectbox("Design", designs, index=designs.index(chosen_design))
    if pick != chosen_design:
        st.session_state["opt_design"] = pick
        st.rerun()


# ------------------------------------------------------------------ live view
def curves_figure(items: list[tuple[str, dict]]) -> go.Figure:
    fig = go.Figure()
    for title, d in items:
        pts = d["curve"]
        if not pts:
            continue
        color = AGENT_COLOR.get(d.get("agent") or "", "#2b8a3e")
        xs = [p["evaluation"] for p in pts]
        fig.add_trace(go.Scatter(x=xs, y=[p["reward"] for p in pts], mode="markers", name=f"{title} · reward",
                                 marker=dict(color=color, size=8, opacity=0.45,
                                             symbol=[SYMBOL.get(p["status"], "x") for p in pts])))
        fig.add_trace(go.Scatter(x=xs, y=[p["best"] for p in pts], mode="lines", name=f"{title} · best so far",
                                 line=dict(color=color, width=3, shape="hv")))
    fig.add_hline(y=0, line=dict(color="#495057", dash="dot"), annotation_text="default knobs")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), font=figures.FONT, uirevision="opt",
                      xaxis_title="evaluation (flow runs)", yaxis_title="reward (vs defaults)",
                      legend=dict(orientation="h", y=-0.25))
    return fig


any_active = any(r.status in ACTIVE for r in latest.values())


@st.fragment(run_every=POLL_S if any_active else None)
def live_view() -> None:
    items = []
    for agent, r in latest.items():
        info = r.info()
        items.append((agent + (" (policy)" if info["config"]["optimize"].get("policy") else ""),
                      {**run_data(r), "run": r, "info": info}))
    st.plotly_chart(curves_figure([(t, d) for t, d in items]), width="stretch", key="opt-curves")
    show_pareto(items)
    cols = st.columns(max(1, len(items)))
    for col, (title, d) in zip(cols, items):
        info, r = d["info"], d["run"]
        with col.container(border=True):
            st.markdown(f"**{title}** · {info['status']}")
            at_once = ((info["config"]["optimize"].get("env") or {}).get("eval") or {}).get("parallel", 1)
            st.caption(f"{len(d['curve'])}/{info['config']['optimize']['budget']} evaluations · up to {at_once} at "
                       f"once · run {r.id}")
            if info["status"] in ACTIVE and st.button("Cancel", key=f"cancel-{r.id}", icon=":material/stop_circle:",
                                                      help="stops after the evaluations in flight; keeps what "
                                                           "was learned (best point, policy)"):
                runpicker.queue().cancel(r.id)
                st.toast("Cancel requested.")
            if info["status"] == "failed":
                st.error(info.get("error", "failed"))
    done = [(t, d) for t, d in items if d["best"].get("run_id")]
    if not done:
        st.info("Waiting for the first evaluations…")
    else:
        title, best = max(done, key=lambda td: td[1]["best"].get("reward", float("-inf")))
        show_best(title, best["best"])
    trials = sorted(((t, p) for t, d in items for p in d["curve"]), key=lambda tp: -(tp[1].get("evaluation") or 0))
    if trials:  # as they finish, parallel ones too: each lands in the run's evaluations the moment it ends
        st.caption("Trials, newest first (stopped = ended early by ASHA after the stage shown; its partial reward "
                   "is not a result)")
        st.dataframe([{"searcher": t, "trial": p["evaluation"], "status": p["status"], "stage": p.get("stage") or "",
                       "reward": round(p["reward"], 4), "best so far": None if p["best"] is None else
                       round(p["best"], 4), "seconds": p.get("seconds"), "run": p.get("run_id") or ""}
                      for t, p in trials[:20]], hide_index=True, width="stretch", key="opt-trials")
    if any_active and not any(d["info"]["status"] in ACTIVE for _, d in items):
        st.rerun()


def _hover(p: dict, objs: list[pareto.Objective]) -> str:
    vals = "<br>".join(f"{o.label}: {story.fmt(v * o.scale)} {o.unit}" for o, v in zip(objs, p["values"]))
    knobs = "<br>".join(f"{k} = {v}" for k, v in (p.get("knobs") or {}).items())
    reward = "—" if p.get("reward") is None else f"{p['reward']:+.4f}"
    return f"trial {p.get('index')} · reward {reward}<br>{vals}<br>{knobs}<br>run {p.get('run_id') or ''}"


def pareto_figure(items: list[tuple[str, dict]]) -> tuple[go.Figure | None, list[str]]:
    """Every finished trial (wirelength vs clock period), each searcher's front as a step line, its best-reward
    trial as a star and the design's default run as a diamond. Returns (figure or None, notes on what is missing)."""
    fig, objs, notes = go.Figure(), None, []
    drawn_defaults: set = set()  # searchers of one design share its default run (cached): one diamond for all
    for title, d in items:
        color = AGENT_COLOR.get(d.get("agent") or "", "#2b8a3e")
        fronts = d["fronts"]
        for design, front in fronts.items():
            name = title if len(fronts) == 1 else f"{title} · {design}"
            if front.note is not None:
                notes.append(f"{name}: {front.note}")
                continue
            if objs is None:
                objs = front.objectives
            elif [o.name for o in front.objectives] != [o.name for o in objs]:
                notes.append(f"{name}: measured on {', '.join(o.label for o in front.objectives)}, not shown here")
                continue
            sx, sy = objs[0].scale, objs[1].scale
            pts = front.points
            fig.add_trace(go.Scatter(
                x=[p["values"][0] * sx for p in pts], y=[p["values"][1] * sy for p in pts], mode="markers",
                name=f"{name} · trials", marker=dict(color=color, size=8, opacity=0.4),
                hovertext=[_hover(p, objs) for p in pts], hoverinfo="text"))
            if front.front:
                fig.add_trace(go.Scatter(
                    x=[p["values"][0] * sx for p in front.front], y=[p["values"][1] * sy for p in front.front],
                    mode="lines+markers", name=f"{name} · Pareto front ({len(front.front)})",
                    line=dict(color=color, width=2, shape="hv"), marker=dict(color=color, size=10),
                    hovertext=[_hover(p, objs) for p in front.front], hoverinfo="text"))
            best = next((p for p in pts if p["index"] == front.best_index), None)
            if best is not None:
                fig.add_trace(go.Scatter(
                    x=[best["values"][0] * sx], y=[best["values"][1] * sy], mode="markers",
                    name=f"{name} · best reward", hovertext=[_hover(best, objs)], hoverinfo="text",
                    marker=dict(color=color, size=18, symbol="star", line=dict(color="#212529", width=1))))
            base = front.baseline
            key = (design, (base or {}).get("run_id"), tuple((base or {}).get("values") or ()))
            if base is not None and all(v is not None for v in base["values"]) and key not in drawn_defaults:
                drawn_defaults.add(key)
                fig.add_trace(go.Scatter(
                    x=[base["values"][0] * sx], y=[base["values"][1] * sy], mode="markers",
                    name="default knobs" if len(fronts) == 1 else f"{design} · default knobs",
                    hovertext=[f"default knobs · run {base.get('run_id')}"],
                    hoverinfo="text", marker=dict(color="#212529", size=12, symbol="diamond-open",
                                                  line=dict(width=2))))
    if objs is None:
        return None, notes
    fig.update_layout(height=400, margin=dict(l=10, r=10, t=30, b=10), font=figures.FONT, uirevision="opt-pareto",
                      xaxis_title=objs[0].title + (" · lower is better" if objs[0].minimise else ""),
                      yaxis_title=objs[1].title + (" · lower is better" if objs[1].minimise else ""),
                      legend=dict(orientation="h", y=-0.25))
    return fig, notes


def show_pareto(items: list[tuple[str, dict]]) -> None:
    fig, notes = pareto_figure(items)
    st.markdown(f"**Pareto front** · {AXES_WORDS}")
    if fig is not None:
        st.plotly_chart(fig, width="stretch", key="opt-pareto")
        left = {}
        for _, d in items:
            for front in d["fronts"].values():
                for why, n in front.skipped.items():
                    left[why] = left.get(why, 0) + n
        st.caption("Each dot is a finished trial (they appear as they end, parallel ones too); the step line joins "
                   "the trials no other beats on both axes." + (" Left out: " + ", ".join(
                       f"{n} {why}" for why, n in sorted(left.items())) + "." if left else ""))
    elif not notes:
        st.caption("No finished trial yet: the front appears with the first one.")
    for note in notes:
        st.caption(f"No front for {note}.")


def show_best(title: str, best: dict) -> None:
    st.subheader(f"Best point · {title} · reward {best['reward']:+.3f}")
    left, right = st.columns([2, 3], gap="medium")
    base = (best.get("baselines") or {}).get(best.get("design"), {}).get("knobs", {})
    rows = [{"knob": k, "best": str(v), "default": str(base.get(k, "")),
             "what it does": KNOB_BY_NAME[k].doc if k in KNOB_BY_NAME else ""} for k, v in best["knobs"].items()]
    left.dataframe(rows, hide_index=True, width="stretch")
    keys = ("placement__hpwl", "placement__overflow", "route__wirelength", "timing__ecp_ns", "timing__setup__ws",
            "floorplan__die__area_um2", "design__instance__area")
    base_m = (best.get("baselines") or {}).get(best.get("design"), {}).get("metrics", {})
    left.dataframe([{"metric": k, "best": story.fmt(best["metrics"].get(k)), "default": story.fmt(base_m.get(k))}
                    for k in keys if k in best["metrics"]], hide_index=True, width="stretch")
    try:
        flow_run = store.get(best["run_id"])
    except EngineError:
        right.info("The best run's folder is gone.")
        return
    lay = data.layout(flow_run, "place", "def", "placed.def") or data.layout(flow_run, "floorplan", "def",
                                                                            "floorplan.def")
    if lay is None:
        right.info("The best run has no layout to show.")
        return
    fig = figures.layout_figure(lay.die, lay.x, lay.y, lay.w, lay.h, is_io=lay.is_io, rows=lay.rows,
                                title=f"Best layout · run {flow_run.id}", height=460)
    right.plotly_chart(fig, width="stretch", key="opt-best-layout")
    if right.button("Open this run in the other chapters", key="opt-open-best"):
        runpicker.select(flow_run.id)
        st.toast("Selected: the other chapters now show the best run.")


live_view()

# ------------------------------------------------------------------ transfer and the benchmark (from `make bench`)
BENCH_JSON = Path(__file__).resolve().parent.parent / "bench" / "results" / "rl.json"
bench = read_json(BENCH_JSON, {}) or {}
if bench.get("transfer") or bench.get("agents"):
    with st.expander("Benchmark: agents at equal budgets, and a trained policy on a new design", expanded=False):
        t = bench.get("transfer")
        if t:
            st.markdown(f"A PPO policy trained on **{', '.join(t.get('train', []))}** applied to **{t['target']}** "
                        f"for {t['budget']} flow runs, against searching from scratch with the same runs:")
            fig = go.Figure()
            for name, d in t["agents"].items():
                fig.add_trace(go.Scatter(x=list(range(1, len(d["best_so_far"]) + 1)), y=d["best_so_far"],
                                         mode="lines+markers", name=name, line=dict(shape="hv", width=3)))
            fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10), font=figures.FONT,
                              xaxis_title="evaluations on the new design", yaxis_title="best reward so far")
            st.plotly_chart(fig, width="stretch", key="opt-transfer")
            ts = bench.get("transfer_seeds") or {}
            agents_ts = {a: v for a, v in ts.items() if isinstance(v, dict)}
            if agents_ts:
                st.caption(f"Best reward after {ts['budget']} runs over seeds {ts['seeds']} (mean ± std): " + "; ".join(
                    f"{a} {v['best_mean']:+.3f} ± {v['best_std']:.3f}" for a, v in agents_ts.items()))
        rows = [{"design": design, "agent": a, "best reward (mean over seeds)": round(d["final_mean"], 4),
                 "spread (std)": round(d["final_std"], 4)}
                for design, per in (bench.get("agents") or {}).items() for a, d in per.items() if a != "winner"]
        if rows:
            st.dataframe(rows, hide_index=True, width="stretch")
        if bench.get("speedup"):
            s = bench["speedup"]
            st.caption(f"Ray: {s['evaluations']} evaluations of {s['design']} took {s['serial']['seconds']} s "
                       f"serially and {s['ray']['seconds']} s as {s['ray']['parallel']} parallel Ray tasks "
                       f"(x{s['speedup']}).")
