"""LightGCN (He et al., SIGIR 2020): the graph-only reference backbone.

Ego ID embeddings propagated over the symmetric-normalised U–I adjacency; the final embedding is the
mean of the layer outputs (layer 0 included). No feature transforms, no non-linearities.
"""

from __future__ import annotations

from dataclasses import dataclass

import scipy.sparse as sp
import torch
from torch import nn

from mmunlearn.config import option
from mmunlearn.data.interactions import InteractionData
from mmunlearn.models.base import BatchTerms, Recommender
from mmunlearn.models.graphs import mean_propagation, scipy_to_torch_csr, ui_adjacency


@dataclass(frozen=True)
class LightGCNConfig:
    dim: int = option(64, "embedding size", gt=0)
    n_layers: int = option(3, "propagation layers (MMRec uses 3 on Amazon data)", ge=1)
    reg_weight: float = option(1e-4, "L2 weight on the batch's ego embeddings", ge=0)


class LightGCN(Recommender):
    name = "lightgcn"
    modality_aware = False
    #: 5e-3 reaches MMRec's quality on Baby in ~16 epochs instead of ~95 at 1e-3 (docs/BENCHMARKS.md)
    recommended_lr = 5e-3

    def __init__(self, data: InteractionData, config: LightGCNConfig) -> None:
        super().__init__(data, config)
        self.user_emb = nn.Parameter(torch.empty(self.n_users, config.dim))
        self.item_emb = nn.Parameter(torch.empty(self.n_items, config.dim))
        nn.init.xavier_uniform_(self.user_emb)
        nn.init.xavier_uniform_(self.item_emb)
        self.register_buffer("_adj_dummy", torch.zeros(0), persistent=False)
        self.adj: torch.Tensor
        self.rebuild_graphs(data.train)

    def rebuild_graphs(self, train: sp.csr_matrix) -> None:
        self.adj = scipy_to_torch_csr(ui_adjacency(train), device=self.user_emb.device)

    def _apply(self, fn, recurse=True):  # keep the sparse graph on the module's device
        out = super()._apply(fn, recurse)
        self.adj = fn(self.adj) if isinstance(self.adj, torch.Tensor) else self.adj
        return out

    def _ego(self) -> torch.Tensor:
        return torch.cat([self.user_emb, self.item_emb], dim=0)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        final = mean_propagation(self.adj, self._ego(), self.config.n_layers)
        return final[: self.n_users], final[self.n_users:]

    def batch_terms(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BatchTerms:
        """One gather of the batch's rows from the node matrix (final and ego), not three per table:
        each gather's backward zero-fills a full table, which cost more than the BPR term itself."""
        b = len(users)
        nodes = torch.cat([users, pos + self.n_users, neg + self.n_users])
        ego = self._ego()
        rows = mean_propagation(self.adj, ego, self.config.n_layers)[nodes]
        u, p, n = rows[:b], rows[b:2 * b], rows[2 * b:]
        l2 = self.config.reg_weight * ego[nodes].pow(2).sum() / (2 * b)
        return BatchTerms(pos=(u * p).sum(-1), neg=(u * n).sum(-1), aux=l2)

    def parameter_groups(self) -> dict[str, list[str]]:
        return {"user_embedding": ["user_emb"], "item_embedding": ["item_emb"]}

    def embedding_tables(self) -> dict[str, str]:
        return {"user_emb": "user", "item_emb": "item"}
