"""Retrieval over the markdown knowledge base: passages with ids and sources, BM25 plus MiniLM embeddings fused
by reciprocal rank, MMR for diversity, and a relevance gate so an unrelated question gets "not in my knowledge
base" instead of a guess.

After OpenROAD's ORAssistant (hybrid similarity + BM25 + MMR, sources with every answer), without its
cross-encoder: there is no offline cross-encoder here, and the labelled set shows the fusion is enough.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import EngineError
from engine.specialists.config import REPO_ROOT, SpecialistConfig
from engine.specialists.router import STOP_WORDS, stem

if TYPE_CHECKING:
    from engine.specialists.embed import Embedder

log = logging.getLogger(__name__)

RETRIEVAL_SET_PATH = REPO_ROOT / "assets" / "specialists" / "retrieval_set.jsonl"
# Passage embeddings shipped with the repository (written by `cda specialists index --ship`), so a fresh
# checkout answers without embedding the corpus first; the cache_dir copy is used when the docs changed.
SHIPPED_EMBEDDINGS = REPO_ROOT / "assets" / "specialists" / "embeddings"
MAX_PASSAGE_WORDS = 220
RRF_K = 60  # the constant of Cormack et al.'s reciprocal rank fusion
POOL = 20  # fused candidates MMR chooses from

_WORD = re.compile(r"[a-z0-9]+")


def bm25_tokens(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


@dataclass
class Passage:
    id: str  # "<doc>#<section-slug>[-k]", stable while the docs do not change
    doc: str  # file stem, e.g. "knob-target-density"
    title: str  # the document's "# " title
    heading: str  # the section's "## " heading ("" for the text before the first one)
    text: str
    source: str  # path relative to the repository, e.g. assets/docs/knob-target-density.md

    @property
    def label(self) -> str:
        return f"{self.title} > {self.heading}" if self.heading else self.title


@dataclass
class Hit:
    passage: Passage
    n: int  # citation number [n], 1-based, in the order given to the model
    score: float  # fused (RRF) score
    bm25: float
    cosine: float | None

    def to_dict(self) -> dict:
        p = self.passage
        return {"n": self.n, "id": p.id, "source": p.source, "label": p.label, "text": p.text,
                "score": round(self.score, 5), "bm25": round(self.bm25, 3),
                "cosine": None if self.cosine is None else round(self.cosine, 4)}


@dataclass
class Retrieval:
    query: str
    hits: list[Hit]
    relevant: bool  # False: nothing in the knowledge base is close enough to answer from
    best_cosine: float | None
    best_bm25: float
    mode: str  # "hybrid" or "bm25"
    notes: list[str] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "intro"


def chunk_markdown(text: str, doc: str, source: str) -> list[Passage]:
    """One passage per "## " section; long sections split at paragraph boundaries."""
    title = doc
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        if line.startswith("# ") and title == doc:
            title = line[2:].strip()
        elif line.startswith("## "):
            sections.append((line[3:].strip(), []))
        else:
            sections[-1][1].append(line)
    out: list[Passage] = []
    for heading, lines in sections:
        paragraphs = [p.strip() for p in "\n".join(lines).split("\n\n") if p.strip()]
        if not paragraphs:
            continue
        chunks: list[list[str]] = []
        cur: list[str] = []
        for para in paragraphs:
            if cur and sum(len(p.split()) for p in cur) + len(para.split()) > MAX_PASSAGE_WORDS:
                chunks.append(cur)
                cur = []
            cur.append(para)
        chunks.append(cur)
        base = f"{doc}#{_slug(heading) if heading else 'intro'}"
        for k, chunk in enumerate(chunks):
            pid = base if k == 0 else f"{base}-{k + 1}"
            out.append(Passage(pid, doc, title, heading, "\n\n".join(chunk), source))
    return out


class BM25:
    """Okapi BM25 (k1=1.5, b=0.75) over token lists."""

    def __init__(self, docs: list[list[str]], k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = k1, b
        self.tf = [Counter(d) for d in docs]
        self.len = np.array([len(d) for d in docs], dtype=float)
        self.avg = float(self.len.mean()) if len(docs) else 0.0
        df: Counter = Counter()
        for d in docs:
            df.update(set(d))
        n = len(docs)
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}

    def scores(self, query: list[str]) -> np.ndarray:
        s = np.zeros(len(self.tf))
        norm = self.k1 * (1 - self.b + self.b * self.len / max(self.avg, 1e-9))
        for term in set(query):
            idf = self.idf.get(term)
            if idf is None:
                continue
            f = np.array([tf.get(term, 0) for tf in self.tf], dtype=float)
            s += idf * f * (self.k1 + 1) / (f + norm)
        return s


class KnowledgeBase:
    """The docs as passages with a BM25 index and (optionally) cached MiniLM embeddings."""

    def __init__(self, config: SpecialistConfig | None = None, embedder=None):
        self.config = config or SpecialistConfig()
        docs_dir = Path(self.config.docs_dir)
        files = sorted(docs_dir.glob("**/*.md"))
        if not files:
            raise EngineError(f"The knowledge base folder {docs_dir} has no markdown files.",
                              hint="set SpecialistConfig.docs_dir to the assets/docs folder")
        self.passages: list[Passage] = []
        for f in files:
            try:
                source = str(f.resolve().relative_to(REPO_ROOT))
            except ValueError:
                source = str(f)
            doc = str(f.relative_to(docs_dir).with_suffix(""))
            self.passages.extend(chunk_markdown(f.read_text(encoding="utf-8"), doc, source))
        self.by_id = {p.id: p for p in self.passages}
        self.bm25 = BM25([bm25_tokens(f"{p.label}\n{p.text}") for p in self.passages])
        self.embedder: Embedder | None = None
        self.emb: np.ndarray | None = None  # (P, D) unit vectors
        self.dense_error: str | None = None
        if self.config.use_dense:
            try:
                self._load_dense(embedder)
            except Exception as exc:  # noqa: BLE001 - retrieval still works on BM25 alone; say why
                self.dense_error = f"dense retrieval unavailable ({exc}); using BM25 only"
                log.warning(self.dense_error)

    @property
    def corpus_hash(self) -> str:
        h = hashlib.sha256()
        for p in self.passages:
            h.update(f"{p.id}\0{p.label}\0{p.text}\0".encode())
        return h.hexdigest()[:16]

    def _load_dense(self, embedder) -> None:
        from engine.specialists.embed import MODEL_NAME, default_embedder

        self.embedder = embedder or default_embedder()
        name = f"passages-{MODEL_NAME}-{self.corpus_hash}.npy"
        cache = Path(self.config.cache_dir) / name
        for candidate in (SHIPPED_EMBEDDINGS / name, cache):
            if candidate.exists():
                emb = np.load(candidate)
                if emb.shape == (len(self.passages), self.embedder.dim):
                    self.emb = emb
                    return
        log.info("embedding %d passages (cached in %s)", len(self.passages), cache)
        self.emb = self.embedder.encode([f"{p.label}\n{p.text}" for p in self.passages])
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npy")
            np.save(tmp, self.emb)
            tmp.replace(cache)
        except OSError as exc:  # a read-only checkout still answers, it just embeds again next time
            log.warning("could not cache embeddings in %s: %s", cache, exc)

    def ship_embeddings(self) -> Path:
        """Write the current passage embeddings into assets/specialists/embeddings (replacing older ones)."""
        if self.emb is None:
            raise EngineError("No embeddings to ship: dense retrieval is off or failed.", hint=self.dense_error)
        from engine.specialists.embed import MODEL_NAME

        SHIPPED_EMBEDDINGS.mkdir(parents=True, exist_ok=True)
        for old in SHIPPED_EMBEDDINGS.glob("passages-*.npy"):
            old.unlink()
        path = SHIPPED_EMBEDDINGS / f"passages-{MODEL_NAME}-{self.corpus_hash}.npy"
        np.save(path, self.emb)
        return path

    # ------------------------------------------------------------------------------------------------
    def search(self, query: str, k: int | None = None) -> Retrieval:
        k = k or self.config.retrieval_k
        bm = self.bm25.scores(bm25_tokens(query))
        bm_rank = np.argsort(-bm, kind="stable")
        best_bm25 = float(bm.max()) if len(bm) else 0.0
        notes = [self.dense_error] if self.dense_error else []
        if self.emb is None or self.embedder is None:  # the embedder is set whenever emb is
            fused = {int(i): 1.0 / (RRF_K + r + 1) for r, i in enumerate(bm_rank[:POOL]) if bm[i] > 0}
            order = sorted(fused, key=lambda i: -fused[i])[:k]
            hits = [Hit(self.passages[i], n + 1, fused[i], float(bm[i]), None) for n, i in enumerate(order)]
            relevant = best_bm25 >= self.config.bm25_threshold
            return Retrieval(query, hits if relevant else [], relevant, None, best_bm25, "bm25", notes)

        q = self.embedder.encode([query])[0]  # (D,)
        cos = self.emb @ q  # (P,)
        dense_rank = np.argsort(-cos, kind="stable")
        fused = {}
        for ranking, usable in ((bm_rank, bm > 0), (dense_rank, np.ones_like(cos, dtype=bool))):
            for r, i in enumerate(ranking[: POOL * 2]):
                if usable[i]:
                    fused[int(i)] = fused.get(int(i), 0.0) + 1.0 / (RRF_K + r + 1)
        pool = sorted(fused, key=lambda i: -fused[i])[:POOL]
        chosen = self._mmr(pool, fused, k)
        best_cos = float(cos.max())
        thr = self.config.relevance_threshold
        relevant = best_cos >= thr or (best_cos >= thr - 0.08 and best_bm25 >= self.config.bm25_strong)
        hits = [Hit(self.passages[i], n + 1, fused[i], float(bm[i]), float(cos[i])) for n, i in enumerate(chosen)]
        return Retrieval(query, hits if relevant else [], relevant, best_cos, best_bm25, "hybrid", notes)

    def _mmr(self, pool: list[int], rel: dict[int, float], k: int) -> list[int]:
        """Maximal marginal relevance: relevance (fused score, scaled to 0..1) minus similarity to those chosen."""
        lam = self.config.mmr_lambda
        top = max(rel[i] for i in pool)
        low = min(rel[i] for i in pool)
        span = max(top - low, 1e-12)
        emb = self.emb
        assert emb is not None  # search() calls this only with dense retrieval on
        chosen: list[int] = []
        rest = list(pool)
        while rest and len(chosen) < k:
            def value(i: int) -> float:
                sim = max((float(emb[i] @ emb[j]) for j in chosen), default=0.0)
                return lam * (rel[i] - low) / span - (1 - lam) * sim
            best = max(rest, key=value)
            chosen.append(best)
            rest.remove(best)
        return chosen


_KB: dict[str, KnowledgeBase] = {}
_KB_LOCK = threading.Lock()


def knowledge_base(config: SpecialistConfig | None = None) -> KnowledgeBase:
    """One knowledge base per (docs, cache, mode) per process: loading and embedding is done once."""
    config = config or SpecialistConfig()
    key = json.dumps([config.docs_dir, config.cache_dir, config.use_dense, config.relevance_threshold,
                      config.bm25_strong, config.bm25_threshold, config.mmr_lambda, config.retrieval_k])
    with _KB_LOCK:
        if key not in _KB:
            _KB[key] = KnowledgeBase(config)
        return _KB[key]


def load_retrieval_set(path: Path | str = RETRIEVAL_SET_PATH) -> list[dict]:
    """Labelled queries: {"query", "gold": [doc or passage ids]} (empty gold = off-topic, must be refused)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _is_gold(p: Passage, gold: list[str]) -> bool:
    return any(p.id == g or p.doc == g or p.id.startswith(g + "-") for g in gold)


