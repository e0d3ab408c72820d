"""MIG-GT (Hu et al., AAAI 2025): modality-independent GNNs with a sampled global transformer.

Re-implemented from the paper's description; the authors' public code was read for the conventions
the paper leaves open (graph with self-loops, zero-initialised user inputs in content branches,
the 0.9/0.1 residual of the global transformer). Structure:

- **branches**, one per source, each with its *own receptive field* (hop count ``K_b``): ``id``
  (user ID embeddings; item ID embeddings optional, off by default as in the authors' configs) and
  one per modality, whose item inputs are ``MLP_m(features_m)`` and whose user inputs are zero (a
  user's content representation is what propagation brings to it);
- each branch is propagated by **Markov graph diffusion** (MGDCF) over the U–I graph with
  self-loops, ``Â = D^{-1/2}(A + I)D^{-1/2}``: ``h_{k+1} = β·Â h_k + α·h_0`` for ``K_b`` steps,
  output ``h_K / γ_K`` with ``γ_K = β^K + α·Σ_{i<K} β^i`` (so the output is a convex mix of
  diffusion depths; with α + β = 1, γ = 1). α = 0.1 is the teleport (personalised-PageRank) weight;
- branch outputs are **summed**: ``z = Σ_b z_b``;
- **sampled global transformer** (simplified, single head): every node attends over itself and
  ``n_samples`` items drawn uniformly at random; ``q = W_q z``, ``k = W_k z``, values are the
  embeddings themselves; output ``γ_gt · z + (1 − γ_gt) · attention`` (γ_gt = 0.9);
- loss = BPR + ``reg_weight`` · L2(final batch embeddings) + ``unsmooth_weight`` · a sampled-softmax
  term: each batch user must prefer its positive item over that item's sampled global neighbours.

**Detached items** (unlearning only; absent from a trained model): an item has no row of its own here —
it is what the shared modality MLPs make of its content — so an item whose whole training history is
deleted keeps ranking where the MLPs learned to put it, and the graph rebuild makes that worse (an
isolated node keeps its raw, undiluted MLP output). :meth:`MIGGT.reset_rows` therefore *detaches* such
items: their summed branch output ``z`` is replaced by a row of a lazily created ``item_override`` table
(a fresh, data-free row; TRU's item prior then moves it to the negative-only items' mean, exactly as on
backbones with item rows). Only detached items read that table, so the push can move them without
touching the MLPs every retained item is made of (docs/TRU.md §1).

Deviations and the reading of α/β are documented in ``docs/MODELS.md``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from mmunlearn.config import option
from mmunlearn.data.interactions import InteractionData
from mmunlearn.errors import InputError
from mmunlearn.models.base import BatchTerms, Recommender
from mmunlearn.models.graphs import scipy_to_torch_csr, spmm, transpose_permutation, ui_adjacency_self_loops
from mmunlearn.models.mgcn import Shared, select_modalities, shared_tensor


@dataclass(frozen=True)
class MIGGTConfig:
    dim: int = option(64, "embedding size", gt=0)
    hops: str = option("id=4,text=2,image=1", "hops per branch, 'branch=K,...' (Baby 4/2/1, Sports 4/2/3, "
                                              "Clothing 2/2/0 for id/text/image); entries for absent "
                                              "modalities are ignored")
    default_hops: int = option(2, "hops of a modality branch not named in `hops`", ge=0)
    alpha: float = option(0.1, "MGDN teleport weight: share of a branch's input re-injected at every hop", ge=0, le=1)
    beta: float = option(0.9, "MGDN propagation weight: share of the propagated signal kept at every hop", ge=0, le=1)
    modalities: tuple[str, ...] = option((), "modalities to use (empty = every modality the data has)")
    hidden: int = option(512, "hidden width of each modality MLP (2048 on Clothing in the paper's code)", gt=0)
    rp_dim: int = option(384, "randomly project modalities wider than this first (0 = never), as the "
                              "authors do for 4096-d image features", ge=0)
    item_id_embedding: bool = option(False, "give the id branch item ID embeddings (the authors' configs "
                                            "use zeros: item ids come from propagation only)")
    feat_dropout: float = option(0.3, "dropout on the raw features and inside the modality MLPs", ge=0, lt=1)
    emb_dropout: float = option(0.3, "dropout on every branch's propagation input", ge=0, lt=1)
    edge_dropout: float = option(0.2, "dropout on the graph's edge weights, drawn per branch and step", ge=0, lt=1)
    out_dropout: float = option(0.2, "dropout on the summed branch output", ge=0, lt=1)
    n_samples: int = option(10, "items each node attends to in the global transformer (0 disables it)", ge=0)
    att_dim: int = option(4, "query/key width of the global transformer", gt=0)
    gt_residual: float = option(0.9, "weight of a node's own embedding in the transformer output", ge=0, le=1)
    unsmooth_weight: float = option(1.0, "weight of the sampled-softmax term against the global sample", ge=0)
    reg_weight: float = option(1e-5, "L2 weight on the batch's final embeddings", ge=0)
    seed: int = option(0, "seed of the random projection and of evaluation-time sampling", ge=0)


def parse_hops(spec: str, branches: list[str], default: int) -> dict[str, int]:
    """``"id=4,text=2"`` → hops per branch in ``branches`` (unknown names ignored; ``id`` required)."""
    given: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        try:
            k = int(value)
        except ValueError:
            k = -1
        if not sep or k < 0:
            raise InputError(f"MIGGTConfig.hops: {part!r} is not 'branch=K' with K >= 0 (got {spec!r})")
        given[name.strip()] = k
    if "id" not in given:
        raise InputError(f"MIGGTConfig.hops must give the id branch's hops, e.g. 'id=4,...' (got {spec!r})")
    return {b: given.get(b, default) for b in branches}


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout whose mask costs one RNG draw per 8 elements.

    ``torch``'s CPU dropout draws one random number per element (~20 ns each); MIG-GT drops ~20 M
    values per step, which made the masks the largest cost of a step. Here each 64-bit draw gives 8
    uniform bytes, compared with ``round(256·p)``: ``p`` is quantised to 1/256 (0.3 → 0.3008), and
    the rescaling uses the quantised keep rate, so the expectation is exact.
    """
    if not training or p <= 0.0:
        return x
    threshold = min(255, round(p * 256))
    n = x.numel()
    words = torch.randint(-(2 ** 63), 2 ** 63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=x.device)
    keep = words.view(torch.uint8)[:n].view(x.shape) >= threshold
    return x * keep.to(x.dtype).mul_(256.0 / (256 - threshold))


