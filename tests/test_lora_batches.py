"""The LoRA trainer's batch order: a random sample by default; grouped by prompt length only when asked, and
never by a length that counts the answer (that sorted every batch by its label, and the model learnt only the
label of the last batch it saw)."""
from __future__ import annotations

import random

from engine.train.config import LoraTrainConfig
from engine.train.lora import epoch_order


def test_default_order_is_a_shuffled_permutation_that_mixes_lengths():
    lengths = [10] * 50 + [20] * 50
    order = epoch_order(lengths, 8, random.Random(0))
    assert sorted(order) == list(range(100))
    batches = [order[i: i + 8] for i in range(0, 96, 8)]
    mixed = sum(len({lengths[i] for i in b}) > 1 for b in batches)
    assert mixed >= 8  # a random order: most batches hold both lengths
    assert LoraTrainConfig().group_by_length is False


def test_grouped_order_puts_similar_lengths_together():
    rng = random.Random(1)
    lengths = [rng.choice((10, 20, 30)) for _ in range(256)]
    order = epoch_order(lengths, 8, random.Random(0), group=True)
    assert sorted(order) == list(range(256))
    batches = [order[i: i + 8] for i in range(0, 256, 8)]
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 5  # near-uniform batches (a random order would spread about 17)
