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
from mmunlearn.models.base import Recommender
from mmunlearn.models.graphs import scipy_to_torch_csr, spmm, ui_adjacency


@dataclass(frozen=True)
class LightGCNConfig:
    dim: int = option(64, "embedding size")
    n_layers: int = option(3, "propagation layers (MMRec uses 3 on Amazon data)")
    reg_weight: float = option(1e-4, "L2 weight on the batch's ego embeddings")


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

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_emb, self.item_emb], dim=0)
        acc = ego
        h = ego
        for _ in range(self.config.n_layers):
            h = spmm(self.adj, h)
            acc = acc + h
        final = acc / (self.config.n_layers + 1)
        return final[: self.n_users], final[self.n_users:]

    def parameter_groups(self) -> dict[str, list[str]]:
        return {"user_embedding": ["user_emb"], "item_embedding": ["item_emb"]}

    def embedding_tables(self) -> dict[str, str]:
        return {"user_emb": "user", "item_emb": "item"}
