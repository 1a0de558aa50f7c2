"""Task-adaptive pre-training: masked-LM on the training texts before the fine-tune (Gururangan et al. 2020).

The offline base encoder (e5-small) was trained on web text for sentence embeddings, never on the
words of tickets. ``mlm_epochs`` epochs of masked-language modelling on the texts being fitted (their
words only, no labels; never a test text: the classifier sees only what ``fit`` is given) move the
encoder towards them before the department head is trained. The masked-LM head (dense → GELU →
LayerNorm → output projection tied to the input embeddings, as BERT's) is new and thrown away after.

Masking as BERT's: ``MASK_RATE`` of the non-special tokens of a text are predicted; 80% of those are
replaced by the mask token, 10% by a random token, 10% left.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import numpy as np

from model.transformer.network import import_torch, length_buckets, pad

logger = logging.getLogger(__name__)

MASK_RATE = 0.15


def mask_tokens(inp: np.ndarray, att: np.ndarray, special: np.ndarray, mask_id: int, vocab_size: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(masked input ids, targets) of a padded batch ``inp`` (B, L) with attention mask ``att`` (B, L).

    ``special`` (vocab_size,) bool marks the ids that are never predicted (pad, bos, eos, unk, mask).
    Targets are the original ids where a token is predicted and -100 elsewhere; each text with a
    non-special token has at least one predicted.

    >>> inp, t = mask_tokens(np.array([[0, 7, 8, 2]]), np.ones((1, 4), int), np.isin(np.arange(10), [0, 1, 2, 3, 4]), 4, 10, np.random.default_rng(0))
    >>> bool((t[0, [0, 3]] == -100).all()) and bool((t >= 0).any())
    True
    """
    candidates = (att == 1) & ~special[inp]
    chosen = candidates & (rng.random(inp.shape) < MASK_RATE)
    # a short title may draw no token at all: predict one of its candidates instead
    none = candidates.any(1) & ~chosen.any(1)
    for row in np.flatnonzero(none):
        chosen[row, rng.choice(np.flatnonzero(candidates[row]))] = True
    targets = np.where(chosen, inp, -100)
    out = inp.copy()
    roll = rng.random(inp.shape)
    out[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    allowed = np.flatnonzero(~special)
    out[swap] = rng.choice(allowed, size=int(swap.sum()))
    return out, targets


def mlm_head(encoder):
    """BERT's masked-LM head on ``encoder``'s hidden states, its output projection tied to the input embeddings."""
    torch = import_torch()
    nn = torch.nn
    hidden = encoder.config.hidden_size
    emb = encoder.get_input_embeddings()

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(hidden, hidden)
            self.norm = nn.LayerNorm(hidden, eps=encoder.config.layer_norm_eps)
            self.bias = nn.Parameter(torch.zeros(emb.num_embeddings))

        def forward(self, h):
            return nn.functional.linear(self.norm(nn.functional.gelu(self.dense(h))), emb.weight, self.bias)

    return Head()


def adapt_encoder(encoder, ids: Sequence[list[int]], lengths: np.ndarray, *, epochs: int, batch_size: int, lr: float,
                  weight_decay: float, warmup_ratio: float, pad_id: int, mask_id: int, special_ids: Sequence[int],
                  autocast: Callable, random_state: int, progress: bool = False) -> list[dict]:
    """Train ``encoder`` (in place, on its device) with masked-LM on the token ids ``ids`` (their
    ``lengths`` in tokens) for ``epochs`` epochs; ``autocast`` is the training-pass context factory.
    Returns one record per epoch (mean loss, seconds)."""
    torch = import_torch()
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    device = next(encoder.parameters()).device
    head = mlm_head(encoder).to(device)
    vocab = encoder.get_input_embeddings().num_embeddings
    special = np.zeros(vocab, dtype=bool)
    special[[i for i in special_ids if i is not None and 0 <= i < vocab]] = True
    emb_ids = {id(p) for p in encoder.get_input_embeddings().parameters()}
    decay = [p for p in encoder.parameters() if id(p) not in emb_ids] + [head.dense.weight]
    no_decay = [p for p in encoder.get_input_embeddings().parameters()] + [head.dense.bias, head.bias, *head.norm.parameters()]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    rng = np.random.default_rng(random_state)
    total = max(1, int(np.ceil(len(ids) / batch_size)) * int(epochs))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * total), total)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    logger.info("masked-LM adaptation: %d texts, %d epochs", len(ids), epochs)
    history = []
    encoder.train()
    for epoch in range(int(epochs)):
        te, losses = time.perf_counter(), []
        for b in tqdm(length_buckets(lengths, batch_size, rng), desc=f"adapting (masked LM) {epoch + 1}/{epochs}", disable=not progress, unit="batch"):
            inp, att = pad([ids[i] for i in b], pad_id, numpy=True)
            masked, targets = mask_tokens(inp, att, special, mask_id, vocab, rng)
            keep = targets >= 0
            inp_t, att_t = torch.from_numpy(masked).to(device), torch.from_numpy(att).to(device)
            with autocast():
                hidden = encoder(input_ids=inp_t, attention_mask=att_t).last_hidden_state
                logits = head(hidden[torch.from_numpy(keep).to(device)])
            loss = loss_fn(logits.float(), torch.from_numpy(targets[keep]).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*encoder.parameters(), *head.parameters()], 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        record = {"mlm_epoch": epoch + 1, "mlm_loss": round(float(np.mean(losses)), 4), "seconds": round(time.perf_counter() - te, 1)}
        history.append(record)
        logger.info("adaptation %s", record)
    return history
