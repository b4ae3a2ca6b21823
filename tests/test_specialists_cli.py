"""`cda ask` end to end in-process: the answer streams to stdout with the specialist, sources and model line;
bad input is an error message with exit status 1."""
import json

from engine.cli import main


def test_cda_ask_without_a_model(capsys, tmp_path):
    rc = main(["--runs-dir", str(tmp_path), "ask", "--no-llm", "--bm25-only", "What does dfflibmap do in Yosys?"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.startswith("specialist: synthesis (")
    assert "**No model used**" in out and "model: none\n" in out
    assert "sources:\n  [1] assets/docs/" in out and "tool-yosys.md" in out


def test_cda_ask_json_and_bad_input(capsys, tmp_path):
    assert main(["--runs-dir", str(tmp_path), "ask", "--no-llm", "--bm25-only", "--json", "--specialist", "power",
                 "What is leakage power?"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["specialist"] == "power" and data["reason"].startswith("chosen by hand")
    assert data["no_model"] and data["sources"] and set(data["citations"]) <= {s["n"] for s in data["sources"]}
    assert main(["ask", "--no-llm", "   "]) == 1
    assert "error: Ask a question: the text is empty." in capsys.readouterr().err
