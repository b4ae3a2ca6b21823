"""Models answer the benchmark problems; each answer is scored and timed; the results go to one JSON file.

Models (``--model``):
- ``engine``            the engine-grounded specialist: no LLM; retrieval picks which knobs to try and the engine
                        tool (a placement run) measures them. Specialist mode only.
- ``rules``             a rule-of-thumb baseline with no LLM and no engine runs (what a textbook would say).
- ``ollama:<name>``     an Ollama model through the specialists' host (SpecialistConfig.host or --host).
- ``hf:<folder>``       a local Hugging Face causal-LM folder (never downloaded).
- ``tiny``              the project's own model from engine/train (its LoRA adapter when one was trained).

Modes: ``baseline`` sends the plain question; ``specialist`` adds what the specialists add: the router's choice
of specialist, retrieved passages, and engine tool results for the settings the question names.
"""
from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.bench.knowledge import Retriever, knobs_in, retrieval_hit
from engine.bench.measure import KNOBS, PROPOSABLE, Measurer
from engine.bench.problems import PROBLEMS_PATH, Problem, act_cost, load_problems
from engine.bench.score import score_answer, summarize
from engine.errors import EngineError

log = logging.getLogger(__name__)

RESULTS_DIR = Path(__file__).resolve().parents[2] / "bench" / "results"
MODES = ("baseline", "specialist")
SYSTEM = ("You are a physical-design assistant. Answer the placement question with only a JSON object in the "
          "requested format, no other text.")


@dataclass
class RunnerConfig:
    """One benchmark run: which model, which mode, which problems, where the results go."""

    model: str = "engine"
    """engine | rules | ollama:<name> | hf:<folder> | tiny (see the module doc)."""
    mode: str = "specialist"
    """baseline (plain prompt) or specialist (routing + retrieval + engine tool results)."""
    problems: str = str(PROBLEMS_PATH)
    """Problem file (JSON lines) written by `cda bench build`."""
    out: str = ""
    """Results JSON; empty = bench/results/<model>-<mode>.json."""
    limit: int = 0
    """Answer only the first N problems (0 = all)."""
    kinds: tuple[str, ...] = ()
    """Only these kinds (empty = all)."""
    host: str = ""
    """Ollama server for ollama:<name> models; empty = the specialists' configured host."""
    timeout_s: float = 60.0
    """Seconds one model call may take before the answer counts as missing."""
    retrieval_k: int = 3
    """Passages retrieved per question in specialist mode."""
    retrieval: str = "auto"
    """auto (the specialists' knowledge base when it loads, else the bench's passages), specialists, or bench."""
    max_new_tokens: int = 96
    """Answer length cap for local models."""


