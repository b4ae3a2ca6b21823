"""Route a question to one specialist: TF-IDF features, a softmax classifier trained on the labelled set, and
a keyword prior per phase, with the terms that decided it shown as the reason.

Why not embeddings alone: the phases share a vocabulary ("area", "wirelength", "slack") and the labelled
questions teach which words tip the balance; a linear model over words does that well, trains in milliseconds,
and its weights explain the choice.
"""
from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from engine.specialists.config import REPO_ROOT, SPECIALISTS

log = logging.getLogger(__name__)

QUESTIONS_PATH = REPO_ROOT / "assets" / "specialists" / "router_questions.jsonl"

#: What each specialist knows, as the words that name it. These seed the classifier (one pseudo-question each)
#: and give a small prior so a question with none of the trained words still lands somewhere sensible.
PHASE_KEYWORDS: dict[str, str] = {
    "synthesis": "synthesis synthesize yosys rtl verilog module netlist abc techmap dfflibmap liberty mapping "
                 "flatten opt logic gates cell count lut elaborate hierarchy always block latch inferred "
                 "generic cells technology mapping read_verilog synth stat parameter constant tie cells "
                 "gate-level netlist optimization logic depth adders multiplexer fsm encoding",
    "floorplan": "floorplan die core utilization aspect ratio rows site io pins pin placement core margin "
                 "outline boundary macro halo power ring tracks die size die area row height sites "
                 "terminals sides edge core area",
    "placement": "placement place placer global placement detailed placement legalization legalize hpwl "
                 "density target density overflow nesterov electrostatic eplace dreamplace bins wirelength "
                 "gamma lambda overlap cells positions frames abacus tetris swap weighted-average "
                 "smoothing gradient optimizer iterations gpu torch cuda dct potential field spread cluster",
    "routing": "routing route router qrouter global routing detailed routing congestion rudy vias via metal "
               "layers tracks unrouted nets shorts obstruction routed def maze rip-up reroute "
               "gcell wires metal1 metal2 metal3 preferred direction hotspot demand capacity",
    "timing": "timing opensta sta slack wns tns setup hold clock period fmax critical path constraint sdc "
              "spef parasitics delay arrival required time violation frequency latency skew startpoint "
              "endpoint report_checks slew fanout load capacitance nldm input delay output delay "
              "flip-flop launch capture negative slack meet timing",
    "power": "power dynamic power leakage switching activity toggle rate internal power energy watts milliwatts "
             "microwatts voltage vdd current clock gating report_power capacitance switching "
             "supply rail consumption consume draw battery heat power density short-circuit",
    "verification": "verification verify simulation simulate iverilog testbench vcd waveform lvs drc gds gdsii "
                    "klayout layout signoff equivalence gate-level simulation stream out check mask "
                    "verify step tapeout foundry layers merge compare match mismatch test pass fail",
    "general": "cockpit engine cda run runs page demo optimizer rl reinforcement benchmark training lora "
               "dataset model ollama install start help overview store job cancel config cli "
               "specialists chat router knowledge base retrieval llm python upload designs status "
               "command line browser tab hello",
}

