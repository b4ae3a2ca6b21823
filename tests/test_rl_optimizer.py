"""RL optimizer: knobs, reward, the gymnasium env over the real flow, PPO learning, failures, the CLI.

Evaluations stop after the floorplan (real Yosys + our floorplan) on the tiny counter design, so every
evaluation is a real flow run that costs well under a second once synthesis is cached.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from engine.errors import EngineError
from engine.rl.env import EnvConfig, FlowEnv
from engine.rl.evaluate import EvalConfig
from engine.rl.knobs import KNOB_BY_NAME, KnobSpace, clip_knobs, get_knobs
from engine.rl.optimize import OptimizeConfig, optimize, read_optimize_run
from engine.rl.reward import RewardConfig, compute_reward, derived_metrics, reward_terms
from engine.runs import RunStore

CHEAP = EvalConfig(until="floorplan")
FP_KNOBS = ["floorplan.utilization", "floorplan.aspect_ratio"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RunStore:
    # One store for the module: synthesis of the counter is then cached across tests.
    return RunStore(tmp_path_factory.mktemp("rl-runs"))


# ------------------------------------------------------------------ knobs and reward (no tools)
def test_knob_out_of_range_is_clipped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="engine.rl.knobs"):
        values, warnings = clip_knobs({"floorplan.utilization": 1.4, "place.target_density": 0.75,
                                       "clock_ns": 100.0, "synth.abc_script": "area"},
                                      base={"clock_ns": 10.0})
    assert values["floorplan.utilization"] == pytest.approx(0.85)
    assert values["place.target_density"] == pytest.approx(0.75)
    assert values["clock_ns"] == pytest.approx(20.0)  # relative knob: at most 2x the design's clock
    assert values["synth.abc_script"] == "area"
    assert len(warnings) == 2 and "clipped to 0.85" in warnings[0]
    assert any("floorplan.utilization=1.4" in r.message for r in caplog.records)
    with pytest.raises(EngineError, match="unknown knob 'floorplan.utilisation'"):
        clip_knobs({"floorplan.utilisation": 0.5})
    with pytest.raises(EngineError, match="not one of"):
        clip_knobs({"synth.abc_script": "turbo"})


def test_knob_space_round_trips_native_values():
    space = KnobSpace(get_knobs(), base={"clock_ns": 10.0})
    values = {"floorplan.utilization": 0.5, "floorplan.aspect_ratio": 1.0, "place.target_density": 0.8,
              "place.gamma_base": 4.0, "place.max_iterations": 300, "place.detailed": False,
              "synth.abc_script": "delay", "synth.flatten": True, "clock_ns": 10.0}
    cont, disc = space.encode(values)
    assert all(-1 <= u <= 1 for u in cont)
    back = space.decode(cont, disc)
    for k, v in values.items():
        assert back[k] == pytest.approx(v, rel=0.02) if not isinstance(v, (bool, str)) else back[k] == v
    assert KNOB_BY_NAME["floorplan.aspect_ratio"].log_scale


def test_reward_is_zero_at_baseline_and_rewards_improvement():
    base = derived_metrics({"placement__hpwl": 1000.0, "placement__overflow": 0.10, "timing__setup__ws": 1.0,
                            "route__net__unrouted": 0}, clock_ns=10.0)
    assert base["timing__ecp_ns"] == pytest.approx(9.0)
    qor = RewardConfig()
    assert compute_reward(base, base, qor) == pytest.approx(0.0)
    better = derived_metrics({"placement__hpwl": 900.0, "placement__overflow": 0.10, "timing__setup__ws": 1.0,
                              "route__net__unrouted": 0}, clock_ns=10.0)
    assert compute_reward(better, base, qor) > 0
    unrouted = derived_metrics({**better, "route__net__unrouted": 10}, clock_ns=10.0)
    assert compute_reward(unrouted, base, qor) < compute_reward(better, base, qor)
    # AutoTuner's score: effective clock period 8 ns vs 9 ns is 1/9 better; an unrouted net costs 5 %.
    ecp = RewardConfig(kind="ecp")
    faster = derived_metrics({"timing__setup__ws": 0.0, "route__net__unrouted": 0}, clock_ns=8.0)
    assert compute_reward(faster, base, ecp) == pytest.approx(1 / 9)
    with pytest.raises(EngineError, match="needs timing"):
        compute_reward({"placement__hpwl": 1.0}, {"placement__hpwl": 2.0}, ecp)
    with pytest.raises(EngineError, match="unknown metrics"):
        RewardConfig(weights={"hpwl": 1.0})


# ------------------------------------------------------------------ the env over the real flow
def test_env_passes_gymnasium_check_env(store):
    env = FlowEnv(["counter"], EnvConfig(knobs=FP_KNOBS + ["synth.flatten"], eval=CHEAP), store)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["design"] == "counter"
    obs, reward, terminated, truncated, info = env.step({"continuous": np.array([1.0, 0.0], dtype=np.float32),
                                                         "discrete": np.array([1])})
    assert info["status"] == "done" and info["knobs"]["floorplan.utilization"] == pytest.approx(0.85)
    # Highest utilisation: smaller die than the baseline's, so a positive reward from real metrics.
    assert reward > 0
    assert env.last_record["metrics"]["floorplan__utilization"] > 0.8
    assert (store.root / env.last_record["run_id"] / "02-floorplan" / "floorplan.def").exists()


def test_env_clips_out_of_range_action_with_a_warning(store, caplog):
    env = FlowEnv(["counter"], EnvConfig(knobs=FP_KNOBS, eval=CHEAP), store)
    env.reset(seed=0)
    with caplog.at_level(logging.WARNING, logger="engine.rl.env"):
        knobs = env.knobs_from_action({"continuous": np.array([3.0, -7.0]), "discrete": np.array([0])})
    assert knobs["floorplan.utilization"] == pytest.approx(0.85)
    assert knobs["floorplan.aspect_ratio"] == pytest.approx(0.5)
    assert sum("outside -1..1" in r.message for r in caplog.records) == 2


def test_ppo_improves_reward_on_tiny_design(store):
    cfg = OptimizeConfig(agent="ppo", budget=24, seed=2, env=EnvConfig(knobs=FP_KNOBS, eval=CHEAP))
    run = optimize(["counter"], cfg, store)
    assert run.status == "done"
    data = read_optimize_run(run)
    rewards = [p["reward"] for p in data["curve"]]
    assert len(rewards) == 24 and all(p["status"] == "done" for p in data["curve"])
    # Learning, not luck: the mean of the last 8 evaluations beats the mean of the first 8 clearly.
    assert np.mean(rewards[-8:]) > np.mean(rewards[:8]) + 0.03
    best = data["best"]
    assert best["reward"] == pytest.approx(max(rewards)) and best["run_id"]
    assert (store.root / best["run_id"] / "run.json").exists()
    assert (run.dir / "policy.pt").exists()
    rows = data["evaluations"]
    assert rows[0]["baseline"] and rows[0]["reward"] == 0.0 and len(rows) == 25
    assert all({"knobs", "metrics", "reward", "run_id"} <= set(r) for r in rows)
    assert run.info()["kind"] == "optimize"


def test_failing_evaluation_gets_penalty_and_search_goes_on(store, tmp_path, caplog):
    # 400 IO pins fit on the die edge at utilisation 0.6 but not at 0.85: high settings fail in the floorplan.
    wide = tmp_path / "wide.v"
    wide.write_text("module wide(input [199:0] a, output [199:0] y);\n  assign y = ~a;\nendmodule\n")
    cfg = OptimizeConfig(agent="random", budget=8, seed=3,
                         env=EnvConfig(knobs=["floorplan.utilization"], eval=CHEAP))
    with caplog.at_level(logging.WARNING, logger="engine.rl.env"):
        run = optimize([str(wide)], cfg, store)
    assert run.status == "done"
    curve = read_optimize_run(run)["curve"]
    failed = [p for p in curve if p["status"] == "failed"]
    ok = [p for p in curve if p["status"] == "done"]
    assert len(curve) == 8 and failed and ok
    assert all(p["reward"] == RewardConfig().failure_reward for p in failed)
    assert any("do not fit on the die edge" in r.message for r in caplog.records)
    assert run.info()["summary"]["failures"] == len(failed)


def test_tpe_and_random_use_the_same_budget(store):
    for agent in ("tpe", "random"):
        run = optimize(["counter"], OptimizeConfig(agent=agent, budget=5, seed=1,
                                                   env=EnvConfig(knobs=FP_KNOBS, eval=CHEAP)), store)
        assert len(read_optimize_run(run)["curve"]) == 5, agent


def test_cli_optimize_and_bad_input(store, capsys):
    from engine.cli import main

    rc = main(["--runs-dir", str(store.root), "optimize", "counter", "--agent", "random", "--budget", "3",
               "--until", "floorplan", "--knobs", ",".join(FP_KNOBS)])
    out = capsys.readouterr().out
    assert rc == 0 and "best reward" in out and "floorplan.utilization" in out
    run_id = out.split("run ")[-1].split()[0]
    assert json.loads((store.root / run_id / "best.json").read_text())["run_id"]
    assert main(["--runs-dir", str(store.root), "optimize", "counter", "--knobs", "nope"]) == 1
    assert "unknown knob 'nope'" in capsys.readouterr().err
    assert main(["--runs-dir", str(store.root), "optimize", "no_such_design", "--budget", "2"]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["--runs-dir", str(store.root), "optimize", "counter", "--budget", "0"]) == 1
    assert main(["--runs-dir", str(store.root), "optimize", "counter", "--policy", "/nonexistent.pt",
                 "--until", "floorplan", "--budget", "1"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cancel_keeps_what_was_learned(store):
    run = store.create({"designs": ["counter"]}, design="counter", kind="optimize")

    def progress(fraction: float, message: str) -> None:
        if message.startswith("evaluation 4/"):
            run.request_cancel()  # as the page's Cancel button does, mid-search

    cfg = OptimizeConfig(agent="ppo", budget=40, seed=1, env=EnvConfig(knobs=FP_KNOBS, eval=CHEAP))
    optimize(["counter"], cfg, store, run=run, progress=progress)
    assert run.status == "cancelled"
    data = read_optimize_run(run)
    assert 4 <= len(data["curve"]) < 40
    assert data["has_policy"] and data["best"]["run_id"]


def test_evaluation_until_place_scores_wirelength(store):
    ev = EvalConfig(until="place", place_overrides={"max_iterations": 120, "frame_every": 0})
    env = FlowEnv(["counter"], EnvConfig(knobs=["place.target_density"], eval=ev), store)
    env.reset(seed=0)
    _, reward, _, _, info = env.step({"continuous": np.array([-1.0], dtype=np.float32), "discrete": np.array([0])})
    rec = env.last_record
    assert info["status"] == "done" and info["knobs"]["place.target_density"] == pytest.approx(0.6)
    assert rec["metrics"]["placement__hpwl"] > 0
    # The placer's wirelength and overflow now drive the reward, next to the floorplan's area.
    terms = reward_terms(rec["metrics"], env.ctx.baseline, env.cfg.reward)
    assert {"placement__hpwl", "placement__overflow", "floorplan__die__area_um2"} <= set(terms)
    assert reward == pytest.approx(compute_reward(rec["metrics"], env.ctx.baseline, env.cfg.reward))
    assert (store.root / rec["run_id"] / "03-place" / "placed.def").exists()


def test_effective_clock_period_reward_through_timing(store):
    ev = EvalConfig(until="timing", place_overrides={"max_iterations": 120, "frame_every": 0})
    env = FlowEnv(["counter"], EnvConfig(knobs=["place.detailed"], eval=ev, reward=RewardConfig(kind="ecp")), store)
    env.reset(seed=0)
    base = env.ctx.baseline
    assert base["timing__ecp_ns"] == pytest.approx(10.0 - base["timing__setup__ws"])
    _, reward, _, _, info = env.step({"continuous": np.zeros(1, dtype=np.float32), "discrete": np.array([0])})
    assert info["status"] == "done" and info["knobs"]["place.detailed"] is False
    m = env.last_record["metrics"]
    pen = 0.05 * base["timing__ecp_ns"]
    expected = (base["timing__ecp_ns"] + pen * base["violations"] - m["timing__ecp_ns"] - pen * m["violations"]) \
        / base["timing__ecp_ns"]
    assert reward == pytest.approx(expected)