def evaluate(kb: KnowledgeBase | None = None, path: Path | str = RETRIEVAL_SET_PATH, k: int = 5) -> dict:
    """hit@k and MRR over the on-topic queries; refusal rate over the off-topic ones (gold = [])."""
    kb = kb or knowledge_base()
    rows = load_retrieval_set(path)
    hits, rr, misses, refused, off, false_refusals = 0, 0.0, [], 0, 0, 0
    for row in rows:
        res = kb.search(row["query"], k=k)
        if not row["gold"]:
            off += 1
            refused += int(not res.relevant)
            continue
        if not res.relevant:
            false_refusals += 1
        rank = next((h.n for h in res.hits if _is_gold(h.passage, row["gold"])), None)
        if rank is not None:
            hits += 1
            rr += 1.0 / rank
        else:
            misses.append({"query": row["query"], "gold": row["gold"], "got": [h.passage.id for h in res.hits]})
    n_on = len(rows) - off
    return {"n_queries": n_on, "n_off_topic": off, f"hit@{k}": hits / max(1, n_on), "mrr": rr / max(1, n_on),
            "off_topic_refused": refused / max(1, off), "false_refusals": false_refusals, "misses": misses,
            "mode": "hybrid" if kb.emb is not None else "bm25", "passages": len(kb.passages)}
