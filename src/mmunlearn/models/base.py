"""The backbone contract: what every recommender (ours or a user's) must give the rest of the toolkit.

Modelled on MMRec's two-method contract (a training loss and a full-ranking score) plus what
unlearning needs on top: which parameters belong to which *modality branch* (TRU scales updates per
branch), the model's *named parameter groups* (TRU isolates the deletion-sensitive ones), a way to
rebuild graphs after training data is deleted, and a way to re-initialise rows of fully deleted
users/items.

A backbone subclasses :class:`Recommender` and implements ``propagate`` and ``parameter_groups``;
everything else has a working default. Scores are dot products of final user and item embeddings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from mmunlearn.data.interactions import InteractionData


@dataclass(frozen=True)
class BatchTerms:
    """Per-pair scores of a BPR batch plus the model's auxiliary loss (L2, contrastive, ...).

    Unlearning methods need the pair scores separately (reverse BPR weights each pair), so a model
    returns these parts and :func:`bpr_loss` assembles the ordinary training loss.
    """

    pos: torch.Tensor
    neg: torch.Tensor
    aux: torch.Tensor


def bpr_loss(terms: BatchTerms) -> torch.Tensor:
    return -F.logsigmoid(terms.pos - terms.neg).mean() + terms.aux


class Recommender(nn.Module, ABC):
    """Base class of every backbone.

    Subclasses set ``name`` and ``modality_aware`` and implement :meth:`propagate` (final user and
    item embeddings, differentiable) and :meth:`parameter_groups`. The graph the model propagates over
    is built from ``data.train`` in :meth:`rebuild_graphs`, which unlearning calls again with the
    retain data.
    """

    name: ClassVar[str] = "base"
    #: whether the model uses item content; graph-only models ignore ``data.modalities``
    modality_aware: ClassVar[bool] = False
    #: the backbone's own learning-rate default (per-model config, as in RecBole/MMRec): sits between
    #: ``TrainConfig``'s default and a config file / CLI flag; ``None`` keeps ``TrainConfig.lr``
    recommended_lr: ClassVar[float | None] = None

    def __init__(self, data: InteractionData, config: Any) -> None:
        super().__init__()
        self.n_users = data.n_users
        self.n_items = data.n_items
        self.config = config
        self.graph_fingerprint: str = ""

    # ----- the two-method contract -------------------------------------------------------------
    @abstractmethod
    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final ``(user_emb [n_users, d], item_emb [n_items, d])``, differentiable."""

    def batch_terms(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BatchTerms:
        """Scores of (user, pos) and (user, neg) plus auxiliary loss; override to add regularisers."""
        u_emb, i_emb = self.propagate()
        u, p, n = u_emb[users], i_emb[pos], i_emb[neg]
        return BatchTerms(pos=(u * p).sum(-1), neg=(u * n).sum(-1), aux=self.l2_term(users, pos, neg))

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        return bpr_loss(self.batch_terms(users, pos, neg))

    @torch.no_grad()
    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings for full ranking, computed once per evaluation pass (eval mode, no grad)."""
        was_training = self.training
        self.eval()
        try:
            return self.propagate()
        finally:
            self.train(was_training)

    # ----- what unlearning needs ---------------------------------------------------------------
    @abstractmethod
    def parameter_groups(self) -> dict[str, list[str]]:
        """Named modules → parameter names. Every trainable parameter belongs to exactly one group."""

    def modality_branches(self) -> dict[str, list[str]]:
        """Branch (``id`` / each modality name) → parameter names. Default: all parameters are ``id``."""
        return {"id": [n for n, p in self.named_parameters() if p.requires_grad]}

    def embedding_tables(self) -> dict[str, str]:
        """Parameter name → ``"user"`` or ``"item"`` for tables whose rows are users/items.

        TRU restricts updates of these tables to rows touched by the deletion, and ``rebuild-reset``
        re-initialises rows of fully deleted users/items.
        """
        return {}

    @abstractmethod
    def rebuild_graphs(self, train: sp.csr_matrix) -> None:
        """Rebuild every structure derived from the training matrix (U–I adjacency, item–item graphs)."""

    def see_retain(self, retain_train: sp.csr_matrix, deleted_items: np.ndarray) -> None:
        """Make the model see the retain data: :meth:`rebuild_graphs`, then ``forget_items``.

        ``rebuild_graphs`` rebuilds every structure derived from the training matrix (U–I adjacency and,
        for multimodal backbones, item–item graphs — which must drop items without training interactions).
        A backbone that needs to know explicitly which items were deleted (e.g. to drop them from a kNN
        graph built on content) may define ``forget_items(items: np.ndarray) -> None``; it is called with
        the fully deleted items after the rebuild. Backbones without it are unaffected.
        """
        self.rebuild_graphs(retain_train)
        hook = getattr(self, "forget_items", None)
        if callable(hook) and len(deleted_items):
            hook(deleted_items)

    @torch.no_grad()
    def reset_rows(self, users: np.ndarray, items: np.ndarray, seed: int = 0) -> None:
        """Re-initialise the embedding rows of users/items whose whole training history was deleted.

        Rows are drawn like a fresh model's rows (same init scale), so a reset user looks exactly like a
        user the model never trained on.
        """
        gen = torch.Generator().manual_seed(seed)
        params = dict(self.named_parameters())
        for pname, kind in self.embedding_tables().items():
            rows = users if kind == "user" else items
            if len(rows) == 0:
                continue
            param = params[pname]
            fresh = torch.empty(len(rows), param.shape[1])
            std = self.init_std_of(pname)
            if std is None:  # xavier-uniform bound of the whole table, as at construction
                bound = float(np.sqrt(6.0 / (param.shape[0] + param.shape[1])))
                fresh.uniform_(-bound, bound, generator=gen)
            else:
                fresh.normal_(0.0, std, generator=gen)
            param[torch.as_tensor(rows, dtype=torch.long, device=param.device)] = fresh.to(param)

    @torch.no_grad()
    def item_table_rows(self, pname: str, items: np.ndarray) -> torch.Tensor:
        """What item table ``pname`` holds for ``items`` (TRU's item prior averages it over the
        never-positive items). A backbone whose table covers only some items (MIG-GT's detached items)
        returns, for the others, what the row would stand in for."""
        table = dict(self.named_parameters())[pname]
        return table[torch.as_tensor(np.asarray(items, dtype=np.int64), device=table.device)]

    def items_with_rows(self, items: np.ndarray) -> np.ndarray:
        """Bool per item: does it have a row of its own in an item table (so a push can move it alone)?"""
        return np.full(len(items), "item" in self.embedding_tables().values())

    def init_std_of(self, pname: str) -> float | None:
        """Std of the normal init of an embedding table; ``None`` means xavier-uniform (the default)."""
        return None

    def l2_term(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """L2 on the batch's ego embeddings (MMRec/LightGCN convention), weighted by ``config.reg_weight``."""
        weight = float(getattr(self.config, "reg_weight", 0.0))
        if weight == 0.0:
            return torch.zeros((), device=users.device)
        tables = self.embedding_tables()
        params = dict(self.named_parameters())
        total = torch.zeros((), device=users.device)
        for pname, kind in tables.items():
            p = params[pname]
            if kind == "user":
                total = total + p[users].pow(2).sum()
            else:
                total = total + p[pos].pow(2).sum() + p[neg].pow(2).sum()
        return weight * total / (2 * len(users))

    def check_groups(self) -> None:
        """Every trainable parameter in exactly one group and one branch (a contract test helper)."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        for label, mapping in (("parameter_groups", self.parameter_groups()),
                               ("modality_branches", self.modality_branches())):
            seen = [n for members in mapping.values() for n in members]
            if sorted(seen) != sorted(names):
                raise AssertionError(f"{self.name}.{label} must partition the trainable parameters: "
                                     f"missing {names - set(seen)}, extra {set(seen) - names}")
