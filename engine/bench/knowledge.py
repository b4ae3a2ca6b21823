"""Retrieval for the benchmark's specialist mode, and whether it found the gold passage (ChipNeMo's split).

The specialists' knowledge base (engine.specialists.rag) is used when it is importable and builds; otherwise a
BM25 index over the passages below, which describe the flow's knobs and a few neighbouring topics (so that a
question can retrieve the wrong thing, as real retrieval does). A problem's retrieval counts as a hit when one of
the top-k passages names all of the problem's gold terms (e.g. the knob whose effect the problem turns on).
"""
from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger(__name__)

PASSAGES: dict[str, str] = {
    "knob:utilization": "floorplan.utilization is the cell area divided by the core area. A lower utilization gives "
    "a larger core: cells spread further apart, routing demand (RUDY) per bin drops and congestion eases, but "
    "wires get longer so HPWL rises. A higher utilization packs cells and shortens wires.",
    "knob:aspect_ratio": "floorplan.aspect_ratio is the core height over its width. Square cores (1.0) give the "
    "shortest wires for most netlists; tall or wide cores lengthen the nets that cross them.",
    "knob:target_density": "place.target_density is the bin density the placer spreads cells to. A lower target "
    "density spreads cells over more of the core, lowering local congestion and peak RUDY at some wirelength "
    "cost; overflow is measured against this target, so a low target is harder to meet in few iterations.",
    "knob:density_weight_init": "place.density_weight_init sets the initial weight of the density penalty "
    "against wirelength. A higher initial density weight spreads cells sooner, so with a small iteration budget "
    "the overflow falls faster; too high and the wirelength suffers because cells spread before they cluster.",
    "knob:gamma_base": "place.gamma_base is the smoothing of the weighted-average wirelength model. A small gamma "
    "follows HPWL closely but the objective is rough and harder to optimise; a large gamma is smooth, keeps "
    "cells clustered longer and can leave wires longer.",
    "knob:max_iterations": "place.max_iterations caps the Nesterov iterations of global placement. When the cap is "
    "reached before the overflow target, cells are still bunched near the centre: overflow and the peak RUDY "
    "are high there.",
    "concept:overflow": "Density overflow is the movable cell area above the target density summed over bins, "
    "divided by the movable area. Global placement starts with every cell at the core centre (overflow near 1) "
    "and stops when the overflow falls below place.target_overflow.",
    "concept:hpwl": "HPWL, the half-perimeter wirelength, sums over nets the half perimeter of the bounding box of "
    "the net's pins. It grows with the core size and falls as connected cells sit closer together.",
    "concept:rudy": "RUDY (rectangular uniform wire density) spreads each net's HPWL uniformly over its bounding "
    "box; the sum over nets per bin estimates routing demand. The hot spot is the bin with the peak RUDY; "
    "congestion shows where demand exceeds the routing supply.",
    "concept:congestion_fix": "To relieve a congestion hot spot: lower the utilization or the target density to "
    "give cells room, or let placement spread further (more iterations, a stronger density weight). Fixed "
    "macros concentrate wires at their edges.",
    "concept:macros": "Fixed macros block placement sites; the nets of the cells around a macro detour around it "
    "so routing demand gathers along the macro edges and corners.",
    "other:routing": "qrouter performs detailed routing on the metal layers; route.layers chooses how many metal "
    "layers it may use and route.via_stack how many vias may stack.",
    "other:timing": "OpenSTA reports worst negative slack and total negative slack from the Liberty library and "
    "the parasitics; clock_ns sets the clock period target.",
    "other:synthesis": "Yosys maps RTL onto the osu018 standard cells; synth.abc_script trades area for delay.",
    "other:legalize": "Legalization moves cells from global placement onto rows and sites without overlap "
    "(Tetris, then Abacus); detailed placement swaps and reorders cells to shorten wires.",
    "other:power": "Dynamic power depends on switching activity, load capacitance and the clock frequency.",
}

_TOKEN = re.compile(r"[a-z0-9_]+")


def _tokens(text: str) -> list[str]:
    out = []
    for t in _TOKEN.findall(text.lower()):
        out.append(t)
        if "_" in t:  # "target_density" also matches "target" and "density"
            out.extend(p for p in t.split("_") if p)
    return out


@dataclass
class Passage:
    id: str
    text: str
    score: float


class BM25:
    """Okapi BM25 over a small fixed corpus (k1=1.5, b=0.75)."""

    def __init__(self, passages: dict[str, str], k1: float = 1.5, b: float = 0.75):
        self.ids = list(passages)
        self.texts = [passages[i] for i in self.ids]
        self.docs = [Counter(_tokens(t)) for t in self.texts]
        self.lens = [sum(d.values()) for d in self.docs]
        self.avg = sum(self.lens) / max(len(self.lens), 1)
        df = Counter(t for d in self.docs for t in d)
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.k1, self.b = k1, b

    def search(self, query: str, k: int = 3) -> list[Passage]:
        q = _tokens(query)
        scores = []
        for i, d in enumerate(self.docs):
            s = 0.0
            for t in q:
                f = d.get(t, 0)
                if f:
                    norm = self.k1 * (1 - self.b + self.b * self.lens[i] / self.avg)
                    s += self.idf[t] * f * (self.k1 + 1) / (f + norm)
            scores.append(s)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
        return [Passage(self.ids[i], self.texts[i], round(scores[i], 3)) for i in order]


class Retriever:
    """top-k passages for a question; ``backend`` says which index answered.

    backend "auto" uses the specialists' knowledge base when it loads, else the bench's own BM25 passages;
    "specialists" or "bench" force one."""

    def __init__(self, k: int = 3, backend: str = "auto"):
        self.k = k
        self._kb = None
        self._bm25 = BM25(PASSAGES)
        if backend not in ("auto", "specialists", "bench"):
            from engine.errors import EngineError

            raise EngineError(f"unknown retrieval backend '{backend}' (auto, specialists, bench)")
        if backend in ("auto", "specialists"):
            try:
                from engine.specialists.rag import knowledge_base

                self._kb = knowledge_base()
            except Exception as exc:  # noqa: BLE001 - the bench's own passages still answer
                if backend == "specialists":
                    raise
                log.info("specialists' knowledge base unavailable (%s); using the bench passages", exc)
        self.backend = "specialists-rag" if self._kb is not None else "bench-bm25"

    def search(self, query: str) -> list[Passage]:
        if self._kb is None:
            return self._bm25.search(query, self.k)
        ret = self._kb.search(query, self.k)
        return [Passage(h.passage.id, f"{h.passage.label}\n{h.passage.text}", round(float(h.score), 5))
                for h in ret.hits]


def retrieval_hit(passages: list[Passage], gold_terms: list[str]) -> bool:
    """A passage naming every gold term was retrieved."""
    if not gold_terms:
        return False
    return any(all(g.lower() in p.text.lower() for g in gold_terms) for p in passages)


def knobs_in(passages: list[Passage], knobs) -> list[str]:
    """Knobs (dotted names) that the passages name, in the order of the passages."""
    out: list[str] = []
    for p in passages:
        low = p.text.lower()
        for k in knobs:
            if k not in out and (k in low or k.split(".", 1)[1] in low):
                out.append(k)
    return out
