"""Hyper-parameter search over LoRA learning rate, rank and alpha with Optuna (TPE).

Each trial is a short ``train_lora`` run in its own sub-folder; its best validation loss is the objective, and a
trial already worse than the median of the earlier ones at an evaluation is pruned (stopped) there.
``trials.json`` is rewritten after every trial (the Training page reads it live), ``best.json`` holds the winner
and ``trials.png`` plots validation loss per trial.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from engine.runs import write_json
from engine.train.config import SearchConfig, TrainError
from engine.train.lora import train_lora

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


def plot_trials(trials: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [t for t in trials if t.get("val_loss") is not None]
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=110)
    if done:
        sc = ax.scatter([t["params"]["lr"] for t in done], [t["val_loss"] for t in done],
                        c=[t["params"]["r"] for t in done], cmap="viridis", s=50)
        fig.colorbar(sc, ax=ax, label="rank r")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("best validation loss")
    ax.set_title("LoRA search trials")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_search(cfg: SearchConfig | None = None, progress: ProgressFn | None = None,
               cancel: CancelFn | None = None) -> dict:
    """Run ``cfg.n_trials`` trials; returns {"best": {...}, "trials": [...]} (also written to out_dir)."""
    import optuna

    cfg = cfg or SearchConfig()
    if cfg.n_trials < 1:
        raise TrainError("n_trials must be at least 1")
    if not (0 < cfg.lr_min <= cfg.lr_max):
        raise TrainError(f"bad learning-rate range [{cfg.lr_min}, {cfg.lr_max}]")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "CANCEL").unlink(missing_ok=True)
    t0 = time.time()
    # The study lives in SQLite next to the trials: a killed search run again with the same settings keeps its
    # finished trials and runs only the rest; a larger n_trials extends it; other settings start a new study.
    storage = f"sqlite:///{(out / 'study.db').resolve()}"

    def settings(d: dict) -> dict:
        return {k: v for k, v in d.items() if k != "n_trials"}

    same = ((out / "config.json").is_file() and (out / "study.db").is_file()
            and settings(json.loads((out / "config.json").read_text())) == settings(cfg.to_dict()))
    if not same:
        (out / "study.db").unlink(missing_ok=True)
        (out / "trials.json").unlink(missing_ok=True)
    write_json(out / "config.json", cfg.to_dict())
    trials: list[dict] = []
    if same and (out / "trials.json").is_file():
        trials = [t for t in json.loads((out / "trials.json").read_text()) if t.get("state") in ("done", "pruned")]

    def cancelled() -> bool:
        return (out / "CANCEL").exists() or (cancel is not None and cancel())

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", cfg.lr_min, cfg.lr_max, log=True)
        r = trial.suggest_categorical("r", list(cfg.ranks))
        factor = trial.suggest_categorical("alpha_factor", list(cfg.alpha_factors))
        trial_cfg = dataclasses.replace(cfg.base, lr=lr, r=r, alpha=factor * r,
                                        out_dir=str(out / f"trial-{trial.number:03d}"))
        record = {"number": trial.number, "params": {"lr": lr, "r": r, "alpha": factor * r}, "state": "running",
                  "out_dir": trial_cfg.out_dir}
        trials.append(record)
        write_json(out / "trials.json", trials)

        def trial_progress(f: float, msg: str) -> None:
            if progress is not None:
                progress(min(1.0, (trial.number + f) / cfg.n_trials), f"trial {trial.number + 1}/{cfg.n_trials}: {msg}")

        def report(step: int, loss: float) -> bool:
            trial.report(loss, step)
            return trial.should_prune()

        try:
            res = train_lora(trial_cfg, progress=trial_progress, cancel=cancelled, on_eval=report)
        except Exception as exc:
            record.update(state="failed", error=str(exc))
            write_json(out / "trials.json", trials)
            raise
        record.update(state=res.state, val_loss=res.best_val_loss, final_val_loss=res.final_val_loss,
                      first_val_loss=res.first_val_loss, steps=res.steps, seconds=res.seconds)
        write_json(out / "trials.json", trials)
        if res.state == "cancelled":
            trial.study.stop()
        if res.state == "pruned":
            raise optuna.TrialPruned()
        # no evaluation ran: NaN, which Optuna records as a failed trial
        return res.best_val_loss if res.best_val_loss is not None else float("nan")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A trial whose validation loss at an evaluation is worse than the median of earlier trials at that step
    # stops there (after two complete trials): most of a search's time goes to the promising settings.
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1) if cfg.prune
              else optuna.pruners.NopPruner())
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=cfg.seed),
                                pruner=pruner, study_name="lora-search", storage=storage, load_if_exists=True)
    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    n_left = cfg.n_trials - sum(t.state in finished_states for t in study.trials)
    if n_left < cfg.n_trials:
        log.info("search in %s: %d trials already finished, %d to go", out, cfg.n_trials - n_left, max(0, n_left))
    if n_left > 0:
        study.optimize(objective, n_trials=n_left, catch=())
    finished = [t for t in trials if t.get("val_loss") is not None and t.get("state") == "done"]
    if not finished:
        raise TrainError("no search trial finished", hint="see the trial folders' status.json")
    best = min(finished, key=lambda t: t["val_loss"])
    summary = {"best": best, "trials": trials, "n_trials": len(trials), "seconds": round(time.time() - t0, 2),
               "state": "cancelled" if cancelled() else "done"}
    write_json(out / "trials.json", trials)
    write_json(out / "best.json", summary)
    plot_trials(trials, out / "trials.png")
    log.info("search: %d trials, best val loss %.4f with %s (%.1f s)", len(trials), best["val_loss"],
             best["params"], summary["seconds"])
    return summary
