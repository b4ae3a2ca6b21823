"""The runner: models answer, answers are scored and timed, results JSON written; CLI errors are clear."""
from __future__ import annotations

import json

import pytest

from engine.bench.problems import load_problems
from engine.bench.runner import RunnerConfig, compare, load_results, run_bench
from engine.cli import main
from engine.errors import EngineError
from engine.runs import RunStore


@pytest.fixture(autouse=True)
def _own_run_store(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_RUNS_DIR", str(tmp_path / "default-runs"))


def _cheap_predict():
    problems = load_problems()
    return [min((p for p in problems if p.kind == "predict" and p.source["kind"] == "generated"),
                key=lambda p: (p.source["n_cells"], p.settings["place.max_iterations"]))]


def test_rules_baseline_answers_scores_and_times_every_problem(tmp_path):
    out = tmp_path / "rules.json"
    res = run_bench(RunnerConfig(model="rules", mode="baseline", out=str(out), kinds=("predict", "choose", "diagnose")))
    data = load_results(out)
    assert data["n_problems"] == res["n_problems"] >= 40
    for row in data["results"]:
        assert 0.0 <= row["score"] <= 1.0 and row["latency_s"] >= 0 and row["answer"] is not None
        assert row["retrieval_hit"] is None  # baseline: no retrieval
    s = data["summary"]
    assert set(s["by_kind"]) == {"predict", "choose", "diagnose"}
    assert 0.0 <= s["overall"]["ci95"][0] <= s["overall"]["score"] <= s["overall"]["ci95"][1] <= 1.0
    # rules of thumb cannot know a hot spot's RUDY: diagnose is never fully solved
    assert s["by_kind"]["diagnose"]["score"] < 1.0


def test_engine_specialist_runs_the_engine_and_compares(tmp_path):
    store = RunStore(tmp_path / "runs")
    problems = _cheap_predict()
    eng = run_bench(RunnerConfig(model="engine", mode="specialist", retrieval="bench", out=str(tmp_path / "e.json")),
                    store, problems=problems)
    row = eng["results"][0]
    assert row["score"] == 1.0 and row["notes"]["tool_runs"]  # it ran the placer, deterministically
    assert row["retrieval_hit"] in (True, False) and row["passages"]
    assert store.get(row["notes"]["tool_runs"][0]).info()["kind"] == "bench"
    rules = run_bench(RunnerConfig(model="rules", mode="baseline", out=str(tmp_path / "r.json")), store,
                      problems=problems)
    cmp = compare([eng, rules])
    assert cmp["common_problems"] == 1 and set(cmp["summaries"]) == {"engine-specialist", "rules-baseline"}


def test_bad_requests_give_clear_errors(tmp_path, capsys):
    with pytest.raises(EngineError, match="no baseline mode"):
        run_bench(RunnerConfig(model="engine", mode="baseline"), problems=_cheap_predict())
    with pytest.raises(EngineError, match="unknown model"):
        run_bench(RunnerConfig(model="gpt-17", mode="baseline"), problems=_cheap_predict())
    assert main(["bench", "run", "--model", "rules", "--problems", str(tmp_path / "missing.jsonl")]) == 1
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["bench", "compare", str(bad), str(bad)]) == 1
    assert "not a results file" in capsys.readouterr().err
    assert main(["bench", "run", "--model", "ollama:none", "--host", "http://127.0.0.1:9", "--timeout", "2",
                 "--limit", "1"]) == 1
    assert "no ollama server answers" in capsys.readouterr().err.lower()


def test_cli_run_and_compare(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["bench", "run", "--model", "rules", "--mode", "baseline", "--kinds", "choose", "--out", str(a),
                 "-q"]) == 0
    assert main(["bench", "run", "--model", "rules", "--mode", "specialist", "--kinds", "choose", "--out", str(b),
                 "--retrieval", "bench", "-q"]) == 0
    capsys.readouterr()
    assert main(["bench", "compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "rules-baseline" in out and "rules-specialist" in out and "choose" in out
    assert main(["bench", "compare", str(a), str(b), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["common_problems"] > 0


def test_ollama_model_through_the_fake_server_baseline_and_specialist(tmp_path):
    from fake_ollama import FakeOllama  # tests/ is on sys.path under pytest

    problem = _cheap_predict()[0]
    truth = problem.truth["answer"]["value"]
    reply = f'Thinking about it... {{"value": {truth * 1.07}}}'  # 7% off: the 0.8 band
    with FakeOllama(models=["llama3.2:3b"], reply=reply) as fake:
        base = run_bench(RunnerConfig(model="ollama:llama3.2:3b", mode="baseline", host=fake.url,
                                      out=str(tmp_path / "b.json")), RunStore(tmp_path / "runs"), problems=[problem])
        spec = run_bench(RunnerConfig(model="ollama:llama3.2:3b", mode="specialist", host=fake.url, retrieval="bench",
                                      out=str(tmp_path / "s.json")), RunStore(tmp_path / "runs"), problems=[problem])
        prompts = [body["messages"][-1]["content"] for _, path, body in fake.requests if path == "/api/chat"]
    for res in (base, spec):
        row = res["results"][0]
        assert row["answer_text"] == reply and row["error"] is None
        assert row["score"] == 0.8 and abs(row["detail"]["rel_error"] - 0.07) < 1e-3
        assert row["latency_s"] > 0
    assert len(prompts) == 2
    assert problem.question in prompts[0] and "Engine tool results" not in prompts[0]
    # the specialist prompt carries retrieved knowledge and the engine's run of the asked settings
    assert "Knowledge:" in prompts[1] and "Engine tool results" in prompts[1]
    assert spec["results"][0]["notes"]["tool_runs"][0] in prompts[1]
    assert spec["results"][0]["retrieval_hit"] in (True, False)


def test_ollama_missing_model_and_server_errors_are_clear(tmp_path):
    from fake_ollama import FakeOllama  # tests/ is on sys.path under pytest

    problem = _cheap_predict()[0]
    with FakeOllama(models=["llama3.2:3b"]) as fake:
        with pytest.raises(EngineError, match="no model 'mistral'"):
            run_bench(RunnerConfig(model="ollama:mistral", mode="baseline", host=fake.url), problems=[problem])
        fake.error_status = 500
        res = run_bench(RunnerConfig(model="ollama:llama3.2:3b", mode="baseline", host=fake.url,
                                     out=str(tmp_path / "e.json")), problems=[problem])
    row = res["results"][0]
    assert row["score"] == 0.0 and row["error"] and "500" in row["error"]
