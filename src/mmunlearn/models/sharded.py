"""A sharded recommender: K independent backbones over a fixed partition, plus an aggregator.

This is the model behind the exact unlearning methods ``sisa`` and ``receraser``. Each shard ``k`` is
an ordinary backbone (LightGCN, MGCN, MIG-GT, a plug-in) trained only on the training pairs whose user
(``partition`` random / user) or item (``item``) is assigned to ``k``; its graph is built from those
pairs alone, so no other shard's data reaches it. A deletion therefore only needs the shards holding
deleted pairs retrained (and the aggregator, which saw all retain data) — the rest stay bit-identical.

Aggregators:

- ``mean`` (SISA): a user's score is the mean of the scores of the shards that hold the user's data
  (with user shards: its own shard; a user without data: all shards). Averaging over shards that never
  saw the user would add a random-projection term (an untrained user row times trained item rows).
- ``attention`` (RecEraser): per shard a transfer matrix ``T_k`` and an attention
  ``softmax_k(hᵀ tanh(W·T_k e_k + b))`` over the shards that hold the id's data, for users and items
  separately; a score is ``Σ_k α_uk β_ik (T_k e_uk)·(T_k e_ik)`` (within-shard products only, see
  :meth:`AttentionAggregator.combine`). Trained on the retain data with the shards frozen
  (``train.sharded.train_aggregator``).

The partition (``shard_of``) is a persistent buffer, so it travels inside the one safetensors file of
the ordinary checkpoint format (``shards.<k>.<param>``, ``aggregator.<param>``, ``shard_of``);
loading a checkpoint rebuilds the shard graphs from the loaded partition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from mmunlearn.config import option
from mmunlearn.data.interactions import InteractionData
from mmunlearn.data.partition import make_partition, membership, partition_axis, restrict
from mmunlearn.errors import InputError
from mmunlearn.models.base import Recommender

AGGREGATORS = ("mean", "attention")


@dataclass(frozen=True)
class ShardedConfig:
    backbone: str = option("lightgcn", "the backbone of every shard")
    backbone_config: dict[str, Any] = field(default_factory=dict,
                                            metadata={"help": "the backbone's config (its defaults where absent)"})
    shards: int = option(4, "number of shards K", ge=1)
    partition: str = option("random", "random (users, SISA), user or item (RecEraser's balanced partition)")
    aggregator: str = option("mean", "mean (SISA: average of the scores of the shards holding the user) or "
                                     "attention (RecEraser)")
    partition_seed: int = option(0, "seed of the partition", ge=0)
    attention_dim: int = option(32, "hidden width of the attention aggregator", gt=0)
    agg_epochs: int = option(50, "maximum epochs of the attention aggregator (early stopping on valid)", ge=0)
    agg_patience: int = option(5, "aggregator evaluations without a new best valid score before stopping", gt=0)
    agg_lr: float = option(1e-3, "Adam learning rate of the aggregator", gt=0)
    agg_reg: float = option(1e-4, "L2 weight on the aggregated batch embeddings", ge=0)


def default_aggregator(partition: str) -> str:
    """SISA averages random shards; RecEraser's balanced partitions come with the attention aggregator."""
    return "mean" if partition == "random" else "attention"


def sharded_config(backbone: str, backbone_config: Any, shards: int, partition: str, aggregator: str = "auto",
                   seed: int = 0) -> ShardedConfig:
    """The config of a sharded model of ``shards`` ``backbone`` models (``aggregator='auto'``: by partition)."""
    agg = default_aggregator(partition) if aggregator == "auto" else aggregator
    return ShardedConfig(backbone=backbone, backbone_config=asdict(backbone_config), shards=shards,
                         partition=partition, aggregator=agg, partition_seed=seed)


