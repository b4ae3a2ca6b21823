"""The local Hugging Face backend with a tiny Llama built here: random weights, a word-level tokenizer made with
`tokenizers`, saved to a folder and loaded back through transformers (no downloads), streaming token by token."""
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
    cfg = SpecialistConfig(use_ollama=False, hf_model_dir=str(tiny_model), max_new_tokens=8,
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
