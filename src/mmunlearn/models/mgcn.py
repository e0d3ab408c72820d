"""MGCN (Yu et al., ACM MM 2023): multi-view graph convolution for multimedia recommendation.

Re-implemented from the paper's description (MMRec's code is GPL-3.0; none of it is used here):

- **ID embeddings** for users and items; **trainable feature tables** (one per modality, initialised
  from the content) projected to ``dim`` by a Linear per modality;
- **behaviour-guided purifier**: per modality, ``item_id ⊙ σ(W_m · proj_m(feat_m) + b_m)`` — item
  behaviour decides which content dimensions are kept;
- **U–I view**: LightGCN over the ID embeddings (``n_ui_layers``, mean of layer outputs incl. layer 0)
  → *content* embeddings of users and items;
- **item–item view** per modality: the purified item embeddings propagated ``n_mm_layers`` times over
  the modality's kNN graph (built on raw content, :func:`~mmunlearn.models.graphs.knn_item_graph`);
  users are the normalised-R aggregation of their items;
- **behaviour-aware fuser**: attention over modalities gives a *common* part; each modality's
  remainder (``e_m − common``) is gated by ``σ(W'_m · content)``; the *side* embedding is the mean of
  the common part and the gated specific parts;
- final = content + side; loss = BPR + ``reg_weight`` · L2(final batch embeddings)
  + ``cl_weight`` · (InfoNCE(side, content) over the batch's users and over its positive items).

Every set of modalities in ``data.modalities`` works (one, two or more); which ones is
``MGCNConfig.modalities`` (empty = all the data has). Deviations from the paper/reference are listed
in ``docs/MODELS.md``.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from mmunlearn.config import option
from mmunlearn.data.features import Modality
from mmunlearn.data.interactions import InteractionData
from mmunlearn.errors import InputError
from mmunlearn.models.base import BatchTerms, Recommender
from mmunlearn.models.graphs import (
    array_fingerprint,
    cached_knn_item_graph,
    drop_items,
    mean_propagation,
    norm_user_item,
    scipy_to_torch_csr,
    spmm,
    transpose_csr,
    ui_adjacency,
)


@dataclass(frozen=True)
class MGCNConfig:
    dim: int = option(64, "embedding size", gt=0)
    n_ui_layers: int = option(2, "LightGCN layers of the U–I view", ge=1)
    n_mm_layers: int = option(1, "propagation layers of each item–item (kNN) view", ge=0)
    knn_k: int = option(10, "neighbours per item in the content kNN graphs (the item itself included)", gt=0)
    knn_symmetric: bool = option(True, "symmetrise the kNN relation (A ∨ Aᵀ) before D^-1/2 A D^-1/2; "
                                       "False keeps MGCN's directed graph")
    knn_drop_cold: bool = option(True, "leave items without training interactions out of the kNN graphs, "
                                       "so Retrain and item unlearning see the same item–item graph")
    cl_weight: float = option(0.01, "weight of the InfoNCE term between side and content embeddings", ge=0)
    tau: float = option(0.2, "InfoNCE temperature", gt=0)
    reg_weight: float = option(1e-4, "L2 weight on the batch's final embeddings (MGCN convention)", ge=0)
    modalities: tuple[str, ...] = option((), "modalities to use (empty = every modality the data has)")
    train_features: bool = option(True, "train the raw feature tables (MGCN); False freezes them, "
                                        "which saves their gradient, optimiser state and update")
    graph_cache_dir: str = option("", "directory for an on-disk kNN graph cache keyed by content "
                                      "fingerprint (empty = in-memory cache only)")


def select_modalities(data: InteractionData, requested: tuple[str, ...], model: str) -> dict[str, Modality]:
    """The modalities a content-aware backbone will use, in a stable order, with actionable errors."""
    if not data.modalities:
        raise InputError(
            f"{model} needs item content but dataset {data.name!r} has no modalities; add features "
            "(image_feat.npy / text_feat.npy, a text encoder) or use the synthetic feature provider")
    names = list(requested) if requested else list(data.modalities)
    missing = [n for n in names if n not in data.modalities]
    if missing:
        raise InputError(f"{model}: modalities {missing} are not in dataset {data.name!r}; "
                         f"available: {sorted(data.modalities)}")
    if len(set(names)) != len(names):
        raise InputError(f"{model}: modalities listed twice: {names}")
    bad = [n for n in names if not n or "." in n or n == "id"]
    if bad:
        raise InputError(f"{model}: modality names {bad} are not allowed (empty, contain '.', or 'id')")
    return {n: data.modalities[n] for n in names}


class Shared(dict):
    """Read-only data (raw content, content graphs) that copies of a model share.

    Unlearning starts from a deep copy of the original model; without this, every copy would also
    duplicate the dataset's content arrays (377 MB of images on Clothing). Nothing stored here is
    ever modified in place: updates replace the whole ``Shared`` object.
    """

    def __deepcopy__(self, memo: dict) -> Shared:
        return self


def shared_tensor(values: np.ndarray) -> torch.Tensor:
    """A float32 tensor over ``values``' memory when it already is contiguous float32 (no copy).

    Content tables are large (Clothing's images: 377 MB) and read-only inputs; the model must never
    write into the result in place.
    """
    arr = np.ascontiguousarray(values, dtype=np.float32)
    with warnings.catch_warnings():  # read-only arrays (memory-mapped .npy) are fine: we never write
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr)


class _Views(NamedTuple):
    """Everything one forward pass produces that the loss needs (all ``[n_users + n_items, dim]``)."""

    content: torch.Tensor
    side: torch.Tensor
    final: torch.Tensor


class _InfoNCE(torch.autograd.Function):
    """``mean_i(logsumexp_j(a_i·b_j) − a_i·b_i)`` with a hand-written backward.

    Autograd's cross-entropy path materialises the ``[B, B]`` logits several times over (log-softmax,
    its backward, a zero fill, a scatter) and exponentiates twice. Here the logits buffer is turned into
    the softmax in place (one ``exp`` pass), kept for backward (``B² · 4`` bytes: 16 MB at B = 2048),
    and the gradient is ``(P − I)·b`` / ``(P − I)ᵀ·a`` written as ``P·b − b``: three ``B × B × d``
    products per call, none repeated. Saved tensors are never modified, so a retained graph can be
    differentiated twice; under ``create_graph`` the backward recomputes the softmax with
    differentiable ops, so Hessian-vector products see the exact second derivative.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        logits = a @ b.T
        row_max = logits.amax(dim=1, keepdim=True)
        prob = logits.sub_(row_max).exp_()
        total = prob.sum(dim=1, keepdim=True)
        prob.div_(total)
        lse = (row_max + total.log()).squeeze(1)
        ctx.save_for_backward(a, b, prob)
        return (lse - (a * b).sum(1)).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b, prob = ctx.saved_tensors
        scale = grad / len(a)
        if torch.is_grad_enabled():  # create_graph (Hessian-vector products): differentiable recompute
            p = torch.softmax(a @ b.T, dim=1)
            return (p @ b - b) * scale, (p.T @ a - a) * scale
        grad_a = torch.mm(prob, b).sub_(b).mul_(scale)
        grad_b = torch.mm(prob.T, a).sub_(a).mul_(scale)
        return grad_a, grad_b


