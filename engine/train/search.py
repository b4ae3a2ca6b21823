"""Hyper-parameter search over LoRA learning rate, rank and alpha with Optuna (TPE).

Each trial is a short ``train_lora`` run in its own sub-folder; its best validation loss is the objective.
``trials.json`` is rewritten after every trial (the Training page reads it live), ``best.json`` holds the winner
and ``trials.png`` plots validation loss per trial.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Callable

from engine.train.config import SearchConfig, TrainError
from engine.train.lora import train_lora

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


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
    _write_json(out / "config.json", cfg.to_dict())
    t0 = time.time()
    trials: list[dict] = []

    def cancelled() -> bool:
        return (out / "CANCEL").exists() or (cancel is not None and cancel())

    def objective(trial: "optuna.Trial") -> float:
        lr = trial.suggest_float("lr", cfg.lr_min, cfg.lr_max, log=True)
        r = trial.suggest_categorical("r", list(cfg.ranks))
        factor = trial.suggest_categorical("alpha_factor", list(cfg.alpha_factors))
        trial_cfg = dataclasses.replace(cfg.base, lr=lr, r=r, alpha=factor * r,
                                        out_dir=str(out / f"trial-{trial.number:03d}"))
        record = {"number": trial.number, "params": {"lr": lr, "r": r, "alpha": factor * r}, "state": "running",
                  "out_dir": trial_cfg.out_dir}
        trials.append(record)
        _write_json(out / "trials.json", trials)

        def trial_progress(f: float, msg: str) -> None:
            if progress is not None:
                progress((trial.number + f) / cfg.n_trials, f"trial {trial.number + 1}/{cfg.n_trials}: {msg}")

        try:
            res = train_lora(trial_cfg, progress=trial_progress, cancel=cancelled)
        except Exception as exc:
            record.update(state="failed", error=str(exc))
            _write_json(out / "trials.json", trials)
            raise
        record.update(state=res.state, val_loss=res.best_val_loss, final_val_loss=res.final_val_loss,
                      first_val_loss=res.first_val_loss, steps=res.steps, seconds=res.seconds)
        _write_json(out / "trials.json", trials)
        if res.state == "cancelled":
            trial.study.stop()
        return res.best_val_loss

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=cfg.seed),
                                study_name="lora-search")
    study.optimize(objective, n_trials=cfg.n_trials, catch=())
    finished = [t for t in trials if t.get("val_loss") is not None]
    if not finished:
        raise TrainError("no search trial finished", hint="see the trial folders' status.json")
    best = min(finished, key=lambda t: t["val_loss"])
    summary = {"best": best, "trials": trials, "n_trials": len(trials), "seconds": round(time.time() - t0, 2),
               "state": "cancelled" if cancelled() else "done"}
    _write_json(out / "trials.json", trials)
    _write_json(out / "best.json", summary)
    plot_trials(trials, out / "trials.png")
    log.info("search: %d trials, best val loss %.4f with %s (%.1f s)", len(trials), best["val_loss"],
             best["params"], summary["seconds"])
    return summary
