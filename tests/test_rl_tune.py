"""The optimizer on Ray Tune: a real search on the counter design, its trials as child runs, resume, the
registry's ranges, and the reward's hard penalty and normalisation against the design's default run.

Ray runs with one CPU and a 100 MB object store; trials stop after the placement (quick), so the whole module
stays well under two minutes on a small machine.
"""
from __future__ import annotations

import json

import pytest

from engine.errors import EngineError
from engine.rl.env import EnvConfig
from engine.rl.evaluate import EvalConfig, evaluate_config, with_place_overrides
from engine.rl.knobs import get_knobs
from engine.rl.optimize import OptimizeConfig, optimize, read_optimize_run
from engine.rl.reward import (
    RewardConfig,
    compute_reward,
    default_run,
    derived_metrics,
    score_evaluation,
)
from engine.rl.tune import TuneConfig, run_trial, search_space, stages
from engine.runs import RunStore

PLACE = EvalConfig(until="place", place_overrides={"max_iterations": 120, "frame_every": 0})
FP_KNOBS = ["floorplan.utilization", "floorplan.aspect_ratio"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RunStore:
    return RunStore(tmp_path_factory.mktemp("tune-runs"))


def _within_registry(values: dict, base_clock_ns: float) -> None:
    from engine.registry import knob

    for name, value in values.items():
        spec = knob(name)
        if spec.type in (bool, str):
            assert value in ((False, True) if spec.type is bool else spec.choices), (name, value)
            continue
        lo, hi = spec.search or (spec.low, spec.high)
        if spec.relative:
            lo, hi = lo * base_clock_ns, hi * base_clock_ns
        assert lo - 1e-9 <= value <= hi + 1e-9, (name, value, lo, hi)


def _children(store: RunStore, parent: str) -> list[dict]:
    rows = store.list(limit=500, origin="optimize")
    return [r for r in rows if r.get("parent") == parent]


# ------------------------------------------------------------------ the reward (no tools)
BASE_RAW = {"route__wirelength": 1000.0, "placement__hpwl": 900.0, "timing__setup__ws": 1.0, "power__total": 1e-3,
            "floorplan__die__area_um2": 5000.0, "design__instance__area": 2000.0, "route__net__unrouted": 0}


def test_reward_is_normalised_against_the_default_run():
    cfg = RewardConfig()
    base = derived_metrics(BASE_RAW, clock_ns=10.0)
    assert compute_reward(base, base, cfg) == pytest.approx(0.0)
    # 10 % less routed wirelength and nothing else: 0.1 x the wirelength's share of the weights present. HPWL is
    # not a term of its own once both runs are routed (it would count wirelength twice).
    shorter = derived_metrics({**BASE_RAW, "route__wirelength": 900.0, "placement__hpwl": 500.0}, clock_ns=10.0)
    present = ["route__wirelength", "timing__ecp_ns", "power__total", "floorplan__die__area_um2",
               "design__instance__area"]
    share = cfg.weights["route__wirelength"] / sum(cfg.weights[m] for m in present)
    assert compute_reward(shorter, base, cfg) == pytest.approx(0.1 * share)
    # Relative, so the same 10 % on a design ten times larger scores the same.
    big = {k: v * 10 if k in ("route__wirelength", "placement__hpwl", "floorplan__die__area_um2",
                              "design__instance__area", "power__total") else v for k, v in BASE_RAW.items()}
    big_shorter = {**big, "route__wirelength": 9000.0}
    assert compute_reward(derived_metrics(big_shorter, 10.0), derived_metrics(big, 10.0), cfg) == \
        pytest.approx(0.1 * share)
    # A run stopped at placement is scored on HPWL instead (the stand-in), against the same default run.
    placed = {"placement__hpwl": 810.0, "floorplan__die__area_um2": 5000.0, "design__instance__area": 2000.0}
    only = ["placement__hpwl", "floorplan__die__area_um2", "design__instance__area"]
    expect = cfg.weights["placement__hpwl"] * 0.1 / sum(cfg.weights[m] for m in only)
    assert compute_reward(derived_metrics(placed, 10.0), base, cfg) == pytest.approx(expect)
    with pytest.raises(EngineError, match=">= 0"):
        RewardConfig(weights={"power__total": -1.0})


def test_unrouted_nets_and_failed_runs_are_a_hard_penalty():
    cfg = RewardConfig()
    base = derived_metrics(BASE_RAW, clock_ns=10.0)
    # Much shorter, smaller, faster, but two nets left unrouted: scored below every routed run, whatever else.
    gamed = derived_metrics({**BASE_RAW, "route__wirelength": 300.0, "floorplan__die__area_um2": 2000.0,
                             "timing__setup__ws": 5.0, "route__net__unrouted": 2}, clock_ns=10.0)
    worse_but_routed = derived_metrics({**BASE_RAW, "route__wirelength": 1400.0, "power__total": 1.3e-3},
                                       clock_ns=10.0)
    r_gamed = compute_reward(gamed, base, cfg)
    assert r_gamed == pytest.approx(cfg.unrouted_reward - 2 * cfg.penalty_per_violation)
    assert r_gamed < compute_reward(worse_but_routed, base, cfg) < 0
    one = derived_metrics({**BASE_RAW, "route__net__unrouted": 1}, clock_ns=10.0)
    assert r_gamed < compute_reward(one, base, cfg) <= cfg.unrouted_reward  # more unrouted nets: worse still
    # AutoTuner's ecp score gets the same floor.
    assert compute_reward(gamed, base, RewardConfig(kind="ecp")) <= cfg.unrouted_reward
    # Never below a failure; a failed, timed-out or unscorable run gets failure_reward.
    many = derived_metrics({**BASE_RAW, "route__net__unrouted": 500}, clock_ns=10.0)
    assert compute_reward(many, base, cfg) == pytest.approx(cfg.failure_reward)
    for result in ({"status": "failed", "error": "qrouter failed", "metrics": {}},
                   {"status": "cancelled", "metrics": {"placement__hpwl": 1.0}}):
        reward, _, status, _ = score_evaluation(result, {}, 10.0, base, cfg)
        assert reward == cfg.failure_reward and status != "done"
    reward, _, status, error = score_evaluation({"status": "done", "metrics": {"placement__hpwl": 1.0}}, {}, 10.0,
                                                {"placement__hpwl": 2.0}, RewardConfig(kind="ecp"))
    assert (reward, status) == (cfg.failure_reward, "failed") and "needs timing" in error
    with pytest.raises(EngineError, match="failure_reward"):
        RewardConfig(unrouted_reward=-2.0)


# ------------------------------------------------------------------ the search space and the default run
def test_tpe_proposes_within_the_registry_ranges():
    import optuna

    from engine.rl.tune import sampler

    knobs = get_knobs()
    space = search_space(knobs, {"clock_ns": 8.0})
    study = optuna.create_study(direction="maximize", sampler=sampler("tpe", seed=3, budget=30))
    for _ in range(30):  # past TPE's start-up trials, so the model's proposals are checked too
        t = study.ask(space)
        _within_registry(t.params, 8.0)
        study.tell(t, -abs(t.params["floorplan.utilization"] - 0.6))
    assert {k.name for k in knobs} == set(space)
    assert space["clock_ns"].low == pytest.approx(4.0) and space["clock_ns"].log  # relative to the design's 8 ns


def test_default_run_is_computed_once_and_cached(store):
    from engine.rl.env import design_config

    _, cfg = design_config("counter")
    conf = with_place_overrides(cfg, {"frame_every": 0}).to_dict()
    calls = []

    def evaluate(c: dict) -> dict:
        calls.append(1)
        return evaluate_config(c, str(store.root), "floorplan")

    first = default_run(conf, "floorplan", store.root, evaluate)
    again = default_run(conf, "floorplan", store.root, evaluate)
    assert not first["cached"] and again["cached"] and len(calls) == 1
    assert again["run_id"] == first["run_id"] and again["metrics"]["floorplan__die__area_um2"] > 0
    other = default_run(conf, "place", store.root, lambda c: evaluate_config(c, str(store.root), "place"))
    assert other["run_id"] != first["run_id"]  # another last step is another default run
    import shutil

    shutil.rmtree(store.root / first["run_id"])  # its folder gone: run again rather than trust the cache
    assert not default_run(conf, "floorplan", store.root, evaluate)["cached"] and len(calls) == 2


def test_stage_scores_keep_order_within_a_stage_and_rank_stopped_trials_low():
    from engine.rl.tune import trial_score

    fail = RewardConfig().failure_reward
    partial = [-0.8, -0.1, 0.0, 0.2, 1.5]
    for stage in (0, 1):  # ASHA compares trials at one stage: the order of their partial rewards is kept
        scores = [trial_score(r, stage, 3, fail) for r in partial]
        assert scores == sorted(scores) and len(set(scores)) == len(scores)
    # A trial stopped early is told to the searcher just above a failure and below the cap of an unrouted run.
    finished = RewardConfig().unrouted_reward
    assert all(fail < trial_score(r, s, 3, fail) < finished for r in partial for s in (0, 1))
    assert trial_score(0.3, 2, 3, fail) == pytest.approx(0.3)  # the last stage: the reward itself


def test_stages_and_a_trial_that_times_out(store):
    assert stages("timing")[:2] == ["place", "route"] and stages("timing")[-1] == "timing"
    assert stages("place") == ["place"] and stages("floorplan") == ["floorplan"]
    from engine.rl.env import design_config

    _, cfg = design_config("counter")
    base = with_place_overrides(cfg, PLACE.place_overrides)
    reports = []
    ctx = {"base_config": base.to_dict(), "knobs": FP_KNOBS, "base_knobs": {}, "baseline": {"placement__hpwl": 1.0},
           "reward": {}, "stages": ["place"], "runs_root": str(store.root), "parent": None, "label": "",
           "cancel_file": None, "trial_timeout_s": 1e-3, "reuse": False}
    last = run_trial({"floorplan.utilization": 0.5, "floorplan.aspect_ratio": 1.0}, ctx, reports.append)
    assert reports == [last] and last["status"] == "failed" and "timed out" in last["error"]
    assert last["reward"] == RewardConfig().failure_reward


# ------------------------------------------------------------------ a real Ray Tune search
@pytest.fixture(scope="module")
def ray_once():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    yield
    if started and ray.is_initialized():
        ray.shutdown()


def test_ray_tune_search_records_trials_and_resumes_without_rerunning(store, ray_once):
    cfg = OptimizeConfig(agent="tpe", budget=3, seed=2, env=EnvConfig(knobs=None, eval=PLACE),
                         tune=TuneConfig(num_cpus=1))
    run = store.create({"designs": ["counter"], "optimize": cfg.to_dict()}, design="counter", kind="optimize")

    def progress(fraction: float, message: str) -> None:
        if message.startswith("trial 1/"):
            run.request_cancel()  # stop after the first trial, as the page's Cancel does

    optimize(["counter"], cfg, store, run=run, progress=progress)
    assert run.status == "cancelled"
    first = read_optimize_run(run)
    assert len(first["curve"]) == 1 and (run.dir / "tune").is_dir()
    assert run.info()["summary"]["scheduler"] == "ray"
    children = {r["id"] for r in _children(store, run.id)}

    # Resume: the finished trial is kept, only the other two run.
    optimize(["counter"], cfg, store, run=run, resume=True)
    assert run.status == "done"
    data = read_optimize_run(run)
    trials = [r for r in data["evaluations"] if not r["baseline"]]
    assert [r["index"] for r in trials] == [1, 2, 3] and len(data["curve"]) == 3
    assert trials[0]["run_id"] == first["evaluations"][1]["run_id"]
    assert len({r["trial_id"] for r in trials}) == 3
    after = {r["id"] for r in _children(store, run.id)}
    assert children <= after and len(after - children) == 2  # two new flow runs, the default run not re-run
    for r in trials:
        assert r["status"] == "done" and r["stage"] == "place"
        _within_registry(r["knobs"], 10.0)  # the searcher proposed within the registry's ranges
        child = store.get(r["run_id"]).info()
        assert child["origin"] == "optimize" and child["parent"] == run.id
        assert (store.root / r["run_id"] / "03-place" / "placed.def").exists()
        assert r["reward"] == pytest.approx(compute_reward(r["metrics"], data["evaluations"][0]["metrics"],
                                                           cfg.env.reward))
    best = json.loads((run.dir / "best.json").read_text())
    assert best["reward"] == pytest.approx(max([0.0] + [r["reward"] for r in trials]))

    # A second resume finds the budget spent: nothing runs.
    optimize(["counter"], cfg, store, run=run, resume=True)
    assert run.status == "done" and len(read_optimize_run(run)["curve"]) == 3
    assert {r["id"] for r in _children(store, run.id)} == after


# ------------------------------------------------------------------ without Ray, and the CLI
def test_without_ray_the_serial_loop_runs_the_same_trials(store, monkeypatch):
    from engine.rl import tune

    def no_ray(*args, **kwargs):
        raise EngineError("Ray could not start (RuntimeError: no cluster)")

    monkeypatch.setattr(tune, "start_ray", no_ray)
    cfg = OptimizeConfig(agent="random", budget=2, env=EnvConfig(knobs=FP_KNOBS, eval=EvalConfig(until="floorplan")))
    run = optimize(["counter"], cfg, store)
    assert run.status == "done" and run.info()["summary"]["scheduler"] == "serial"
    notes = [e for e in run.events() if e.get("kind") == "note"]
    assert len(notes) == 1 and "searching serially" in json.dumps(notes[0])
    assert len(read_optimize_run(run)["curve"]) == 2


def test_cli_searcher_budget_and_resume(store, capsys):
    from engine.cli import main

    base = ["--runs-dir", str(store.root), "optimize"]
    rc = main(base + ["counter", "--searcher", "random", "--budget", "2", "--until", "floorplan", "--no-ray",
                      "--concurrency", "1", "--knobs", ",".join(FP_KNOBS)])
    out = capsys.readouterr().out
    assert rc == 0 and "searcher=random" in out and "best reward" in out
    run_id = out.split("run ")[-1].split()[0]
    n = len(read_optimize_run(store.get(run_id))["curve"])
    assert n == 2
    assert main(base + ["--resume", run_id]) == 0
    out = capsys.readouterr().out
    assert "(resumed)" in out and len(read_optimize_run(store.get(run_id))["curve"]) == n
    assert main(base + ["counter", "--policy", "/nonexistent.pt", "--searcher", "tpe", "--budget", "1"]) == 1
    assert "use --searcher ppo" in capsys.readouterr().err
    assert main(base + ["--resume", "no-such-run"]) == 1