class GradientStore:
    """Keeps a large parameter's last gradient storage so the next backward writes into it.

    MGCN's trainable feature tables get a full-table gradient every step (115 MB on Baby, 377 MB on
    Clothing). Allocated fresh, that block is page-faulted in again every step (glibc maps it anew:
    ~10 ms per step on Baby) or, with the heap allocator of ``mmunlearn.runtime``, lands wherever the
    step's smaller blocks left room and fragments the heap by up to a table per step (+0.4 GiB peak on
    Clothing). After the gradient is accumulated a hook keeps a reference to its storage;
    ``optimizer.zero_grad(set_to_none=True)`` then drops only the parameter's reference, and
    :meth:`take` hands the storage to the next backward. It is handed out only when the parameter has
    no gradient (nothing to accumulate into) and only once, so a gradient is never written twice.
    The model releases it when put in eval mode, so a trained model holds no spare table.

    The store holds its parameter *weakly*: the parameter holds the hook (a bound method of the store)
    in C++, where Python's cycle collector cannot see it, so a strong reference back would make every
    model that ever ran a forward pass immortal — with its feature tables (a grid of unlearning runs on
    MGCN/Baby grew by ~7 GB per request until the OOM killer stopped it).
    """

    def __init__(self) -> None:
        self._spare: torch.Tensor | None = None
        self._param: weakref.ref[nn.Parameter] | None = None

    def _target(self) -> nn.Parameter | None:
        return None if self._param is None else self._param()

    def attach(self, param: nn.Parameter) -> None:
        """Hook ``param`` (again after a deep copy, which does not copy hooks)."""
        if self._target() is not param:
            self._param, self._spare = weakref.ref(param), None
            param.register_post_accumulate_grad_hook(self._keep)

    def _keep(self, param: torch.Tensor) -> None:
        self._spare = param.grad

    def release(self) -> None:
        self._spare = None

    def take(self, shape: torch.Size, like: torch.Tensor) -> torch.Tensor | None:
        spare, self._spare = self._spare, None
        param = self._target()
        usable = (spare is not None and param is not None and param.grad is None
                  and spare.shape == shape and spare.dtype == like.dtype and spare.device == like.device)
        return spare if usable else None

    def __deepcopy__(self, memo: dict) -> GradientStore:
        return GradientStore()  # a copy's parameter is a new tensor: it attaches on its first forward


