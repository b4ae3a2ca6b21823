"""A very small Llama-architecture model folder for the training tests: a byte-level BPE tokenizer trained on a few
texts and a 2-layer LlamaForCausalLM pre-trained for a few dozen steps, saved as a normal Hugging Face folder.

The product trains SmolLM2-135M (engine/train/models.py); these tests need a model that LoRA, the search, the
GGUF export and the prefix cache can run on in seconds, with the same code paths as a real checkpoint.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

PAD, BOS, EOS = "<pad>", "<s>", "</s>"  # ids 0, 1, 2


def train_tokenizer(texts: list[str], vocab_size: int, max_len: int):
    """Byte-level BPE (GPT-2 style, so GGUF's 'gpt2' tokenizer model matches) that adds <s> in front, like Llama."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   model_max_length=max_len)


def build_tiny_lm(out: Path, texts: list[str], vocab_size: int = 320, hidden: int = 64, layers: int = 2,
                  heads: int = 4, kv_heads: int = 2, intermediate: int = 128, max_len: int = 160, steps: int = 40,
                  batch_size: int = 8, lr: float = 3e-3, seed: int = 0) -> tuple[Path, list[float]]:
    """Write the folder; returns it and the pre-training loss per step."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer(texts, vocab_size, max_len)
    ids: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]:
        ids += [*enc, tokenizer.eos_token_id]
    stream = torch.tensor(ids, dtype=torch.long)  # (N,)
    if len(stream) < max_len + 1:
        stream = torch.cat([stream, torch.full((max_len + 1 - len(stream),), tokenizer.eos_token_id)])
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=max_len, rms_norm_eps=1e-5,
        tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=2))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(stream) - max_len, (batch_size,), generator=gen)
        batch = torch.stack([stream[s: s + max_len] for s in starts])  # (B, T)
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out, losses
