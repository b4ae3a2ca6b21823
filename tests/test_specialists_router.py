"""The router's held-out accuracy on the shipped labelled set, and its behaviour on odd input."""
from collections import Counter

import pytest

from engine.specialists.config import SPECIALISTS
from engine.specialists.router import Router, default_router, evaluate, load_questions, tokenize


def test_labelled_set_is_big_enough_and_split_is_fixed():
    rows = load_questions()
    per = Counter(q.label for q in rows)
    assert len(rows) >= 210
    assert set(per) == set(SPECIALISTS)
    assert all(n >= 30 for n in per.values()), per
    assert len({q.id for q in rows}) == len(rows)
    splits = Counter(q.split for q in rows)
    assert set(splits) == {"train", "test"} and splits["test"] >= 56
    # no held-out question is also a training question
    train = {q.question.lower() for q in rows if q.split == "train"}
    assert not [q for q in rows if q.split == "test" and q.question.lower() in train]


def test_held_out_accuracy_floor():
    result = evaluate()
    assert result["n_test"] >= 56
    assert result["accuracy"] >= 0.90, result["misses"]
    # every phase is learnt, not just the big ones
    assert all(acc is not None and acc >= 0.7 for acc in result["per_phase"].values()), result["per_phase"]


def test_route_gives_reason_with_terms():
    d = default_router().route("Why is my worst negative slack so bad at a 5 ns clock?")
    assert d.specialist == "timing"
    assert 0.0 < d.confidence <= 1.0 and abs(sum(d.scores.values()) - 1.0) < 1e-9
    assert d.top_terms and "timing" in d.reason
    assert any("slack" in t or "clock" in t for t, _ in d.top_terms)


def test_unknown_words_go_to_general_and_forced_choice():
    r = default_router()
    assert r.route("zzqx blorf").specialist == "general"
    forced = r.route("what is hpwl", force="power")
    assert forced.specialist == "power" and forced.forced and "by hand" in forced.reason
    with pytest.raises(ValueError, match="unknown specialist"):
        r.route("x", force="cooking")


def test_tokenize_shares_stems_and_bigrams():
    toks = tokenize("Placement placer placed; target densities")
    assert toks.count("plac") == 3
    assert "densit" in toks and "target_densit" in toks


def test_router_learns_a_new_label_set():
    r = Router(epochs=200).fit(["route the nets", "slack of the path"], ["routing", "timing"])
    assert r.route("which nets failed to route").specialist == "routing"
