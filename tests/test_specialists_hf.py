"""The local Hugging Face backend with a tiny Llama built here: random weights, a word-level tokenizer made with
`tokenizers`, saved to a folder and loaded back through transformers (no downloads), streaming token by token."""
import json
import re

import pytest

from engine.specialists.chat import Chat
from engine.specialists.config import SpecialistConfig
from engine.specialists.llm import HFBackend, LLMError, hf_backend
from engine.specialists.rag import knowledge_base

WORDS = ("the placer spreads cells density slack timing path clock wire route net via metal layer power cell area "
         "row site pin gate flip flop yosys netlist core die hpwl overflow bins field charge").split()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="</s>")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=8192,
                      bos_token_id=1, eos_token_id=2, pad_token_id=2)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # never pick the special tokens, so the answer is words
        model.lm_head.weight[:3] = 0.0
        model.lm_head.weight[3:] += torch.randn_like(model.lm_head.weight[3:])
    model.save_pretrained(folder)
    return folder


def test_hf_backend_streams_token_by_token(tiny_model):
    backend = HFBackend(tiny_model, max_new_tokens=6)
    pieces = list(backend.stream(backend.name, [{"role": "user", "content": "what is the slack of the path"}]))
    assert len(pieces) >= 2
    words = "".join(pieces).split()
    assert 1 <= len(words) <= 6 and all(w in WORDS for w in words)


def test_chat_uses_the_local_model_when_ollama_is_off(tiny_model, tmp_path):
    cfg = SpecialistConfig(use_ollama=False, gguf_model=None, hf_model_dir=str(tiny_model), max_new_tokens=8,
                           runs_dir=str(tmp_path / "runs"))
    events = list(Chat(cfg, kb=knowledge_base()).ask_stream("How does the placer spread cells with density?"))
    answer = events[-1]["answer"]
    assert answer.backend == "hf" and answer.model == tiny_model.name and not answer.no_model
    assert [e["type"] for e in events].count("token") >= 2
    assert not re.search(r"\[\d+\]", answer.text)  # random words cite nothing, and nothing is invented
    assert hf_backend(tiny_model, 8) is hf_backend(tiny_model, 8)  # loaded once per process