# ---------------------------------------------------------------------- LLM backends
class TextModel:
    """Something that turns a prompt into text."""

    name = "model"

    def generate(self, prompt: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError


class OllamaModel(TextModel):
    """An Ollama model through the specialists' client (engine.specialists.llm.OllamaBackend)."""

    def __init__(self, model: str, host: str, timeout_s: float):
        from engine.specialists.config import SpecialistConfig
        from engine.specialists.llm import LLMError, OllamaBackend, _same_model

        self.name = f"ollama:{model}"
        self.backend = OllamaBackend(SpecialistConfig(host=host, timeout_s=timeout_s))
        self._error = LLMError
        try:
            present = self.backend.list_models()
        except LLMError as exc:
            raise EngineError(str(exc), hint="start `ollama serve` or pass --host") from None
        match = next((m for m in present if _same_model(m, model)), None)
        if match is None:
            raise EngineError(f"Ollama at {host} has no model '{model}' (it has: {', '.join(present) or 'none'})",
                              hint=f"`ollama pull {model}` or pick one of those")
        self.model = match

    def generate(self, prompt: str) -> str:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        try:
            return "".join(self.backend.stream(self.model, messages))
        except self._error as exc:
            raise EngineError(str(exc)) from None


class HFModel(TextModel):
    """A local causal-LM folder (transformers), greedy decoding; a LoRA adapter folder is merged on load."""

    def __init__(self, folder: str | Path, max_new_tokens: int, name: str | None = None):
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        folder = Path(folder)
        self.name = name or f"hf:{folder}"
        self.max_new_tokens = max_new_tokens
        if (folder / "adapter_config.json").exists():
            from engine.train.lora import load_adapter

            self.tokenizer, self.model = load_adapter(folder)
        else:
            from engine.train.tinymodel import load_model_folder

            self.tokenizer, self.model = load_model_folder(folder)
        self.model.eval()
        try:
            from engine.train.config import PROMPT_TEMPLATE
        except ImportError:  # the training component is optional
            PROMPT_TEMPLATE = "{instruction}\n"
        self.template = PROMPT_TEMPLATE

    def generate(self, prompt: str) -> str:
        import torch

        text = self.template.format(instruction=f"{SYSTEM}\n{prompt}")
        ids = self.tokenizer(text, return_tensors="pt").input_ids
        limit = int(getattr(self.model.config, "max_position_embeddings", 2048)) - self.max_new_tokens
        ids = ids[:, -max(limit, 16):]  # keep the end: the question and the answer format
        with torch.no_grad():
            out = self.model.generate(ids, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def tiny_model_folder() -> Path:
    """The project's own model: the LoRA adapter when trained, else the tiny base model."""
    from engine.train.config import LoraTrainConfig, TinyModelConfig

    lora = Path(LoraTrainConfig().out_dir)
    for folder in (lora / "adapter", lora):
        if (folder / "adapter_config.json").exists():
            return folder
    base = Path(TinyModelConfig().out_dir)
    if (base / "config.json").exists():
        return base
    raise EngineError(f"the project's tiny model is not built ({base} is missing)",
                      hint="build it with `cda train tiny` (a few minutes on CPU)")


# ---------------------------------------------------------------------- answerers
@dataclass
class Answer:
    answer: Any  # dict in the answer format, or the model's raw text
    text: str = ""  # what the model said (empty for non-LLM answerers)
    notes: dict = field(default_factory=dict)  # tool calls, passages, specialist


def tool_context(problem: Problem, measurer: Measurer) -> tuple[list[str], dict]:
    """The engine tool results a specialist gets for a problem: runs of the settings the question names."""
    src = problem.src
    lines, runs = [], {}

    def run(label: str, settings: dict) -> dict:
        m = measurer.measure(src, settings)
        runs[label] = {"run_id": m.run_id, **{k: m.metrics[k] for k in (
            "placement__hpwl", "placement__overflow", "placement__rudy__max", "placement__rudy__hot_region")}}
        met = m.metrics
        lines.append(f"tool place({label}): HPWL={met['placement__hpwl']:.1f} um, overflow="
                     f"{met['placement__overflow']:.4f}, peak RUDY={met['placement__rudy__max']:.4f} in the "
                     f"{met['placement__rudy__hot_region']} (run {m.run_id})")
        return met

    if problem.kind == "predict":
        run("asked settings", problem.settings)
    elif problem.kind == "choose":
        for lab, opt in problem.options.items():
            run(f"option {lab}", {**problem.settings, **opt})
    elif problem.kind == "diagnose":
        run("as given", problem.settings)
    elif problem.kind == "act":
        run("defaults", problem.settings)
    return lines, runs


class EngineSpecialist:
    """Answers by running the engine tool and reading retrieval; no language model involved."""

    name = "engine"

    def __init__(self, measurer: Measurer):
        self.measurer = measurer

    def answer(self, problem: Problem, passages) -> Answer:
        src, notes = problem.src, {"tool_runs": []}

        def tool(settings: dict) -> dict:
            m = self.measurer.measure(src, settings)
            notes["tool_runs"].append(m.run_id)
            return m.metrics

        if problem.kind == "predict":
            return Answer({"value": tool(problem.settings)[problem.truth["metric"]]}, notes=notes)
        if problem.kind == "choose":
            metric = problem.truth["metric"]
            vals = {lab: tool({**problem.settings, **opt})[metric] for lab, opt in problem.options.items()}
            return Answer({"choice": min(vals, key=vals.get)}, notes=notes)
        if problem.kind == "diagnose":
            base = tool(problem.settings)
            # Only the knobs retrieval names are tried (a specialist tries what its knowledge suggests).
            tried = knobs_in(passages, list(problem.options)) or list(problem.options)[:1]
            peaks = {k: tool({**problem.settings, **problem.options[k]})["placement__rudy__max"] for k in tried}
            notes["knobs_tried"] = tried
            return Answer({"region": base["placement__rudy__hot_region"], "rudy_max": base["placement__rudy__max"],
                           "knob": min(peaks, key=peaks.get)}, notes=notes)
        if problem.kind == "act":
            return Answer({"settings": self._search(problem, passages, tool)}, notes=notes)
        raise ValueError(problem.kind)

    def _search(self, problem: Problem, passages, tool) -> dict:
        """Greedy: one step per retrieved knob in the direction the knob's passage implies, keep the best."""
        obj = problem.objective
        lower_hpwl = obj["metric"] == "placement__hpwl"
        steps = {"floorplan.utilization": (0.15 if lower_hpwl else -0.2),
                 "place.target_density": (0.1 if lower_hpwl else -0.2),
                 "place.density_weight_init": None, "place.gamma_base": (-2.0 if lower_hpwl else 4.0)}
        dw_factor = 1 / 3 if lower_hpwl else 3.0  # a weaker density pull keeps nets short; stronger spreads
        base = {k: float(problem.settings.get(k, KNOBS[k]["default"])) for k in PROPOSABLE}
        best, best_cost = {}, act_cost(tool(problem.settings), obj)
        for knob in (knobs_in(passages, PROPOSABLE) or ["floorplan.utilization"])[:3]:
            if steps[knob] is None:
                value = base[knob] * dw_factor
            else:
                value = base[knob] + steps[knob]
            value = min(max(value, KNOBS[knob]["lo"]), KNOBS[knob]["hi"])
            cand = {**best, knob: round(value, 6)}
            cost = act_cost(tool({**problem.settings, **cand}), obj)
            if cost is not None and (best_cost is None or cost < best_cost):
                best, best_cost = cand, cost
        return best or {"floorplan.utilization": base["floorplan.utilization"]}


class RulesBaseline:
    """Rules of thumb, no engine runs: scale wirelength with the core size, keep the reference overflow,
    prefer dense packing for HPWL and spreading for congestion, blame the centre."""

    name = "rules"

    def answer(self, problem: Problem, passages=None) -> Answer:
        q = problem.question
        if problem.kind == "predict":
            ref = {m.group(1): float(m.group(2)) for m in re.finditer(r"(HPWL|overflow) = ([0-9]+(?:\.[0-9]+)?)", q)}
            if problem.truth.get("metric") == "placement__overflow":
                return Answer({"value": ref.get("overflow", 0.5)})
            u = float(problem.settings.get("floorplan.utilization", 0.6))
            return Answer({"value": ref.get("HPWL", 1000.0) * math.sqrt(0.6 / u)})
        if problem.kind == "choose":
            metric = problem.truth["metric"]

            def rank(opt: dict) -> float:
                u = opt.get("floorplan.utilization", 0.6)
                td = opt.get("place.target_density", 0.9)
                if metric == "placement__hpwl":
                    return -u + abs(opt.get("place.gamma_base", 4.0) - 4.0) * 0.01
                if metric == "placement__overflow":
                    return -math.log(opt.get("place.density_weight_init", 10.0)) - td
                return u + td  # congestion: more room is better
            return Answer({"choice": min(problem.options, key=lambda lab: rank(problem.options[lab]))})
        if problem.kind == "diagnose":
            return Answer({"region": "center", "rudy_max": 2.0, "knob": "floorplan.utilization"})
        if problem.kind == "act":
            if problem.objective["metric"] == "placement__hpwl":
                return Answer({"settings": {"floorplan.utilization": 0.75}})
            return Answer({"settings": {"floorplan.utilization": 0.45, "place.target_density": 0.8}})
        raise ValueError(problem.kind)


class LLMAnswerer:
    """A text model answering with a plain prompt (baseline) or with the specialist's context."""

    def __init__(self, model: TextModel, mode: str, measurer: Measurer | None):
        self.model = model
        self.mode = mode
        self.measurer = measurer
        self.name = model.name

    def prompt(self, problem: Problem, passages) -> tuple[str, dict]:
        # The question first and the answer format last: a small model's context keeps the end of the prompt.
        notes: dict = {}
        parts = [f"Question: {problem.question}"]
        if self.mode == "specialist":
            ctx = "\n".join(f"[{i + 1}] {p.text}" for i, p in enumerate(passages))
            parts.append(f"Knowledge:\n{ctx}")
            if self.measurer is not None:
                lines, runs = tool_context(problem, self.measurer)
                parts.append("Engine tool results:\n" + "\n".join(lines))
                notes["tool_runs"] = [r["run_id"] for r in runs.values()]
        parts.append(f"Answer format: {problem.answer_format}")
        return "\n\n".join(parts), notes

    def answer(self, problem: Problem, passages) -> Answer:
        text, notes = self.prompt(problem, passages)
        out = self.model.generate(text)
        return Answer(out, text=out, notes=notes)


def make_answerer(cfg: RunnerConfig, measurer: Measurer):
    if cfg.mode not in MODES:
        raise EngineError(f"unknown mode '{cfg.mode}'; modes are {', '.join(MODES)}")
    name = cfg.model.strip()
    if name == "engine":
        if cfg.mode != "specialist":
            raise EngineError("the engine-grounded specialist has no baseline mode (it is the tools)",
                              hint="use --mode specialist, or --model rules for a no-LLM baseline")
        return EngineSpecialist(measurer), ["engine tools (placement runs) + retrieval, no LLM"]
    if name == "rules":
        return RulesBaseline(), ["rules of thumb, no LLM, no engine runs"]
    if name.startswith("ollama:"):
        host = cfg.host
        if not host:
            from engine.specialists.config import SpecialistConfig

            host = SpecialistConfig().host
        model = OllamaModel(name.split(":", 1)[1], host, cfg.timeout_s)
        return LLMAnswerer(model, cfg.mode, measurer), [f"{model.name} at {host}"]
    if name.startswith("hf:"):
        model = HFModel(name.split(":", 1)[1], cfg.max_new_tokens)
        return LLMAnswerer(model, cfg.mode, measurer), [model.name]
    if name == "tiny":
        folder = tiny_model_folder()
        model = HFModel(folder, cfg.max_new_tokens, name=f"tiny ({folder})")
        return LLMAnswerer(model, cfg.mode, measurer), [model.name]
    raise EngineError(f"unknown model '{name}'",
                      hint="models: engine, rules, ollama:<name>, hf:<folder>, tiny")


# ---------------------------------------------------------------------- the run
def run_bench(cfg: RunnerConfig, store=None, progress: Callable[[float, str], None] | None = None,
              problems: list[Problem] | None = None) -> dict:
    """Answer, score and time every problem; write and return the results dict."""
    problems = problems if problems is not None else load_problems(cfg.problems)
    if cfg.kinds:
        problems = [p for p in problems if p.kind in cfg.kinds]
    if cfg.limit:
        problems = problems[: cfg.limit]
    if not problems:
        raise EngineError("no problems to run (check --kinds / --limit and the problem file)")
    measurer = Measurer(store)
    answerer, used = make_answerer(cfg, measurer)  # first: an unknown model or a dead server fails fast
    retriever = Retriever(k=cfg.retrieval_k, backend=cfg.retrieval) if cfg.mode == "specialist" else None
    if retriever is not None:
        used = [f"{u}; retrieval: {retriever.backend}" for u in used]
    router = _router() if cfg.mode == "specialist" else None
    rows = []
    for n, p in enumerate(problems):
        passages = retriever.search(p.question) if retriever is not None else []
        t0 = time.perf_counter()
        try:
            ans = answerer.answer(p, passages)
            error = None
        except EngineError as exc:
            ans, error = Answer(None), exc.message
        except Exception as exc:  # noqa: BLE001 - a model that fails on one problem scores 0 there, the run goes on
            ans, error = Answer(None), f"{type(exc).__name__}: {exc}"
        latency = time.perf_counter() - t0
        sc = score_answer(p, ans.answer, measurer)
        row = {"id": p.id, "kind": p.kind, "question": p.question, "answer": ans.answer, "answer_text": ans.text,
               "truth": p.truth.get("answer"), "score": round(sc.score, 4), "solved": sc.solved,
               "detail": sc.detail, "latency_s": round(latency, 3), "error": error, "notes": ans.notes,
               "retrieval_hit": retrieval_hit(passages, p.gold_terms) if passages else None,
               "passages": [x.id for x in passages]}
        if router is not None:
            row["specialist"] = _route(router, p.question)
        rows.append(row)
        if progress:
            progress((n + 1) / len(problems), f"{p.id}: score {sc.score:.2f}")
    model_label = f"hf_{Path(cfg.model[3:]).name}" if cfg.model.startswith("hf:") else cfg.model
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{model_label}-{cfg.mode}")
    result = {"label": label, "model": cfg.model, "mode": cfg.mode, "models_used": used,
              "problems_file": str(cfg.problems), "n_problems": len(rows),
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "retrieval_backend": retriever.backend if cfg.mode == "specialist" else None,
              "summary": summarize(rows), "results": rows}
    out = Path(cfg.out) if cfg.out else RESULTS_DIR / f"{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    result["path"] = str(out)
    return result


def _router():
    try:
        from engine.specialists.router import default_router

        return default_router()
    except Exception as exc:  # noqa: BLE001 - routing is a label on the result, never a reason to fail
        log.info("no specialist router (%s); results carry no specialist label", exc)
        return None


def _route(router, question: str) -> str | None:
    try:
        decision = router.route(question)
        return getattr(decision, "specialist", None) or getattr(decision, "label", None) or str(decision)
    except Exception:  # noqa: BLE001
        return None


def load_results(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path} does not exist", hint="run `cda bench run` first")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EngineError(f"{path} is not a results file ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "results" not in data:
        raise EngineError(f"{path} is not a results file (no 'results')")
    return data


def compare(results: list[dict]) -> dict:
    """Side by side: per-kind scores of each result set, and the problems one solves that another does not."""
    if len(results) < 2:
        raise EngineError("compare needs two or more result sets")
    labels = [r.get("label", f"set{i}") for i, r in enumerate(results)]
    by_id = [{row["id"]: row for row in r["results"]} for r in results]
    common = [pid for pid in by_id[0] if all(pid in b for b in by_id[1:])]
    only = {}
    for i, la in enumerate(labels):
        for j, lb in enumerate(labels):
            if i != j:
                only[f"{la} not {lb}"] = [pid for pid in common
                                          if by_id[i][pid]["solved"] and not by_id[j][pid]["solved"]]
    common_rows = [[b[pid] for pid in common] for b in by_id]
    return {"labels": labels, "common_problems": len(common),
            "summaries": {la: summarize(rows) for la, rows in zip(labels, common_rows)},
            "solved_only_by": only}