class AttentionAggregator(nn.Module):
    """RecEraser's aggregator: per-shard transfer matrices and masked attention over shards."""

    def __init__(self, k: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.transfer = nn.Parameter(torch.eye(dim).repeat(k, 1, 1))
        self.user_w = nn.Linear(dim, hidden)
        self.user_h = nn.Linear(hidden, 1, bias=False)
        self.item_w = nn.Linear(dim, hidden)
        self.item_h = nn.Linear(hidden, 1, bias=False)

    def reset(self, seed: int) -> None:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        with torch.no_grad():
            self.transfer.copy_(torch.eye(self.transfer.shape[1]).repeat(self.transfer.shape[0], 1, 1))
            for lin in (self.user_w, self.user_h, self.item_w, self.item_h):
                lin.reset_parameters()
            self.user_h.weight.zero_()  # gates start at exactly 1: the aggregator starts as SISA's sum
            self.item_h.weight.zero_()
        torch.random.set_rng_state(gen_state)

    def combine(self, embs: torch.Tensor, mask: torch.Tensor, side: str) -> torch.Tensor:
        """``embs [K, n, d]`` of n ids, ``mask [n, K]`` (shards holding the id's data) → ``[n, K·d]``.

        The shards' transferred embeddings ``T_k e_k``, each scaled by a gate ``g = 2·σ(hᵀ tanh(W·T_k e_k
        + b))`` (1 at initialisation, 0 for shards without the id's data), concatenated: a user–item dot
        product is ``Σ_k g_uk g_ik (T_k e_uk)·(T_k e_ik)``, so shard k's user row only ever meets shard
        k's item row, and at initialisation the score is SISA's. Two deviations from RecEraser, both
        measured on Baby (docs/DISTRIBUTED.md): RecEraser *sums* ``Σ_k α_k T e_k`` into one d-vector —
        cross-shard products of models that share no embedding space; and its weights are a *softmax*
        over shards, which with user shards divides a popular item (present in every shard) by K
        against a niche item present in one.
        """
        z = torch.einsum("knd,kde->kne", embs, self.transfer)
        w, h = (self.user_w, self.user_h) if side == "user" else (self.item_w, self.item_h)
        logits = h(torch.tanh(w(z))).squeeze(-1).T  # [n, K]
        gate = 2.0 * torch.sigmoid(logits) * mask.to(logits.dtype)
        return (z * gate.T[:, :, None]).permute(1, 0, 2).reshape(z.shape[1], -1)

class ShardedRecommender(Recommender):
    name = "sharded"
    modality_aware = False  # the data spec follows the backbone (cli/train.py prepares for it)

    def __init__(self, data: InteractionData, config: ShardedConfig) -> None:
        super().__init__(data, config)
        from mmunlearn.models.registry import MODELS, model_config

        if config.backbone not in MODELS or config.backbone == self.name:
            raise InputError(f"sharded model: unknown backbone {config.backbone!r}; available: "
                             f"{sorted(m for m in MODELS if m != self.name)}")
        if config.aggregator not in AGGREGATORS:
            raise InputError(f"sharded model: aggregator {config.aggregator!r}: expected one of {AGGREGATORS}")
        if config.shards < 1:
            raise InputError(f"--shards {config.shards}: must be at least 1")
        self.axis = partition_axis(config.partition)
        self.backbone_config = model_config(config.backbone, ("sharded backbone_config", config.backbone_config))
        shard_of = make_partition(data.train, config.partition, config.shards, config.partition_seed)
        self.register_buffer("shard_of", torch.as_tensor(shard_of, dtype=torch.long))
        self._train = data.train  # the training matrix the shard graphs are built from
        self.shards = nn.ModuleList([self.fresh_shard(data, k) for k in range(config.shards)])
        dim = int(getattr(self.backbone_config, "dim", 64))
        self.aggregator = (AttentionAggregator(config.shards, dim, config.attention_dim)
                           if config.aggregator == "attention" else None)
        self._set_membership(data.train)

    # ----- shards ---------------------------------------------------------------------------------
    @property
    def n_shards(self) -> int:
        return int(self.config.shards)

    def assignment(self) -> np.ndarray:
        return self.shard_of.detach().cpu().numpy()

    def shard_data(self, data: InteractionData, k: int) -> InteractionData:
        """``data`` restricted to shard ``k`` (train, valid and test pairs of its users or items)."""
        shard_of = self.assignment()
        splits = {s: restrict(data.split(s), shard_of, k, self.axis) for s in ("train", "valid", "test")}
        if splits["train"].nnz == 0:
            raise InputError(f"sharded model: shard {k} of {self.n_shards} holds no training pairs "
                             f"({self.config.partition} partition of {data.name!r}); use fewer shards")
        return InteractionData(name=f"{data.name}-shard{k}of{self.n_shards}", modalities=data.modalities,
                               source=f"{data.source}; shard {k} of {self.n_shards} "
                                      f"({self.config.partition} partition)", **splits)

    def fresh_shard(self, data: InteractionData, k: int) -> Recommender:
        """A newly initialised backbone for shard ``k`` on ``data``'s pairs of that shard (global RNG)."""
        from mmunlearn.models.registry import build_model

        return build_model(self.config.backbone, self.shard_data(data, k), self.backbone_config)

    def _set_membership(self, train: sp.csr_matrix) -> None:
        mu, mi = membership(train, self.assignment(), self.n_shards, self.axis)
        device = self.shard_of.device
        self._user_mask = _with_fallback(torch.as_tensor(mu, device=device))
        self._item_mask = _with_fallback(torch.as_tensor(mi, device=device))

    def rebuild_graphs(self, train: sp.csr_matrix) -> None:
        self._train = train
        for k, shard in enumerate(self.shards):
            shard.rebuild_graphs(restrict(train, self.assignment(), k, self.axis))
        self._set_membership(train)

    def forget_items(self, items: np.ndarray) -> None:
        for shard in self.shards:
            hook = getattr(shard, "forget_items", None)
            if callable(hook):
                hook(items)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        """Load weights *and the partition*, then rebuild the shard graphs from the loaded partition."""
        out = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if "shard_of" in state_dict:
            self.rebuild_graphs(self._train)
        return out

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._user_mask, self._item_mask = fn(self._user_mask), fn(self._item_mask)
        return out

    # ----- scoring --------------------------------------------------------------------------------
    def shard_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``[K, n_users, d]`` and ``[K, n_items, d]``: every shard's final embeddings."""
        outs = [shard.propagate() for shard in self.shards]
        return torch.stack([u for u, _ in outs]), torch.stack([i for _, i in outs])

    def aggregate(self, users: torch.Tensor, items: torch.Tensor, user_rows: torch.Tensor | None = None,
                  item_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings from shard embeddings (optionally of some rows only)."""
        mu = self._user_mask if user_rows is None else self._user_mask[user_rows]
        mi = self._item_mask if item_rows is None else self._item_mask[item_rows]
        if self.aggregator is not None:
            return self.aggregator.combine(users, mu, "user"), self.aggregator.combine(items, mi, "item")
        # mean: score = Σ_k w_k s_k(u, i), w normalised over the shards holding the id on the partition
        # axis — a dot product of concatenated embeddings
        mask = mu if self.axis == "user" else mi
        w = mask.to(users.dtype) / mask.sum(1, keepdim=True).to(users.dtype)  # [n, K]
        if self.axis == "user":
            u = (users * w.T[:, :, None]).permute(1, 0, 2).reshape(users.shape[1], -1)
            i = items.permute(1, 0, 2).reshape(items.shape[1], -1)
        else:
            u = users.permute(1, 0, 2).reshape(users.shape[1], -1)
            i = (items * w.T[:, :, None]).permute(1, 0, 2).reshape(items.shape[1], -1)
        return u, i

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.shard_embeddings()
        return self.aggregate(users, items)

    # ----- what unlearning needs ------------------------------------------------------------------
    def _prefixed(self, per_shard: list[dict[str, Any]], agg_key: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, mapping in enumerate(per_shard):
            for key, names in mapping.items():
                out.setdefault(f"shard{k}.{key}" if agg_key == "groups" else key, []).extend(
                    f"shards.{k}.{n}" for n in names)
        if self.aggregator is not None:
            names = [f"aggregator.{n}" for n, p in self.aggregator.named_parameters() if p.requires_grad]
            out.setdefault("aggregator" if agg_key == "groups" else "id", []).extend(names)
        return out

    def parameter_groups(self) -> dict[str, list[str]]:
        return self._prefixed([s.parameter_groups() for s in self.shards], "groups")

    def modality_branches(self) -> dict[str, list[str]]:
        return self._prefixed([s.modality_branches() for s in self.shards], "branches")

    def embedding_tables(self) -> dict[str, str]:
        return {f"shards.{k}.{n}": kind for k, s in enumerate(self.shards) for n, kind in s.embedding_tables().items()}

    def init_std_of(self, pname: str) -> float | None:
        _, k, rest = pname.split(".", 2)
        return self.shards[int(k)].init_std_of(rest)

    @torch.no_grad()
    def reset_rows(self, users: np.ndarray, items: np.ndarray, seed: int = 0) -> None:
        """Each shard resets its own rows its own way (MGCN restores feature rows, MIG-GT detaches items)."""
        for k, shard in enumerate(self.shards):
            shard.reset_rows(users, items, seed=seed + 7 * k)

    def item_table_rows(self, pname: str, items: np.ndarray) -> torch.Tensor:
        _, k, rest = pname.split(".", 2)
        return self.shards[int(k)].item_table_rows(rest, items)

    def items_with_rows(self, items: np.ndarray) -> np.ndarray:
        """An item has a row only if it has one in every shard (each shard scores it)."""
        return np.logical_and.reduce([s.items_with_rows(items) for s in self.shards])

    def describe(self) -> dict[str, Any]:
        sizes = np.bincount(self.assignment(), minlength=self.n_shards)
        return {"shards": self.n_shards, "partition": self.config.partition, "axis": self.axis,
                "aggregator": self.config.aggregator, "backbone": self.config.backbone,
                "ids_per_shard": sizes.tolist(), "config": asdict(self.config)}


def _with_fallback(mask: torch.Tensor) -> torch.Tensor:
    """An id held by no shard (no training data) is scored by all shards."""
    mask = mask.clone()
    mask[~mask.any(1)] = True
    return mask


__all__ = ["ShardedRecommender", "ShardedConfig", "AttentionAggregator", "AGGREGATORS", "default_aggregator",
           "sharded_config"]