def test_bad_model_folder_is_a_clear_message(tmp_path):
    with pytest.raises(LLMError, match="not a Hugging Face model folder"):
        HFBackend(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(LLMError, match="Could not load the model"):
        HFBackend(tmp_path)


# ------------------------------------------------------------------ the JSON-schema constraint (no model needed)
ANSWER_SCHEMA = {"type": "object", "required": ["direction", "percent"],
                 "properties": {"direction": {"enum": ["rise", "fall", "no clear effect"]},
                                "percent": {"type": "number"},
                                "knobs": {"type": "array", "items": {"type": "string"}, "maxItems": 2}}}


@pytest.mark.parametrize("text", ['{"direction": "rise", "percent": -12.5}',
                                  '{ "direction": "no clear effect", "percent": 3e2, "knobs": ["a", "b\\u00e9"] }',
                                  '{"direction":"fall","percent":0}'])
def test_json_prefix_accepts_every_prefix_of_a_valid_answer(text):
    from engine.specialists.json_constraint import JsonPrefix

    for i in range(len(text) + 1):
        assert JsonPrefix(ANSWER_SCHEMA).feed(text[:i]) is not None, text[:i]
    state = JsonPrefix(ANSWER_SCHEMA).feed(text)
    assert state.closed and state.can_end()
    assert not JsonPrefix(ANSWER_SCHEMA).feed(text[:-1]).can_end()


@pytest.mark.parametrize("text", ['{"direction": "up"',  # not in the enum
                                  '{"direction": "rise"}',  # required key missing
                                  '{"direction": "rise", "percent": 01',  # leading zero
                                  '{"direction": "rise", "percent": 1,}',  # trailing comma
                                  '{"direction": "rise", "direction"',  # repeated key
                                  '{"colour": 1',  # undeclared key
                                  '{"percent": 1',  # out of llama.cpp's order: required keys first, in order
                                  '{"direction": "rise", "percent": 1, "knobs": ["a", "b", "c"]',  # maxItems
                                  '{"direction": "rise", "percent": true',  # wrong type
                                  '{' + ' ' * 10 + '"direction"',  # endless whitespace is cut off
                                  'Sure! {"direction": "rise"'])  # text before the object
def test_json_prefix_rejects_what_breaks_the_schema(text):
    from engine.specialists.json_constraint import JsonPrefix

    assert JsonPrefix(ANSWER_SCHEMA).feed(text) is None


def test_integer_and_free_json():
    from engine.specialists.json_constraint import JsonPrefix, schema_errors

    assert JsonPrefix({"type": "integer"}).feed("12").can_end()
    assert not JsonPrefix({"type": "integer"}).feed("12").closed  # a number may go on
    assert JsonPrefix({"type": "integer"}).feed("1.5") is None
    free = JsonPrefix({}).feed('{"a": [1, {"b": null}], "c": "x"}')
    assert free is not None and free.closed
    assert schema_errors({"direction": "rise", "percent": 4}, ANSWER_SCHEMA) == []
    assert schema_errors({"direction": "up", "percent": True}, ANSWER_SCHEMA) == [
        "$.direction: 'up' is not one of ['rise', 'fall', 'no clear effect']", "$.percent: expected number, got bool"]


BOUNDED = {"type": "object", "required": ["w"], "additionalProperties": False,
           "properties": {"w": {"type": "number", "minimum": 0.001, "maximum": 10000},
                          "t": {"type": "number", "minimum": -5, "maximum": -1}}}


@pytest.mark.parametrize("text", ['{"w": 0.001}', '{"w": 10000}', '{"w": 3.5, "t": -1}', '{"w": 1, "t": -4.75}'])
def test_bounded_numbers_accept_every_prefix_of_an_answer_inside_the_bounds(text):
    from engine.specialists.json_constraint import JsonPrefix

    for i in range(len(text) + 1):
        assert JsonPrefix(BOUNDED).feed(text[:i]) is not None, text[:i]
    assert JsonPrefix(BOUNDED).feed(text).closed


@pytest.mark.parametrize("text", ['{"w": 0}', '{"w": 0.0}', '{"w": 0.0009}', '{"w": 10001', '{"w": 10000.5',
                                  '{"w": -', '{"w": 1e3', '{"w": 1, "t": -0', '{"w": 1, "t": -6',
                                  '{"w": 1, "t": 3'])
def test_bounded_numbers_refuse_what_cannot_end_inside_the_bounds(text):
    from engine.specialists.json_constraint import JsonPrefix

    assert JsonPrefix(BOUNDED).feed(text) is None


def test_a_bounded_number_can_always_go_on():
    """Every accepted prefix has a next character that keeps it valid (the decoder is never cornered)."""
    from engine.specialists.json_constraint import JsonPrefix

    for prefix in ('{"w": 0', '{"w": 0.', '{"w": 0.00', '{"w": 9999', '{"w": 1, "t": -', '{"w": 1, "t": -4.'):
        state = JsonPrefix(BOUNDED).feed(prefix)
        assert state is not None and any(state.feed(c) is not None for c in '0123456789.,} '), prefix


def test_parse_json_answer_counts_what_is_not_valid():
    from engine.specialists.llm import parse_json_answer

    assert parse_json_answer('{"direction": "fall", "percent": 2}', ANSWER_SCHEMA) == {"direction": "fall",
                                                                                         "percent": 2}
    assert parse_json_answer('```json\n{"direction": "fall", "percent": 2}\n```', ANSWER_SCHEMA)["percent"] == 2
    assert parse_json_answer('{"direction": "up", "percent": 2}', ANSWER_SCHEMA) is None
    assert parse_json_answer("rise, by about 5%", ANSWER_SCHEMA) is None
    assert parse_json_answer('[1, 2]', None) is None


def test_constrained_generate_with_a_tiny_model_gives_valid_json(tiny_model):
    from engine.specialists.llm import answer_json

    backend = HFBackend(tiny_model, max_new_tokens=8)
    schema = {"type": "object", "properties": {"word": {"enum": ["slack", "density"]}}, "required": ["word"]}
    value, raw = answer_json(backend, [{"role": "user", "content": "the placer spreads cells"}], schema, 32)
    # The word-level tokenizer has no '{' token: the only way to a valid answer would be none at all.
    assert value is None and raw == ""


def test_ollama_json_answers_send_the_schema_and_parse_the_reply():
    from fake_ollama import FakeOllama

    from engine.specialists.llm import OllamaBackend, answer_json

    with FakeOllama(models=["llama3.2:3b"], reply='{"direction": "fall", "percent": 4.5}') as fake:
        backend = OllamaBackend(SpecialistConfig(host=fake.url, timeout_s=5))
        value, raw = answer_json(backend, [{"role": "user", "content": "density 0.7 -> 0.9?"}], ANSWER_SCHEMA, 32,
                                 model="llama3.2:3b")
        assert value == {"direction": "fall", "percent": 4.5} and json.loads(raw) == value
        body = [b for _, path, b in fake.requests if path == "/api/chat"][-1]
        assert body["format"] == ANSWER_SCHEMA and body["options"]["num_predict"] == 32 and not body["stream"]
        fake.reply = "The HPWL falls by about 4%."  # a server that ignores the schema: a parse failure, not a crash
        assert answer_json(backend, [{"role": "user", "content": "?"}], ANSWER_SCHEMA, 32, model="llama3.2:3b") == \
            (None, "The HPWL falls by about 4%.")
