"""Reverse-BPR machinery shared by NegGrad, MMRecUn and TRU.

- forget batches: the deleted pairs with uniform negatives that were never the user's training
  positives (in the *original* train, so a deleted item is never drawn as its own negative);
- retain samples: uniform pairs of the retain set (optionally restricted to some users) with negatives;
- losses on :class:`~mmunlearn.models.base.BatchTerms`: forward BPR ``−log σ(s⁺ − s⁻)``, reverse BPR
  ``−log σ(s⁻ − s⁺) = softplus(s⁺ − s⁻)`` (the deleted item should rank *below* a random negative),
  and gradient ascent on BPR (NegGrad);
- :func:`retain_bpr_steps`: plain BPR on the retain data (fine-tuning, TRU's repair);
- :func:`joint_terms`: one forward pass for several batches (a backbone propagates the whole graph per
  call, so concatenating batches halves the cost of a step).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from mmunlearn.models.base import BatchTerms, Recommender
from mmunlearn.train.sampling import bpr_batches, csr_pairs, pair_keys, sample_negatives
from mmunlearn.train.trainer import make_optimizer


def forget_triples(pairs: np.ndarray, original_train: sp.csr_matrix, rng: np.random.Generator,
                   keys: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(users, items, negatives)`` for the deleted pairs; negatives avoid all original positives."""
    users, items = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    negs = sample_negatives(users, original_train, rng, keys=keys)
    return users, items, negs


def forget_batches(pairs: np.ndarray, original_train: sp.csr_matrix, batch_size: int, rng: np.random.Generator,
                   keys: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Shuffled batches ``(index, users, items, negatives)`` over the deleted pairs (one pass)."""
    order = rng.permutation(len(pairs))
    users, items, negs = forget_triples(pairs[order], original_train, rng, keys)
    for start in range(0, len(order), batch_size):
        sl = slice(start, start + batch_size)
        yield order[sl], users[sl], items[sl], negs[sl]


class RetainSampler:
    """Uniform retain pairs with uniform negatives; ``users`` restricts to pairs of those users."""

    def __init__(self, retain_train: sp.csr_matrix, users: np.ndarray | None = None) -> None:
        self.train = retain_train
        self.keys = pair_keys(retain_train)
        u, i = csr_pairs(retain_train)
        if users is not None:
            keep = np.zeros(retain_train.shape[0], dtype=bool)
            keep[users] = True
            sel = keep[u]
            u, i = u[sel], i[sel]
        self.users, self.items = u, i

    def __len__(self) -> int:
        return len(self.users)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self.users) == 0 or n <= 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        idx = rng.integers(0, len(self.users), size=n)
        users, items = self.users[idx], self.items[idx]
        return users, items, sample_negatives(users, self.train, rng, keys=self.keys)


def joint_terms(model: Recommender, *batches: tuple[np.ndarray, np.ndarray, np.ndarray],
                device: torch.device | str = "cpu") -> list[BatchTerms]:
    """Score several ``(users, pos, neg)`` batches with one forward pass; aux is attributed to the first."""
    sizes = [len(b[0]) for b in batches]
    cat = [torch.as_tensor(np.concatenate([b[k] for b in batches]), dtype=torch.long, device=device)
           for k in range(3)]
    terms = model.batch_terms(*cat)
    out, start = [], 0
    for j, n in enumerate(sizes):
        sl = slice(start, start + n)
        aux = terms.aux if j == 0 else torch.zeros((), device=terms.aux.device)
        out.append(BatchTerms(pos=terms.pos[sl], neg=terms.neg[sl], aux=aux))
        start += n
    return out


def forward_bpr(terms: BatchTerms, reduce: str = "mean") -> torch.Tensor:
    loss = -F.logsigmoid(terms.pos - terms.neg)
    return (loss.mean() if reduce == "mean" else loss.sum()) if len(loss) else terms.pos.sum() * 0.0


def reverse_bpr(terms: BatchTerms, weights: torch.Tensor | None = None, reduce: str = "mean") -> torch.Tensor:
    """``softplus(s⁺ − s⁻)``: minimised when the deleted item ranks below the negative; optionally weighted."""
    loss = F.softplus(terms.pos - terms.neg)
    if weights is not None:
        loss = loss * weights
    if len(loss) == 0:
        return terms.pos.sum() * 0.0
    return loss.mean() if reduce == "mean" else loss.sum()


def ascent_bpr(terms: BatchTerms) -> torch.Tensor:
    """Negated BPR (gradient *ascent* on the forget set's training loss): unbounded below."""
    return F.logsigmoid(terms.pos - terms.neg).mean() if len(terms.pos) else terms.pos.sum() * 0.0


def retain_bpr_steps(model: Recommender, retain_train: sp.csr_matrix, *, epochs: float, lr: float,
                     batch_size: int, rng: np.random.Generator, device: torch.device) -> dict[str, Any]:
    """``epochs`` (fractions allowed) passes of BPR with Adam over ``retain_train``; the model is left in
    eval mode. Returns the step count and the first/last batch loss."""
    opt = make_optimizer(model, lr)
    n_steps = max(1, math.ceil(epochs * retain_train.nnz / batch_size))
    steps, losses = 0, []
    model.train()
    while steps < n_steps:
        for users, pos, neg in bpr_batches(retain_train, batch_size, rng):
            opt.zero_grad(set_to_none=True)
            loss = model.loss(torch.as_tensor(users, device=device), torch.as_tensor(pos, device=device),
                              torch.as_tensor(neg, device=device))
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            steps += 1
            if steps >= n_steps:
                break
    model.eval()
    return {"steps": steps, "first_loss": losses[0], "last_loss": losses[-1]}


__all__ = ["retain_bpr_steps", "forget_triples", "forget_batches", "RetainSampler", "joint_terms", "forward_bpr",
           "reverse_bpr", "ascent_bpr"]
