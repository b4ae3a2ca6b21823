"""The knowledge base: passages and sources, hybrid retrieval figures on the labelled set, the relevance gate,
the embedding cache, BM25-only mode, and the citation checker."""
from pathlib import Path

import numpy as np

from engine.specialists.chat import check_citations, cited
from engine.specialists.config import REPO_ROOT, SpecialistConfig
from engine.specialists.rag import (
    BM25,
    KnowledgeBase,
    bm25_tokens,
    chunk_markdown,
    evaluate,
    knowledge_base,
    load_retrieval_set,
)


def test_corpus_is_substantial_and_passages_have_ids_and_sources():
    docs = sorted((REPO_ROOT / "assets" / "docs").glob("*.md"))
    assert len(docs) >= 40
    kb = KnowledgeBase(SpecialistConfig(use_dense=False))
    assert len({p.id for p in kb.passages}) == len(kb.passages)
    assert all((REPO_ROOT / p.source).exists() and p.text.strip() for p in kb.passages)
    for step in ("step-synth", "step-floorplan", "step-place", "step-route", "step-timing", "step-power",
                 "step-verify", "step-gds", "tool-yosys", "tool-opensta", "tool-qrouter", "tool-klayout",
                 "tool-iverilog", "placer-algorithm", "rl-optimizer", "engine-design"):
        assert any(p.doc == step for p in kb.passages), step


def test_chunking_splits_long_sections_with_stable_ids():
    text = "# T\n\nintro words\n\n## A b\n\n" + "\n\n".join(" ".join(["w"] * 100) for _ in range(5))
    ps = chunk_markdown(text, "doc", "x.md")
    assert [p.id for p in ps] == ["doc#intro", "doc#a-b", "doc#a-b-2", "doc#a-b-3"]
    assert ps[1].title == "T" and ps[1].heading == "A b" and ps[1].label == "T > A b"


def test_bm25_prefers_the_passage_with_rare_query_terms():
    bm = BM25([bm25_tokens("the slack of the path"), bm25_tokens("the density of the bins"),
               bm25_tokens("the the the")])
    s = bm.scores(bm25_tokens("worst slack"))
    assert s[0] > 0 and s[1] == 0 and s[2] == 0


def test_hybrid_retrieval_meets_its_floors():
    rows = load_retrieval_set()
    assert sum(1 for r in rows if r["gold"]) >= 100 and sum(1 for r in rows if not r["gold"]) >= 10
    result = evaluate(knowledge_base())
    assert result["mode"] == "hybrid"
    assert result["hit@5"] >= 0.9, result["misses"]
    assert result["mrr"] >= 0.75
    assert result["off_topic_refused"] >= 0.9
    assert result["false_refusals"] <= 3


def test_relevance_gate_and_mmr_diversity():
    kb = knowledge_base()
    off = kb.search("Give me a recipe for banana bread.")
    assert not off.relevant and off.hits == []
    on = kb.search("How does the placer spread cells with electrostatics?")
    assert on.relevant and len(on.hits) == 5 and [h.n for h in on.hits] == [1, 2, 3, 4, 5]
    assert on.hits[0].passage.doc == "placer-electrostatic-density"
    assert len({h.passage.id for h in on.hits}) == 5
    assert all(h.cosine is not None and h.passage.source.startswith("assets/docs/") for h in on.hits)


def test_embeddings_are_cached_on_disk(tmp_path):
    kb = knowledge_base()
    cfg = SpecialistConfig(cache_dir=str(tmp_path))
    again = KnowledgeBase(cfg, embedder=kb.embedder)
    files = list(Path(tmp_path).glob("passages-*.npy")) + list(
        (REPO_ROOT / "assets" / "specialists" / "embeddings").glob(f"passages-*-{kb.corpus_hash}.npy"))
    assert files, "embeddings neither shipped nor cached"
    assert np.allclose(again.emb, kb.emb, atol=1e-5)


def test_bm25_only_mode_still_finds_answers():
    kb = KnowledgeBase(SpecialistConfig(use_dense=False))
    res = kb.search("What does dfflibmap do in Yosys?")
    assert res.mode == "bm25" and res.relevant and "tool-yosys" in [h.passage.doc for h in res.hits[:2]]
    assert evaluate(kb)["hit@5"] >= 0.85


def test_citation_checker_keeps_only_retrieved_numbers():
    text, bad = check_citations("HPWL is a bound [1]. Overflow [2, 7] and slack [9].", {1, 2, 3})
    assert bad == [7, 9]
    assert "[9]" not in text and "[7]" not in text and "[1]" in text and "[2]" in text
    assert text.endswith("slack.")
    assert cited(text) == [1, 2]
    assert check_citations("no citations", {1}) == ("no citations", [])
