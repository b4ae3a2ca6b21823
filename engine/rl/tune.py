"""Search on Ray Tune: TPE (Optuna) by default, random search beside it, on Tune's own trial scheduler.

This is OpenROAD AutoTuner's shape: each trial is one real flow run of one design with a knob setting from the
searcher; Ray Tune schedules the trials (1 CPU each, ``max_concurrent_trials`` at once, on this machine or a
cluster by address), keeps the experiment in the optimisation run's folder (``<run>/tune``), so a second call
with ``resume`` restores it (``Tuner.restore``) and runs only what had not finished, and stops bad trials early
with ASHA on the flow's stages::

    trial:  synth .. place  -> report (partial PPA score)   ASHA: bottom half stops here
                    .. route  -> report                      ASHA: bottom half stops here
                    .. timing -> report (the reward)          the trial's result

Searchers (OptimizeConfig.agent): ``tpe`` (Optuna's TPE through Tune's OptunaSearch), ``random`` (Optuna's
random sampler through the same OptunaSearch, so the two differ only in how they propose). PPO stays in
engine.rl.optimize (a learning loop over the gymnasium env, parallel through engine.parallel), behind the same
``optimize()`` entry and run format.

The searcher sees the knobs in native units over the registry's ranges (engine.rl.knobs); the reward is
engine.rl.reward's PPA score against the design's default run (run once, cached in the runs folder). Every trial
is a child flow run of the optimisation run (origin "optimize", parent = the optimisation's id).

Ray starts lazily, small: ``num_cpus`` of this machine (default: its cores), no dashboard, a 100 MB object
store (trials exchange only small dicts); trial workers are reused from one trial to the next. Where Ray is
missing or does not start, the same trials run in this process through an Optuna ask/tell loop, after one line
saying so.
"""
from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError

log = logging.getLogger(__name__)

SEARCHERS = ("tpe", "random")  # on Ray Tune; "ppo" runs through engine.rl.optimize
DEFAULT_SEARCHER = "tpe"  # OptimizeConfig.agent's default (here so the CLI can say it without importing torch)
EXPERIMENT = "tune"  # the Ray Tune experiment's folder inside the optimisation run
METRIC = "score"  # what Tune, ASHA and the searcher maximise (the reward once a trial finishes; see trial_score)


@dataclass
class TuneConfig:
    """How the search runs on Ray Tune (what it searches and how it scores live in OptimizeConfig)."""

    scheduler: str = "ray"  # "ray": Ray Tune's trial scheduler; "serial": an Optuna loop in this process (also
    # what runs when Ray is missing or does not start)
    num_cpus: int = 0  # CPUs of a locally started Ray; 0 = the machine's cores (as engine.parallel, so one Ray
    # in a process serves both); trials take 1 CPU each
    object_store_mb: int = 100  # object store of a locally started Ray: trials pass only small dicts
    trial_timeout_s: float = 1800.0  # a trial still running after this is cancelled and scored as failed
    early_stop: bool = True  # ASHA over the flow's stages (after place, after route) when there are stages left
    reduction_factor: int = 2  # ASHA keeps the best 1/reduction_factor of the trials at each stage
    n_startup: int = 0  # TPE's random trials before it models the results; 0 = a third of the budget (2..10)

    def __post_init__(self) -> None:
        if self.scheduler not in ("ray", "serial"):
            raise EngineError(f"tune scheduler '{self.scheduler}' is unknown: use 'ray' or 'serial'")
        if float(self.trial_timeout_s) <= 0:
            raise EngineError(f"trial_timeout_s must be positive (got {self.trial_timeout_s})")
        if int(self.reduction_factor) < 2:
            raise EngineError(f"reduction_factor must be at least 2 (got {self.reduction_factor})")
        if int(self.object_store_mb) < 80:
            raise EngineError(f"object_store_mb must be at least 80 (Ray's minimum; got {self.object_store_mb})")


