"""Training work as jobs: each is a run in the run store (kind ``train-<what>``) whose folder is the output folder,
started in a worker process by ``engine.jobs.JobQueue`` so the Training page never trains in its own process.

The page (or anyone) calls ``submit_train_job("lora", config)``; the worker calls the matching ``*_target``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.train.config import ExportConfig, LoraTrainConfig, SearchConfig, TrainError

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

CONFIGS: dict[str, Any] = {"lora": LoraTrainConfig, "search": SearchConfig, "export": ExportConfig}


def _with_out_dir(what: str, run) -> Any:
    cfg = CONFIGS[what].from_dict(run.config)
    cfg.out_dir = str(run.dir)
    return cfg


def lora_target(run, progress: ProgressFn, cancelled: CancelFn) -> None:
    from engine.train.lora import train_lora

    res = train_lora(_with_out_dir("lora", run), progress, cancelled)
    run.update_info(result={k: v for k, v in res.__dict__.items() if k != "model"})


def search_target(run, progress: ProgressFn, cancelled: CancelFn) -> None:
    from engine.train.search import run_search

    summary = run_search(_with_out_dir("search", run), progress, cancelled)
    run.update_info(result={"best": summary["best"], "n_trials": summary["n_trials"]})


def export_target(run, progress: ProgressFn, cancelled: CancelFn) -> None:
    from engine.train.export import export_model

    progress(0.1, "merging the adapter")
    res = export_model(_with_out_dir("export", run))
    run.update_info(result={"gguf_path": res.gguf_path, "ok": res.verify["ok"]})


TARGETS = {what: f"engine.train.jobs:{what}_target" for what in CONFIGS}


def submit_train_job(what: str, config: Any, store=None, label: str = "") -> str:
    """Create a ``train-<what>`` run with this config and queue its worker; returns the run id."""
    from engine.jobs import JobQueue, register_target
    from engine.runs import RunStore

    if what not in CONFIGS:
        raise TrainError(f"unknown training job {what!r}", hint=f"one of: {', '.join(CONFIGS)}")
    if not isinstance(config, CONFIGS[what]):
        raise TrainError(f"a {what} job needs a {CONFIGS[what].__name__}")
    store = store or RunStore()
    kind = f"train-{what}"
    register_target(kind, TARGETS[what])
    design = Path(getattr(config, "base_model", "") or getattr(config, "adapter_dir", "") or what).name
    run = store.create(config.to_dict(), design=design, kind=kind, label=label)
    JobQueue(store).submit(run.id, kind)
    log.info("submitted %s as run %s", kind, run.id)
    return run.id


# The data set is made by `cda bench data` (engine/train/data_v2.py) into the folder LoRA reads by default.
DEFAULT_DIRS = {"data": LoraTrainConfig().data_dir, "lora": LoraTrainConfig().out_dir,
                "search": SearchConfig().out_dir, "export": ExportConfig().out_dir}
# The file that shows a folder holds a result of this kind.
MARKERS = {"data": "card.json", "lora": "curves.json", "search": "trials.json", "export": "verify.json"}


@dataclass
class TrainOutput:
    """One result folder of a training job or of a CLI command, as the Training page lists them."""

    label: str
    folder: Path
    run_id: str | None = None  # the job's run id; None for a CLI output folder
    status: str = ""  # the job's status (queued/running/done/failed/cancelled); for CLI folders, status.json's


def list_outputs(what: str, store=None, limit: int = 30) -> list[TrainOutput]:
    """Job runs of kind ``train-<what>`` (newest first), then the CLI's default folder when it holds a result."""
    from engine.runs import RunStore, read_json

    store = store or RunStore()
    out: list[TrainOutput] = []
    for row in store.list(limit=limit, kind=f"train-{what}"):
        out.append(TrainOutput(label=f"job {row['id']} · {row['status']}", folder=store.root / row["id"],
                               run_id=row["id"], status=row["status"]))
    default = Path(DEFAULT_DIRS[what])
    if (default / MARKERS[what]).is_file():
        state = (read_json(default / "status.json", {}) or {}).get("state", "done")
        out.append(TrainOutput(label=f"{default} (from the CLI)", folder=default, status=state))
    return out