def modality_mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    """Linear → BN → PReLU → Dropout → Linear → BN → PReLU (the paper's feature encoder)."""
    mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.PReLU(), FastDropout(dropout),
                        nn.Linear(hidden, d_out), nn.BatchNorm1d(d_out), nn.PReLU())
    for layer in (mlp[0], mlp[4]):
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
    return mlp


class FastDropout(nn.Module):
    """:func:`fast_dropout` as a layer."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def random_projection(values: np.ndarray, dim: int, seed: int, block: int = 4096) -> np.ndarray:
    """``values @ G`` with ``G ~ N(0, 1/dim)``, ``block`` rows at a time (no full float64 copy)."""
    rng = np.random.default_rng(seed)
    g = (rng.standard_normal((values.shape[1], dim)) / np.sqrt(dim)).astype(np.float32)
    out = np.empty((values.shape[0], dim), dtype=np.float32)
    for s in range(0, values.shape[0], block):
        out[s:s + block] = np.asarray(values[s:s + block], dtype=np.float32) @ g
    return out


class MIGGT(Recommender):
    name = "miggt"
    modality_aware = True
    #: the paper's learning rate on Baby and Sports (1e-3 on Clothing); its batch size is 8000
    recommended_lr: ClassVar[float] = 1e-2

    def __init__(self, data: InteractionData, config: MIGGTConfig) -> None:
        super().__init__(data, config)
        mods = select_modalities(data, tuple(config.modalities), self.name)
        self.modality_names = list(mods)
        self.hops = parse_hops(config.hops, ["id", *self.modality_names], config.default_hops)
        d = config.dim
        self.user_emb = nn.Parameter(torch.randn(self.n_users, d) / math.sqrt(d))
        if config.item_id_embedding:
            self.item_emb = nn.Parameter(torch.randn(self.n_items, d) / math.sqrt(d))
        self.mlp = nn.ModuleDict()
        self._feats = Shared()  # fixed inputs: shared by copies of the model, not checkpointed
        for i, (m, mod) in enumerate(mods.items()):
            values = mod.values
            if 0 < config.rp_dim < mod.dim:
                values = random_projection(values, config.rp_dim, config.seed + 1000 * (i + 1))
            self._feats[m] = shared_tensor(values)
            self.mlp[m] = modality_mlp(values.shape[1], config.hidden, d, config.feat_dropout)
        self.query = nn.Linear(d, config.att_dim)
        self.key = nn.Linear(d, config.att_dim)
        for lin in (self.query, self.key):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self._graphs: dict[str, torch.Tensor] = {}
        self.rebuild_graphs(data.train)
        #: set by :meth:`detach_items` (and by loading a checkpoint that has them): the rows that stand in
        #: for detached items' summed branch output, and the mask of detached items
        self.item_override: nn.Parameter | None
        self.item_detached: torch.Tensor | None
        self.register_parameter("item_override", None)
        self.register_buffer("item_detached", None)

    # ----- detached items (unlearning) ---------------------------------------------------------
    def _ensure_override(self) -> None:
        """Register ``item_override`` / ``item_detached`` (zeros: nothing detached yet)."""
        if self.item_override is not None:
            return
        device = self.user_emb.device
        self.item_override = nn.Parameter(torch.zeros(self.n_items, self.config.dim, device=device))
        self.register_buffer("item_detached", torch.zeros(self.n_items, dtype=torch.bool, device=device))

    @torch.no_grad()
    def detach_items(self, items: np.ndarray, rows: torch.Tensor) -> None:
        """Make ``items`` read their summed branch output from ``rows`` (one per item) from now on."""
        if len(items) == 0:
            return
        self._ensure_override()
        assert self.item_override is not None and self.item_detached is not None
        idx = torch.as_tensor(np.asarray(items, dtype=np.int64), device=self.item_override.device)
        self.item_override[idx] = rows.to(self.item_override)
        self.item_detached[idx] = True

    def detached_items(self) -> np.ndarray:
        if self.item_detached is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.item_detached.cpu().numpy())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A saved unlearned model carries the detached-item table: create it before loading into it."""
        if prefix + "item_override" in state_dict:
            self._ensure_override()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def reset_rows(self, users: np.ndarray, items: np.ndarray, seed: int = 0) -> None:
        """User rows drawn like a fresh model's; fully deleted items **detached** onto fresh rows of the
        same scale (a fresh item row: no content, no memory of the MLPs' training)."""
        super().reset_rows(users, items, seed)
        if len(items) == 0:
            return
        gen = torch.Generator().manual_seed(seed + 1)
        fresh = torch.empty(len(items), self.config.dim).normal_(0.0, 1.0 / math.sqrt(self.config.dim),
                                                                  generator=gen)
        self.detach_items(items, fresh)

    @torch.no_grad()
    def item_table_rows(self, pname: str, items: np.ndarray) -> torch.Tensor:
        """For ``item_override``: a detached item's row, any other item's summed branch output ``z`` (eval
        mode) — what its row would hold, so the item prior averages the never-positive items' real
        representation, not the unused zero rows."""
        if pname != "item_override":
            return super().item_table_rows(pname, items)
        was_training = self.training
        self.eval()
        try:
            z = self._forward()[1][self.n_users:]
        finally:
            self.train(was_training)
        return z[torch.as_tensor(np.asarray(items, dtype=np.int64), device=z.device)]

    def items_with_rows(self, items: np.ndarray) -> np.ndarray:
        if self.item_detached is None:
            return np.zeros(len(items), dtype=bool)
        return self.item_detached.cpu().numpy()[np.asarray(items, dtype=np.int64)]

    # ----- graphs ------------------------------------------------------------------------------
    def rebuild_graphs(self, train: sp.csr_matrix) -> None:
        """U–I graph with self-loops, plus the value permutation that gives its transpose under
        edge dropout."""
        adj = ui_adjacency_self_loops(train)
        device = self.user_emb.device
        self._graphs = {"adj": scipy_to_torch_csr(adj, device=device),
                        "perm": torch.from_numpy(transpose_permutation(adj)).to(device)}

    def _apply(self, fn, recurse=True):  # keep the sparse graph on the module's device
        out = super()._apply(fn, recurse)
        self._graphs = {k: fn(v) for k, v in self._graphs.items()}  # fn leaves integer tensors' dtype
        self._feats = Shared({k: fn(v) for k, v in self._feats.items()})
        return out

    def _dropped_graph(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The adjacency for one branch's forward pass, with edge dropout while training."""
        adj = self._graphs["adj"]
        p = self.config.edge_dropout
        if not self.training or p <= 0:
            return adj, None
        kept = fast_dropout(adj.values(), p, True)
        crow, col = adj.crow_indices(), adj.col_indices()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dropped = torch.sparse_csr_tensor(crow, col, kept, size=adj.shape)
            dropped_t = torch.sparse_csr_tensor(crow, col, kept[self._graphs["perm"]], size=adj.shape)
        return dropped, dropped_t

    # ----- forward -----------------------------------------------------------------------------
    def _diffuse(self, x0: torch.Tensor, hops: int) -> torch.Tensor:
        """Markov graph diffusion: ``h ← β·Â h + α·h0`` ``hops`` times, normalised by γ."""
        a, b = self.config.alpha, self.config.beta
        adj, adj_t = self._dropped_graph() if hops > 0 else (None, None)
        h = x0
        for _ in range(hops):
            h = b * spmm(adj, h, adj_t) + a * x0
        gamma = b ** hops + a * sum(b ** i for i in range(hops))
        return h / gamma

    def _branch_inputs(self) -> dict[str, torch.Tensor]:
        """Per branch, the ``[n_users + n_items, dim]`` propagation input (``emb_dropout`` on its
        non-zero part)."""
        cfg, d = self.config, self.config.dim

        def drop(x: torch.Tensor) -> torch.Tensor:
            return fast_dropout(x, cfg.emb_dropout, self.training)

        zeros_u = self.user_emb.new_zeros(self.n_users, d)
        items = drop(self.item_emb) if cfg.item_id_embedding else self.user_emb.new_zeros(self.n_items, d)
        inputs = {"id": torch.cat([drop(self.user_emb), items], dim=0)}
        for m in self.modality_names:
            feat = fast_dropout(self._feats[m], cfg.feat_dropout, self.training)
            inputs[m] = torch.cat([zeros_u, drop(self.mlp[m](feat))], dim=0)
        return inputs

    def _sample(self, n_nodes: int, device: torch.device) -> torch.Tensor:
        """``[n_nodes, n_samples]`` uniform item indices; fixed (seeded) in eval mode so that
        evaluation is reproducible, fresh from the global RNG while training."""
        gen = None
        if not self.training:
            gen = torch.Generator(device=device).manual_seed(self.config.seed)
        return torch.randint(0, self.n_items, (n_nodes, self.config.n_samples), device=device, generator=gen)

    def _global_attention(self, z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Each node attends over itself and its sampled items (single head, values = embeddings)."""
        items = z[self.n_users:]
        q = self.query(z)
        k_self = self.key(z)
        k_items = self.key(items)
        scale = 1.0 / math.sqrt(self.config.att_dim)
        s_self = (q * k_self).sum(-1, keepdim=True)
        s_mem = torch.einsum("na,nsa->ns", q, k_items[idx])  # keys are att_dim wide: gather is small
        w = torch.softmax(torch.cat([s_self, s_mem], dim=1) * scale, dim=1)
        n, s = idx.shape  # values: Σ_j w_j · items[idx_j] as a weighted bag, no [N, S, dim] tensor
        offsets = torch.arange(0, n * s, s, device=idx.device)
        mixed = F.embedding_bag(idx.reshape(-1), items, offsets, mode="sum",
                                per_sample_weights=w[:, 1:].reshape(-1))
        att = w[:, :1] * z + mixed
        g = self.config.gt_residual
        return g * z + (1.0 - g) * att

    def _forward(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(final, summed branch output z, sample indices)`` for all nodes."""
        z = sum(self._diffuse(x, self.hops[b]) for b, x in self._branch_inputs().items())
        if self.item_override is not None:
            assert self.item_detached is not None
            items = torch.where(self.item_detached[:, None], self.item_override, z[self.n_users:])
            z = torch.cat([z[: self.n_users], items], dim=0)
        z = fast_dropout(z, self.config.out_dropout, self.training)
        if self.config.n_samples <= 0:
            return z, z, None
        idx = self._sample(z.shape[0], z.device)
        return self._global_attention(z, idx), z, idx

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        final = self._forward()[0]
        return final[: self.n_users], final[self.n_users:]

    def batch_terms(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BatchTerms:
        final, z, idx = self._forward()
        nu = self.n_users
        u, p, n = final[users], final[nu + pos], final[nu + neg]
        cfg = self.config
        aux = cfg.reg_weight * (u.pow(2).sum() + p.pow(2).sum() + n.pow(2).sum()) / (2 * len(users))
        if idx is not None and cfg.unsmooth_weight > 0:
            mem = z[nu:][idx[nu + pos]]  # [B, S, d]: the positive item's global sample
            logits = torch.cat([(u * p).sum(-1, keepdim=True), torch.einsum("bd,bsd->bs", u, mem)], dim=1)
            target = torch.zeros(len(users), dtype=torch.long, device=users.device)
            aux = aux + cfg.unsmooth_weight * F.cross_entropy(logits, target)
        return BatchTerms(pos=(u * p).sum(-1), neg=(u * n).sum(-1), aux=aux)

    # ----- what unlearning needs ---------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[str]]:
        groups = {"user_embedding": ["user_emb"]}
        if self.config.item_id_embedding:
            groups["item_embedding"] = ["item_emb"]
        for m in self.modality_names:
            groups[f"{m}_mlp"] = [n for n, p in self.named_parameters() if n.startswith(f"mlp.{m}.")]
        groups["global_transformer"] = [n for n, _ in self.named_parameters() if n.startswith(("query.", "key."))]
        if self.item_override is not None:
            groups["detached_items"] = ["item_override"]
        return groups

    def modality_branches(self) -> dict[str, list[str]]:
        """``id``: ID tables and the (modality-agnostic) global transformer; each modality: its MLP."""
        groups = self.parameter_groups()
        branches = {"id": [n for g in ("user_embedding", "item_embedding", "global_transformer", "detached_items")
                           for n in groups.get(g, [])]}
        branches.update({m: groups[f"{m}_mlp"] for m in self.modality_names})
        return branches

    def embedding_tables(self) -> dict[str, str]:
        tables = {"user_emb": "user"}
        if self.config.item_id_embedding:
            tables["item_emb"] = "item"
        if self.item_override is not None:
            tables["item_override"] = "item"
        return tables

    def init_std_of(self, pname: str) -> float | None:
        return 1.0 / math.sqrt(self.config.dim)