_WORD = re.compile(r"[a-z0-9]+(?:[_\-][a-z0-9]+)*")
STOP_WORDS = frozenset(
    "a an the is are was were be been being of to in on for at by with from and or not no do does did how what why "
    "which when where who whom whose can could should would will shall may might must i me my we our you your it its "
    "this that these those there here than then so if as into about over under after before up down out off again "
    "very just also only more most less least much many some any all each both either such own same other too "
    "get gets got make makes made use uses used using show tell give let want need have has had am".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens without stop words, plural 's' trimmed, plus adjacent bigrams ("target_density")."""
    words = [stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
    return words + [f"{a}_{b}" for a, b in zip(words, words[1:])]


_SUFFIXES = ("ations", "ation", "ments", "ment", "ings", "ing", "ies", "ers", "er", "ed", "es", "s", "e", "y", "i")


def stem(word: str) -> str:
    """A tiny suffix stripper so that place/placer/placement and route/router/routing share one feature."""
    for _ in range(2):  # twice: placement -> place -> plac
        for suf in _SUFFIXES:
            if word.endswith(suf) and len(word) - len(suf) >= 4 and not word.endswith("ss"):
                word = word[: -len(suf)]
                break
    return word


@dataclass
class LabelledQuestion:
    id: str
    question: str
    label: str
    split: str  # "train" or "test"


def load_questions(path: Path | str = QUESTIONS_PATH) -> list[LabelledQuestion]:
    """The labelled router set (JSON lines: id, question, label, split)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            rows.append(LabelledQuestion(d["id"], d["question"], d["label"], d["split"]))
    return rows


@dataclass
class RouteDecision:
    """Where a question goes and why."""

    specialist: str
    confidence: float
    """Probability of the chosen specialist under the classifier (0..1)."""
    scores: dict[str, float]
    """Probability per specialist."""
    top_terms: list[tuple[str, float]] = field(default_factory=list)
    """Words of the question that pushed towards the chosen specialist, with their weight."""
    forced: bool = False
    """True when the user picked the specialist by hand."""
    note: str = ""
    """Why the classifier's choice was overridden (an engine tool that belongs to one phase)."""

    @property
    def reason(self) -> str:
        if self.forced:
            return f"chosen by hand: {self.specialist}"
        terms = ", ".join(f"'{t.replace('_', ' ')}' ({w:+.2f})" for t, w in self.top_terms[:4]) or "no strong terms"
        runner = sorted(self.scores.items(), key=lambda kv: -kv[1])
        second = next((f"{k} {v:.0%}" for k, v in runner if k != self.specialist), "")
        text = f"{self.specialist} at {self.confidence:.0%} (next: {second}); decided by {terms}"
        return f"{self.note}; classifier said {text}" if self.note else text


class Router:
    """A softmax classifier over TF-IDF features. `fit` on labelled questions, `route` a new one."""

    def __init__(self, l2: float = 1e-3, epochs: int = 400, lr: float = 2.0, prior_weight: float = 1.5):
        self.l2 = l2
        self.epochs = epochs
        self.lr = lr
        self.prior_weight = prior_weight
        self.labels: list[str] = list(SPECIALISTS)
        self.vocab: dict[str, int] = {}
        self.idf = np.zeros(0)
        self.W = np.zeros((0, 0))  # (V, C)
        self.b = np.zeros(0)  # (C,)
        self.prior = np.zeros((0, 0))  # (V, C): 1 where a keyword names a phase

    # -- features -------------------------------------------------------------------------------------------
    def _vectorize(self, texts: list[str]) -> np.ndarray:
        X = np.zeros((len(texts), len(self.vocab)))  # (N, V)
        for i, t in enumerate(texts):
            for term, c in Counter(tokenize(t)).items():
                j = self.vocab.get(term)
                if j is not None:
                    X[i, j] = (1.0 + math.log(c)) * self.idf[j]
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.maximum(norms, 1e-12)

    def fit(self, questions: list[str], labels: list[str]) -> Router:
        texts = list(questions) + [PHASE_KEYWORDS[p] for p in self.labels]
        ys = list(labels) + list(self.labels)
        df: Counter = Counter()
        for t in texts:
            df.update(set(tokenize(t)))
        self.vocab = {term: i for i, term in enumerate(sorted(df))}
        n = len(texts)
        self.idf = np.array([math.log((1 + n) / (1 + df[t])) + 1.0 for t in sorted(df)])
        X = sparse.csr_matrix(self._vectorize(texts))  # (N, V), ~20 non-zeros a row
        Xt = X.T.tocsr()
        y = np.array([self.labels.index(label) for label in ys])
        Y = np.eye(len(self.labels))[y]  # (N, C)
        V, C = X.shape[1], len(self.labels)
        self.W = np.zeros((V, C))
        self.b = np.zeros(C)
        # Full-batch gradient descent: a few hundred tiny matrix products. One BLAS thread, because on a busy
        # machine a thread pool spends far longer waking up than these products take.
        with threadpool_limits(1):
            for _ in range(self.epochs):
                P = _softmax(X @ self.W + self.b)
                G = (P - Y) / n
                self.W -= self.lr * (Xt @ G + self.l2 * self.W)
                self.b -= self.lr * G.sum(axis=0)
        self.prior = np.zeros((V, C))
        for c, phase in enumerate(self.labels):
            for term in set(tokenize(PHASE_KEYWORDS[phase])):
                self.prior[self.vocab[term], c] = 1.0
        return self

    # -- inference ------------------------------------------------------------------------------------------
    def route(self, question: str, force: str | None = None) -> RouteDecision:
        if force:
            if force not in self.labels:
                raise ValueError(f"unknown specialist '{force}'; choose one of {', '.join(self.labels)}")
            return RouteDecision(force, 1.0, {k: float(k == force) for k in self.labels}, [], forced=True)
        x = self._vectorize([question])[0]  # (V,)
        logits = x @ self.W + self.b + self.prior_weight * (x @ self.prior)
        if not x.any():  # nothing we know: the general specialist answers
            logits = np.where(np.array(self.labels) == "general", 1.0, 0.0)
        p = _softmax(logits[None, :])[0]
        c = int(np.argmax(p))
        contrib = x * (self.W[:, c] + self.prior_weight * self.prior[:, c] - self.W.mean(axis=1))
        order = np.argsort(-contrib)
        inv = {i: t for t, i in self.vocab.items()}
        top = [(inv[j], float(contrib[j])) for j in order[:6] if contrib[j] > 0]
        return RouteDecision(self.labels[c], float(p[c]), {k: float(v) for k, v in zip(self.labels, p)}, top)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@lru_cache(maxsize=2)
def default_router(path: str = str(QUESTIONS_PATH)) -> Router:
    """The router trained on the train split of the shipped labelled set (cached: it takes milliseconds)."""
    rows = [q for q in load_questions(path) if q.split == "train"]
    return Router().fit([q.question for q in rows], [q.label for q in rows])


def evaluate(path: Path | str = QUESTIONS_PATH) -> dict:
    """Held-out accuracy of the router trained on the train split, with per-phase accuracy and the misses."""
    rows = load_questions(path)
    train = [q for q in rows if q.split == "train"]
    test = [q for q in rows if q.split == "test"]
    router = Router().fit([q.question for q in train], [q.label for q in train])
    per: dict[str, list[int]] = {p: [0, 0] for p in SPECIALISTS}
    misses = []
    for q in test:
        got = router.route(q.question).specialist
        per[q.label][1] += 1
        if got == q.label:
            per[q.label][0] += 1
        else:
            misses.append({"id": q.id, "question": q.question, "label": q.label, "got": got})
    correct = sum(v[0] for v in per.values())
    return {
        "n_train": len(train),
        "n_test": len(test),
        "accuracy": correct / max(1, len(test)),
        "per_phase": {p: (v[0] / v[1] if v[1] else None) for p, v in per.items()},
        "misses": misses,
    }