class _TableProjection(torch.autograd.Function):
    """``table @ weight.T + bias`` whose table gradient goes into a :class:`GradientStore`'s storage."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                store: GradientStore) -> torch.Tensor:
        ctx.save_for_backward(table, weight)
        ctx.store = store
        return torch.addmm(bias, table, weight.T)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        table, weight = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph (Hessian-vector products): plain differentiable ops
            return (grad @ weight if ctx.needs_input_grad[0] else None,
                    grad.T @ table if ctx.needs_input_grad[1] else None,
                    grad.sum(0) if ctx.needs_input_grad[2] else None, None)
        grad_table = None
        if ctx.needs_input_grad[0]:
            out = ctx.store.take(table.shape, grad)
            grad_table = torch.mm(grad, weight) if out is None else torch.mm(grad, weight, out=out)
        grad_weight = grad.T @ table if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(0) if ctx.needs_input_grad[2] else None
        return grad_table, grad_weight, grad_bias, None


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE of row-aligned views: row i of ``a`` should match row i of ``b`` against the batch
    (cosine similarity / ``tau``; the other rows of ``b`` are the negatives)."""
    return _InfoNCE.apply(F.normalize(a, dim=1) / tau, F.normalize(b, dim=1))


class MGCN(Recommender):
    name = "mgcn"
    modality_aware = True
    recommended_lr: ClassVar[float] = 1e-3

    def __init__(self, data: InteractionData, config: MGCNConfig) -> None:
        super().__init__(data, config)
        mods = select_modalities(data, tuple(config.modalities), self.name)
        self.modality_names = list(mods)
        d = config.dim
        self.user_emb = nn.Parameter(torch.empty(self.n_users, d))
        self.item_emb = nn.Parameter(torch.empty(self.n_items, d))
        nn.init.xavier_uniform_(self.user_emb)
        nn.init.xavier_uniform_(self.item_emb)
        self._raw = Shared({m: mod.values for m, mod in mods.items()})  # references (for reset_rows)
        self.features = nn.ParameterDict()
        self._frozen = Shared()
        for m, mod in mods.items():
            if config.train_features:  # a copy: it is trained
                self.features[m] = nn.Parameter(torch.from_numpy(np.array(mod.values, dtype=np.float32)))
            else:  # read-only input: share the dataset's memory (not a buffer: not copied, not saved)
                self._frozen[m] = shared_tensor(mod.values)
        self._grad_stores = {m: GradientStore() for m in mods}
        self.projection = nn.ModuleDict({m: nn.Linear(mod.dim, d) for m, mod in mods.items()})
        self.purifier = nn.ModuleDict({m: nn.Linear(d, d) for m in mods})
        self.attention = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1, bias=False))
        self.preference = nn.ModuleDict({m: nn.Linear(d, d) for m in mods})
        for lin in [*self.projection.values(), *self.purifier.values(), *self.preference.values(),
                    self.attention[0], self.attention[2]]:
            nn.init.xavier_uniform_(lin.weight)
        self._knn_full = Shared({m: cached_knn_item_graph(mod.values, config.knn_k, config.knn_symmetric,
                                                   fingerprint=_modality_key(mod),
                                                   cache_dir=config.graph_cache_dir or None)
                                 for m, mod in mods.items()})
        self._graphs: dict[str, torch.Tensor] = {}
        self.rebuild_graphs(data.train)

    # ----- graphs ------------------------------------------------------------------------------
    def rebuild_graphs(self, train: sp.csr_matrix) -> None:
        """U–I adjacency, normalised R (and Rᵀ) and, with ``knn_drop_cold``, the kNN graphs without
        the items that have no training interaction left."""
        device = self.user_emb.device
        r = norm_user_item(train)
        graphs = {"adj": ui_adjacency(train), "r": r, "r_t": transpose_csr(r)}
        cold = (np.flatnonzero(np.diff(sp.csc_matrix(train).indptr) == 0)
                if self.config.knn_drop_cold else np.zeros(0, dtype=np.int64))
        for m, full in self._knn_full.items():
            knn = drop_items(full, cold) if len(cold) else full
            graphs[f"knn.{m}"] = knn
            if not self.config.knn_symmetric:
                graphs[f"knn_t.{m}"] = transpose_csr(knn)
        self._graphs = {k: scipy_to_torch_csr(v, device=device) for k, v in graphs.items()}

    def _apply(self, fn, recurse=True):  # keep the sparse graphs (and frozen content) on the device
        out = super()._apply(fn, recurse)
        self._graphs = {k: fn(v) for k, v in self._graphs.items()}
        self._frozen = Shared({k: fn(v) for k, v in self._frozen.items()})
        return out

    # ----- forward -----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> MGCN:
        if not mode:  # evaluation and inference need no spare gradient storage
            for store in self._grad_stores.values():
                store.release()
        return super().train(mode)

    def _project(self, m: str) -> torch.Tensor:
        """``projection.m(features.m)``; a trainable table's gradient reuses its last storage."""
        lin = self.projection[m]
        if not self.config.train_features:
            return lin(self._frozen[m])
        table = self.features[m]
        store = self._grad_stores[m]
        store.attach(table)
        return _TableProjection.apply(table, lin.weight, lin.bias, store)

    def _modality_view(self, m: str) -> torch.Tensor:
        """Item–item view of modality ``m`` for all nodes: ``[n_users + n_items, dim]``."""
        g = self._graphs
        purified = self.item_emb * torch.sigmoid(self.purifier[m](self._project(m)))
        h = purified
        for _ in range(self.config.n_mm_layers):
            h = spmm(g[f"knn.{m}"], h, g.get(f"knn_t.{m}"))
        users = spmm(g["r"], h, g["r_t"])
        return torch.cat([users, h], dim=0)

    def _content_view(self) -> torch.Tensor:
        """LightGCN over ID embeddings: mean of the layer outputs, layer 0 included."""
        ego = torch.cat([self.user_emb, self.item_emb], dim=0)
        return mean_propagation(self._graphs["adj"], ego, self.config.n_ui_layers)

    def _fuse(self, content: torch.Tensor, views: list[torch.Tensor]) -> torch.Tensor:
        """Behaviour-aware fuser: attention-weighted common part + preference-gated specific parts."""
        weights = torch.softmax(torch.cat([self.attention(v) for v in views], dim=1), dim=1)
        common = sum(weights[:, j:j + 1] * v for j, v in enumerate(views))
        side = common
        for m, v in zip(self.modality_names, views, strict=True):
            side = side + torch.sigmoid(self.preference[m](content)) * (v - common)
        return side / (len(views) + 1)

    def _views(self, nodes: torch.Tensor | None = None) -> _Views:
        """Content, side and final embeddings of ``nodes`` (all nodes when ``None``).

        Propagation needs every node, but the fuser is per node, so training fuses only the
        batch's rows.
        """
        content = self._content_view()
        views = [self._modality_view(m) for m in self.modality_names]
        if nodes is not None:
            content, views = content[nodes], [v[nodes] for v in views]
        side = self._fuse(content, views)
        return _Views(content=content, side=side, final=content + side)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        final = self._views().final
        return final[: self.n_users], final[self.n_users:]

    def batch_terms(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BatchTerms:
        b, nu = len(users), self.n_users
        v = self._views(torch.cat([users, nu + pos, nu + neg]))
        u, p, n = v.final[:b], v.final[b:2 * b], v.final[2 * b:]
        cfg = self.config
        reg = cfg.reg_weight * (u.pow(2).sum() + p.pow(2).sum() + n.pow(2).sum()) / (2 * b)
        cl = (info_nce(v.side[b:2 * b], v.content[b:2 * b], cfg.tau)
              + info_nce(v.side[:b], v.content[:b], cfg.tau))
        return BatchTerms(pos=(u * p).sum(-1), neg=(u * n).sum(-1), aux=reg + cfg.cl_weight * cl)

    # ----- what unlearning needs ---------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[str]]:
        groups = {"user_embedding": ["user_emb"], "item_embedding": ["item_emb"]}
        for m in self.modality_names:
            if self.config.train_features:
                groups[f"{m}_features"] = [f"features.{m}"]
            groups[f"{m}_projection"] = _names(self, f"projection.{m}.")
            groups[f"{m}_purifier"] = _names(self, f"purifier.{m}.")
            groups[f"{m}_preference_gate"] = _names(self, f"preference.{m}.")
        groups["fuser_attention"] = _names(self, "attention.")
        return groups

    def modality_branches(self) -> dict[str, list[str]]:
        """``id``: ID tables and the shared fuser attention; each modality: its features, projection,
        purifier gate and preference gate."""
        groups = self.parameter_groups()
        branches = {"id": groups["user_embedding"] + groups["item_embedding"] + groups["fuser_attention"]}
        for m in self.modality_names:  # explicit names: a modality called "fuser" or "img"/"img_hd" is fine
            parts = (f"{m}_features", f"{m}_projection", f"{m}_purifier", f"{m}_preference_gate")
            branches[m] = [n for g in parts for n in groups.get(g, [])]
        return branches

    def embedding_tables(self) -> dict[str, str]:
        """ID tables, plus the trainable feature tables (item rows: TRU may restrict their updates to
        touched items; :meth:`reset_rows` restores them to the raw content, not to noise)."""
        tables = {"user_emb": "user", "item_emb": "item"}
        if self.config.train_features:
            tables.update({f"features.{m}": "item" for m in self.modality_names})
        return tables

    @torch.no_grad()
    def reset_rows(self, users: np.ndarray, items: np.ndarray, seed: int = 0) -> None:
        """ID rows drawn like a fresh model's; feature rows back to the raw content, which is exactly
        what a model retrained without the item holds (a fully deleted item's feature row gets no
        gradient: it is out of every graph)."""
        super().reset_rows(users, items, seed)
        if not self.config.train_features or len(items) == 0:
            return
        for m in self.modality_names:
            table = self.features[m]
            rows = torch.as_tensor(np.asarray(items, dtype=np.int64), device=table.device)
            table[rows] = torch.from_numpy(np.asarray(self._raw[m][np.asarray(items)], dtype=np.float32)).to(table)

    def l2_term(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """Not used by :meth:`batch_terms` (MGCN regularises final embeddings); kept for callers that
        want the ego-embedding L2 of the ID tables only."""
        params = dict(self.named_parameters())
        total = params["user_emb"][users].pow(2).sum() + params["item_emb"][pos].pow(2).sum() \
            + params["item_emb"][neg].pow(2).sum()
        return self.config.reg_weight * total / (2 * len(users))


def _names(module: nn.Module, prefix: str) -> list[str]:
    return [n for n, p in module.named_parameters() if n.startswith(prefix) and p.requires_grad]


def _modality_key(mod: Modality) -> str:
    """Cache key of a modality's kNN graph: its bytes, so identical content shares one graph."""
    return array_fingerprint(mod.values)