# ------------------------------------------------------------------ stages and the search space
def stages(until: str) -> list[str]:
    """The steps after which a trial reports: place and route where the flow goes past them, then ``until``."""
    from engine.flow.registry import STEP_IDS

    last = STEP_IDS.index(until)
    return [s for s in ("place", "route") if s in STEP_IDS and STEP_IDS.index(s) < last] + [until]


def search_space(knobs, base: dict[str, Any]) -> dict:
    """Optuna distributions over the knobs' registry ranges, in native units (log-uniform where marked)."""
    import optuna.distributions as od

    space: dict[str, od.BaseDistribution] = {}
    for k in knobs:
        if k.discrete:
            space[k.name] = od.CategoricalDistribution(list(k.options))
            continue
        lo, hi = k.bounds(base.get(k.name))
        if k.kind == "int":
            space[k.name] = od.IntDistribution(int(math.ceil(lo)), int(math.floor(hi)), log=k.log_scale)
        else:
            space[k.name] = od.FloatDistribution(float(lo), float(hi), log=k.log_scale)
    return space


def sampler(searcher: str, seed: int, budget: int, n_startup: int = 0):
    import optuna

    if searcher == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = n_startup or max(2, min(10, budget // 3))
    # constant_liar: trials in flight count as middling results, so parallel trials do not all propose one point.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True, constant_liar=True)


def trial_score(reward: float, stage_index: int, n_stages: int, failure_reward: float) -> float:
    """The number Tune sees. The last stage: the reward. An earlier stage: a partial score squeezed just above a
    failure (by stage, then by partial reward), so ASHA compares trials at a stage by their partial rewards
    (monotone within a stage) and a trial ASHA stops is told to the searcher as about as bad as a failure, below
    every trial that finished, as Optuna ranks pruned trials."""
    if stage_index >= n_stages - 1:
        return float(reward)
    return float(failure_reward + 0.1 * (stage_index + 1) + 0.04 * math.tanh(reward))


# ------------------------------------------------------------------ one trial
def run_trial(params: dict, ctx: dict, report: Callable[[dict], None] | None = None) -> dict:
    """One trial: the flow with these knob values, stage by stage in one run folder, a report after each stage.

    ``ctx``: what every trial shares (TrialContext.as_dict). Returns the last report. Never raises for a failing
    flow: a failed, timed-out or cancelled run is reported with ``failure_reward``.
    """
    from engine.config import FlowConfig
    from engine.flow.flow import run_flow
    from engine.rl.knobs import apply_knobs, clip_knobs, get_knobs
    from engine.rl.reward import RewardConfig, score_evaluation
    from engine.runs import RunStore, started_by

    started = time.time()
    knobs_spec = get_knobs(ctx["knobs"])
    knobs, _ = clip_knobs({k: params[k] for k in ctx["knobs"] if k in params}, knobs_spec, base=ctx["base_knobs"],
                          warn=False)
    config = apply_knobs(FlowConfig.from_dict(ctx["base_config"]), knobs)
    reward_cfg = RewardConfig(**ctx["reward"])
    store = RunStore(ctx["runs_root"])
    deadline = started + float(ctx["trial_timeout_s"])
    cancel_file = Path(ctx["cancel_file"]) if ctx.get("cancel_file") else None

    def cancel() -> bool:
        return time.time() > deadline or bool(cancel_file and cancel_file.exists())

    run = None
    last: dict = {}
    n = len(ctx["stages"])
    for i, stage in enumerate(ctx["stages"]):
        error = None
        try:
            with started_by("optimize", parent=ctx["parent"]):
                run = run_flow(config, store, until=stage, run=run, cancel=cancel, reuse=ctx["reuse"],
                               label=ctx["label"])
            info = run.info()
            result = {"status": info["status"], "error": info.get("error"), "metrics": run.flat_metrics()}
            failed_step = info.get("failed_step")
        except EngineError as exc:
            result, failed_step = {"status": "failed", "error": exc.message, "metrics": {}}, None
        except Exception as exc:  # noqa: BLE001 - a trial must never take the search down
            log.exception("trial crashed")
            result, failed_step = {"status": "failed", "error": f"internal error: {type(exc).__name__}: {exc}",
                                   "metrics": {}}, None
        if result["status"] == "cancelled" and time.time() > deadline:
            result = {**result, "status": "failed",
                      "error": f"trial timed out after {ctx['trial_timeout_s']:g} s (in {stage})"}
        reward, metrics, status, error = score_evaluation(result, knobs, config.clock_ns, ctx["baseline"],
                                                          reward_cfg)
        final = status != "done" or i == n - 1
        now = time.time()
        last = {METRIC: trial_score(reward, n - 1 if final else i, n, reward_cfg.failure_reward), "reward": reward,
                "stage": stage, "final": final, "status": status, "error": error, "failed_step": failed_step,
                "knobs": knobs, "metrics": metrics, "run_id": run.id if run is not None else None,
                "started": started, "ended": now, "seconds": round(now - started, 3), "pid": os.getpid()}
        if report is not None:
            report(last)
        if final:
            break
    return last


def _trainable(config: dict, ctx: dict) -> None:
    """Ray Tune's function trainable: one trial, reporting through tune.report."""
    from ray import tune

    run_trial(config, ctx, tune.report)


# ------------------------------------------------------------------ Ray
def start_ray(address: str | None, num_cpus: int, object_store_mb: int) -> bool:
    """Start (or join) Ray once per process, small; True when this call started it. A running Ray is used."""
    from engine.parallel import ensure_ray

    t0 = time.time()
    started = ensure_ray(address, max(1, num_cpus), object_store_mb,
                         hint="check the Ray address, or search without Ray (scheduler 'serial')")
    if started:
        log.info("Ray started (%s) in %.1f s", address or f"local, {max(1, num_cpus)} CPUs", time.time() - t0)
    return started


def _quiet_tune() -> None:
    # Set before Tune reads them: the legacy reporter (verbose=0 is then silent), our own JSON logger only,
    # and trials that keep the driver's working directory (paths in configs may be relative to it).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100")


# The driver-side sinks of the Tune callbacks, by optimisation run id: callbacks are pickled into the experiment
# (for Tuner.restore), so they carry only the id and find the live recorder here.
_SINKS: dict[str, Callable[[dict], None]] = {}


def _make_callback(run_id: str):
    from ray import tune

    class Recorded(tune.Callback):
        """Hands every finished trial (done, failed, timed out, stopped by ASHA) to the optimisation's recorder."""

        def __init__(self, key: str):
            self.key = key

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._send(trial, error=None)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._send(trial, error="the trial's Ray worker failed")

        def _send(self, trial, error: str | None) -> None:
            # Through the module, not this function's globals: cloudpickle would copy a global dict (and the
            # recorder's lock in it) into the experiment.
            from engine.rl import tune as this

            sink = this._SINKS.get(self.key)
            if sink is not None:
                sink({"trial_id": trial.trial_id, "config": dict(trial.config or {}),
                      "result": dict(trial.last_result or {}), "error": error})

    return Recorded(run_id)


def _make_stopper(cancel_file: Path | None):
    from ray import tune

    class CancelStopper(tune.Stopper):
        """Ends the whole experiment once the run's CANCEL file appears (the page's Cancel, Ctrl-C)."""

        def __init__(self, path: str | None):
            self.path = path

        def __call__(self, trial_id, result) -> bool:
            return False

        def stop_all(self) -> bool:
            return bool(self.path and Path(self.path).exists())

    return CancelStopper(str(cancel_file) if cancel_file else None)


# ------------------------------------------------------------------ the search
@dataclass
class TrialContext:
    """What every trial of one search shares (sent once to Ray's object store)."""

    base_config: dict  # the design's FlowConfig with the evaluation's placer overrides, knobs at their defaults
    knobs: list[str]
    base_knobs: dict[str, Any]
    baseline: dict[str, Any]  # derived metrics of the default run
    reward: dict
    stages: list[str]
    runs_root: str
    parent: str
    label: str
    cancel_file: str | None
    trial_timeout_s: float
    reuse: bool

    def as_dict(self) -> dict:
        return asdict(self)


def record_of(item: dict, design: str, failure_reward: float) -> dict:
    """A finished Tune trial (callback payload) as one evaluations.jsonl record."""
    r = item.get("result") or {}
    if not r.get("status"):  # the trial died before reporting
        now = time.time()
        return {"design": design, "baseline": False, "knobs": item.get("config") or {}, "metrics": {},
                "reward": float(failure_reward), "run_id": None, "status": "failed",
                "error": item.get("error") or "the trial ended without a result", "failed_step": None,
                "started": now, "ended": now, "seconds": 0.0, "trial_id": item.get("trial_id"), "stage": None,
                METRIC: float(failure_reward)}
    status = r["status"] if r.get("final") else "stopped"  # ASHA stopped it after an early stage
    return {"design": design, "baseline": False, "knobs": r.get("knobs", {}), "metrics": r.get("metrics", {}),
            "reward": float(r.get("reward", failure_reward)), "run_id": r.get("run_id"), "status": status,
            "error": r.get("error") or item.get("error"), "failed_step": r.get("failed_step"),
            "started": r.get("started"), "ended": r.get("ended"), "seconds": r.get("seconds"),
            "trial_id": item.get("trial_id"), "stage": r.get("stage"), METRIC: r.get(METRIC)}


def search(design: str, cfg, store, run, rec, *, resume: bool = False,
           progress: Callable[[float, str], None] | None = None) -> dict:
    """Run one search (cfg: OptimizeConfig with agent tpe/random) on one design into the optimisation ``run``,
    recording each finished trial through ``rec`` (optimize.Recorder). Returns {"scheduler", "ray_start_s",
    "resumed"}."""
    from engine.rl.env import design_config
    from engine.rl.evaluate import evaluate_config, with_place_overrides
    from engine.rl.knobs import default_knobs, get_knobs
    from engine.rl.reward import default_run, derived_metrics

    if cfg.agent not in SEARCHERS:
        raise EngineError(f"searcher '{cfg.agent}' does not run on Ray Tune; searchers: {', '.join(SEARCHERS)}")
    ev, tc = cfg.env.eval, cfg.tune
    name, flow_cfg = design_config(design)
    base_cfg = with_place_overrides(flow_cfg, ev.place_overrides)
    knobs = get_knobs(cfg.env.knobs)
    base_knobs = default_knobs(base_cfg, knobs)
    cancel_file = run.dir / "CANCEL"
    label = f"optimize {run.id}"

    # The default run: once per (config, until), cached in the runs folder; recorded once per optimisation.
    def evaluate(conf: dict) -> dict:
        return evaluate_config(conf, str(store.root), ev.until, label=label, cancel_file=str(cancel_file),
                               reuse=ev.reuse)

    base = default_run(base_cfg.to_dict(), ev.until, store.root, evaluate)
    baseline = derived_metrics(base["metrics"], base_cfg.clock_ns)
    if name not in rec.baselines:
        now = time.time()
        rec({"design": name, "baseline": True, "knobs": base_knobs, "metrics": baseline, "reward": 0.0,
             "run_id": base["run_id"], "status": "done", "error": None, "started": now, "ended": now,
             "seconds": base.get("seconds"), "cached": base["cached"]})
    ctx = TrialContext(base_config=base_cfg.to_dict(), knobs=[k.name for k in knobs], base_knobs=base_knobs,
                       baseline=baseline, reward=asdict(cfg.env.reward), stages=stages(ev.until),
                       runs_root=str(store.root.resolve()), parent=run.id, label=label,
                       cancel_file=str(cancel_file), trial_timeout_s=float(tc.trial_timeout_s), reuse=ev.reuse)
    space = search_space(knobs, base_knobs)
    failure = cfg.env.reward.failure_reward

    def sink(item: dict) -> None:
        r = record_of(item, name, failure)
        rec(r)
        if r["status"] == "failed":
            log.warning("trial %d of %s failed (%s); reward %.2f and the search goes on: %s", rec.index, name,
                        r.get("failed_step") or "flow", r["reward"], r.get("error"))
        msg = (f"trial {rec.index}/{cfg.budget}: reward {r['reward']:+.3f} ({r['status']}"
               f"{', after ' + r['stage'] if r['status'] == 'stopped' else ''})")
        run.event("progress", fraction=min(1.0, rec.index / cfg.budget), message=msg, trial=r.get("trial_id"))
        if progress:
            progress(min(1.0, rec.index / cfg.budget), msg)

    if tc.scheduler == "ray":
        t0 = time.time()
        try:
            import ray  # noqa: F401 - is it there at all
            from ray import tune  # noqa: F401

            _quiet_tune()  # before Ray starts: its workers inherit these
            started = start_ray(ev.ray_address, tc.num_cpus or os.cpu_count() or 1, tc.object_store_mb)
        except (ImportError, EngineError) as exc:
            why = exc.message if isinstance(exc, EngineError) else f"ray is not installed ({exc})"
            note = f"Ray Tune unavailable ({why}); searching serially with Optuna in this process"
            log.warning(note)
            run.event("note", message=note)
        else:
            ray_start_s = round(time.time() - t0, 2) if started else 0.0
            _ray_search(cfg, ctx, space, run, rec, sink, resume)
            return {"scheduler": "ray", "ray_start_s": ray_start_s, "resumed": resume}
    _serial_search(cfg, ctx, space, rec, sink, lambda: cancel_file.exists())
    return {"scheduler": "serial", "ray_start_s": 0.0, "resumed": resume}


def _experiments(run_dir: Path) -> list[Path]:
    """The run's Tune experiments, oldest first: ``tune``, then ``tune-2``, ... (one per continuation)."""
    found = [p for p in Path(run_dir).glob(f"{EXPERIMENT}*") if p.is_dir()]

    def number(p: Path) -> int:
        tail = p.name[len(EXPERIMENT):].lstrip("-")
        return int(tail) if tail.isdigit() else 1

    return sorted(found, key=number)


def _recorded_score(row: dict) -> float:
    """What the searcher was told for a recorded trial (the reward where an older record has no score)."""
    return float(row[METRIC] if row.get(METRIC) is not None else row["reward"])


def _recorded(rec) -> list[dict]:
    return [r for r in rec.rows() if not r.get("baseline")]


def _ray_search(cfg, ctx: TrialContext, space: dict, run, rec, sink, resume: bool) -> None:
    """Fit the search on Ray Tune. Resume: ``Tuner.restore`` the latest experiment (its unfinished trials run
    again, finished ones are kept); if the budget is still not spent (a cancel ends an experiment for good), a
    continuation experiment runs the rest with the searcher told every recorded trial (never run again)."""
    _quiet_tune()
    import optuna
    from ray import tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trainable = tune.with_resources(tune.with_parameters(_trainable, ctx=ctx.as_dict()), {"cpu": 1})
    seen = {r.get("trial_id") for r in _recorded(rec) if r.get("trial_id")}

    def once(item: dict) -> None:  # a trial Tune reports again after a restore is recorded once
        if item.get("trial_id") in seen:
            return
        seen.add(item.get("trial_id"))
        sink(item)

    _SINKS[run.id] = once
    experiments = _experiments(run.dir)
    path = experiments[-1] if experiments else run.dir / EXPERIMENT
    try:
        if resume and experiments and tune.Tuner.can_restore(str(path)):
            log.info("resuming the Ray Tune experiment in %s", path)
            tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True).fit()
            left = cfg.budget - len(_recorded(rec))
            if left <= 0 or run.cancel_requested():
                return
            path = run.dir / f"{EXPERIMENT}-{len(experiments) + 1}"
            log.info("continuing with %d trial(s) in %s", left, path)
        elif resume:
            log.info("nothing to resume in %s: starting the search", path)
        _new_tuner(cfg, ctx, space, run, trainable, path, _recorded(rec)).fit()
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - Tune's own failures become one message a person can act on
        raise EngineError(f"Ray Tune failed: {type(exc).__name__}: {exc}",
                          hint=f"the experiment is kept in {path}; `cda optimize --resume {run.id}` "
                               "continues it") from None
    finally:
        _SINKS.pop(run.id, None)


def _new_tuner(cfg, ctx: TrialContext, space: dict, run, trainable, path: Path, done: list[dict]):
    """A Tuner over the rest of the budget; ``done``: trials recorded earlier, told to the searcher as results."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    tc = cfg.tune
    n_stages = len(ctx.stages)
    scheduler = (ASHAScheduler(time_attr="training_iteration", metric=METRIC, mode="max", max_t=n_stages,
                               grace_period=1, reduction_factor=tc.reduction_factor)
                 if tc.early_stop and n_stages > 1 else FIFOScheduler())
    points = [{k: r["knobs"][k] for k in space} for r in done if all(k in (r.get("knobs") or {}) for k in space)]
    scores = [_recorded_score(r) for r in done if all(k in (r.get("knobs") or {}) for k in space)]
    alg = OptunaSearch(space=space, metric=METRIC, mode="max",
                       sampler=sampler(cfg.agent, cfg.seed + len(done), cfg.budget, tc.n_startup),
                       points_to_evaluate=points or None, evaluated_rewards=scores or None)
    return tune.Tuner(
        trainable,
        # reuse_actors: a trial's worker stays up for the next one (engine and torch imported once): about 2 s
        # less per trial, most of a small design's trial.
        tune_config=tune.TuneConfig(search_alg=alg, scheduler=scheduler, num_samples=cfg.budget - len(done),
                                    max_concurrent_trials=max(1, cfg.env.eval.parallel), reuse_actors=True),
        run_config=tune.RunConfig(name=path.name, storage_path=str(run.dir.resolve()), verbose=0,
                                  stop=_make_stopper(Path(ctx.cancel_file) if ctx.cancel_file else None),
                                  callbacks=[_make_callback(run.id), JsonLoggerCallback()], log_to_file=False))


def _serial_search(cfg, ctx: TrialContext, space: dict, rec, sink, cancelled: Callable[[], bool]) -> None:
    """The same trials through an Optuna ask/tell loop in this process (no ASHA: that needs Tune's scheduler).
    Resumes by telling the study the trials already recorded and running only the rest of the budget."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler(cfg.agent, cfg.seed, cfg.budget,
                                                                      cfg.tune.n_startup))
    done = 0
    for row in rec.rows():
        if row.get("baseline") or row.get("design") is None:
            continue
        params = {k: v for k, v in (row.get("knobs") or {}).items() if k in space}
        try:
            study.add_trial(optuna.trial.create_trial(params=params, distributions={k: space[k] for k in params},
                                                      value=_recorded_score(row)))
        except ValueError:  # a recorded value outside today's ranges: still counted, not modelled
            pass
        done += 1
    ctx_d = ctx.as_dict()
    serial_ctx = {**ctx_d, "stages": ctx_d["stages"][-1:]}  # no early stopping here: one report per trial
    while done < cfg.budget and not cancelled():
        trial = study.ask(space)
        last = run_trial(trial.params, serial_ctx)
        study.tell(trial, float(last.get(METRIC, cfg.env.reward.failure_reward)))
        sink({"trial_id": f"serial-{trial.number}", "config": trial.params, "result": last, "error": None})
        done += 1
