"""Influence-function machinery shared by IFRU and SCIF: a parameter subspace, Hessian-vector products,
and an inverse-HVP solve (conjugate gradient or LiSSA) — never a dense Hessian.

Why a *subspace*: first-order influence removal needs ``H⁻¹ g`` for the retain loss's Hessian ``H``. A
recommender has ``(n_users + n_items) · d`` embedding parameters; the published recommendation
variants (IFRU, SCIF) restrict the solve to the rows of the users/items a deletion reaches, which makes
its cost follow ``|D_f|`` instead of the catalogue. :class:`Subspace` is that set of variables: chosen
rows of embedding tables plus, optionally, whole shared parameters (projections, gates); it gathers a
flat vector from full-shaped gradients and adds a flat update back into the model.

HVPs: ``"autograd"`` is the exact Pearlmutter product by double backward (``grad`` with
``create_graph``, then the gradient of ``g · v``); ``"fd"`` is the central difference
``(∇L(θ+εv) − ∇L(θ−εv)) / 2ε`` (two gradients, any backbone — MIG-GT's attention uses
``embedding_bag`` with per-sample weights, whose double backward torch does not implement);
``"auto"`` tries autograd once and falls back to ``fd`` when the backbone cannot be differentiated
twice. The solve is on ``(H + λI) x = b`` (damping ``λ`` keeps it positive definite on a non-convex
loss); CG stops at ``tol`` relative residual, at ``max_iter`` or on negative curvature (then it returns
the last iterate and says so in its log).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from mmunlearn.config import option
from mmunlearn.errors import InputError
from mmunlearn.models.base import Recommender

Loss = Callable[[], torch.Tensor]


@dataclass
class Block:
    """One piece of the subspace: ``rows`` of parameter ``name`` (``None`` = the whole parameter)."""

    name: str
    param: torch.nn.Parameter
    rows: torch.Tensor | None

    @property
    def size(self) -> int:
        if self.rows is None:
            return self.param.numel()
        return int(len(self.rows)) * int(np.prod(self.param.shape[1:]))

    def take(self, full: torch.Tensor) -> torch.Tensor:
        return (full if self.rows is None else full[self.rows]).reshape(-1)


class Subspace:
    """The variables of an influence solve: rows of embedding tables and whole shared parameters."""

    def __init__(self, model: torch.nn.Module, rows: dict[str, np.ndarray], shared: list[str]) -> None:
        params = dict(model.named_parameters())
        self.blocks: list[Block] = []
        for name, idx in rows.items():
            if len(idx):
                t = torch.as_tensor(np.unique(idx), dtype=torch.long, device=params[name].device)
                self.blocks.append(Block(name, params[name], t))
        self.blocks += [Block(n, params[n], None) for n in shared if params[n].requires_grad]
        self.params = [b.param for b in self.blocks]

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blocks)

    def describe(self) -> dict[str, int]:
        return {b.name: (int(len(b.rows)) if b.rows is not None else -1) for b in self.blocks}

    def gather(self, grads: list[torch.Tensor | None]) -> torch.Tensor:
        parts = [b.take(torch.zeros_like(b.param) if g is None else g) for b, g in zip(self.blocks, grads, strict=True)]
        return torch.cat(parts) if parts else torch.zeros(0)

    def tangents(self, vec: torch.Tensor) -> list[torch.Tensor]:
        """Full-shaped tensors holding ``vec`` at the subspace's entries, zeros elsewhere."""
        out, start = [], 0
        for b in self.blocks:
            piece = vec[start:start + b.size]
            start += b.size
            if b.rows is None:
                out.append(piece.view_as(b.param))
            else:
                full = torch.zeros_like(b.param)
                full[b.rows] = piece.view(len(b.rows), *b.param.shape[1:])
                out.append(full)
        return out

    @torch.no_grad()
    def add_(self, vec: torch.Tensor, alpha: float = 1.0) -> None:
        """``θ_S += alpha · vec`` in place."""
        start = 0
        for b in self.blocks:
            piece = vec[start:start + b.size].to(b.param.dtype) * alpha
            start += b.size
            if b.rows is None:
                b.param.add_(piece.view_as(b.param))
            else:
                b.param.index_add_(0, b.rows, piece.view(len(b.rows), *b.param.shape[1:]))

    @torch.no_grad()
    def values(self) -> torch.Tensor:
        return self.gather([b.param.detach() for b in self.blocks])


def flat_grad(loss: Loss, space: Subspace) -> torch.Tensor:
    """``∇_S L`` (detached) on the subspace."""
    grads = torch.autograd.grad(loss(), space.params, allow_unused=True)
    return space.gather(list(grads))


class HVP:
    """``v ↦ H_S v`` for a loss on a subspace, by double backward or finite differences (see module doc)."""

    def __init__(self, loss: Loss, space: Subspace, mode: str = "auto", fd_eps: float = 1e-3) -> None:
        if mode not in ("auto", "autograd", "fd"):
            raise ValueError(f"unknown HVP mode {mode!r}")
        self.loss, self.space, self.mode, self.fd_eps = loss, space, mode, fd_eps
        self.calls = 0

    def __call__(self, vec: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.mode in ("auto", "autograd"):
            try:
                out = self._autograd(vec)
                if self.mode == "auto":
                    self.mode = "autograd"
                return out
            except (RuntimeError, NotImplementedError):
                if self.mode == "autograd":
                    raise
                self.mode = "fd"  # this backbone cannot be differentiated twice: difference of gradients
        return self._fd(vec)

    def _autograd(self, vec: torch.Tensor) -> torch.Tensor:
        params = self.space.params
        grads = torch.autograd.grad(self.loss(), params, create_graph=True, allow_unused=True)
        dot = sum((g * t).sum() for g, t in zip(grads, self.space.tangents(vec), strict=True) if g is not None)
        if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
            return torch.zeros_like(vec)
        hv = torch.autograd.grad(dot, params, allow_unused=True)
        return self.space.gather(list(hv))

    def _fd(self, vec: torch.Tensor) -> torch.Tensor:
        norm = float(vec.norm())
        if norm == 0.0:
            return torch.zeros_like(vec)
        scale = float(self.space.values().norm()) / math.sqrt(max(1, self.space.size))  # rms of θ_S
        eps = self.fd_eps * max(scale, 1e-3) * math.sqrt(max(1, self.space.size)) / norm
        self.space.add_(vec, eps)
        try:
            g_plus = flat_grad(self.loss, self.space)
            self.space.add_(vec, -2 * eps)
            g_minus = flat_grad(self.loss, self.space)
        finally:
            self.space.add_(vec, eps)
        return (g_plus - g_minus) / (2 * eps)


class GaussNewton:
    """``v ↦ G_S v``, the generalised Gauss–Newton matrix of the mean BPR loss on fixed triples.

    The exact Hessian of BPR on a dot-product model is indefinite (``u·i`` is a saddle in
    ``(u, i)``), so CG on it stops at the first negative-curvature direction. The GGN keeps only the
    curvature of the loss in the model's output, ``G = Jᵀ diag(σ(x)(1 − σ(x)) / n) J`` with ``x`` the
    pairs' margins ``s⁺ − s⁻`` and ``J = ∂x/∂θ_S``: positive semi-definite, and equal to the Hessian
    wherever the margins are locally linear in θ. ``Jv`` comes from the double-vjp trick (autograd) or a
    central difference of two forward passes (``fd``: any backbone); ``Jᵀ(·)`` is one backward.
    The backbone's aux term (L2, contrastive) is left out of the curvature; damping stands in for it.
    """

    def __init__(self, model: Recommender, users: np.ndarray, pos: np.ndarray, neg: np.ndarray, space: Subspace,
                 mode: str = "auto", fd_eps: float = 1e-3, chunk: int = 2048) -> None:
        if mode not in ("auto", "autograd", "fd"):
            raise ValueError(f"unknown HVP mode {mode!r}")
        self.model, self.space, self.mode, self.fd_eps, self.chunk = model, space, mode, fd_eps, chunk
        self.triples = (users, pos, neg)
        self.device = next(model.parameters()).device
        self.calls = 0

    def _margins(self, sl: slice) -> torch.Tensor:
        from mmunlearn.unlearn.reverse import joint_terms

        u, p, n = (t[sl] for t in self.triples)
        (terms,) = joint_terms(self.model, (u, p, n), device=self.device)
        return terms.pos - terms.neg

    def _jv_autograd(self, x: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        dummy = torch.zeros_like(x, requires_grad=True)
        grads = torch.autograd.grad(x, self.space.params, grad_outputs=dummy, create_graph=True,
                                    retain_graph=True, allow_unused=True)
        dot = sum((g * t).sum() for g, t in zip(grads, self.space.tangents(vec), strict=True) if g is not None)
        if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
            return torch.zeros_like(x)
        (jv,) = torch.autograd.grad(dot, dummy, allow_unused=True)
        return torch.zeros_like(x) if jv is None else jv

    @torch.no_grad()
    def _jv_fd(self, sl: slice, vec: torch.Tensor) -> torch.Tensor:
        norm = float(vec.norm())
        eps = self.fd_eps * max(float(self.space.values().norm()), 1e-3) / max(norm, 1e-30)
        self.space.add_(vec, eps)
        try:
            plus = self._margins(sl)
            self.space.add_(vec, -2 * eps)
            minus = self._margins(sl)
        finally:
            self.space.add_(vec, eps)
        return (plus - minus) / (2 * eps)

    def __call__(self, vec: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        n = len(self.triples[0])
        out = torch.zeros_like(vec)
        for s in range(0, n, self.chunk):
            sl = slice(s, s + self.chunk)
            jv = None
            if self.mode in ("auto", "autograd"):
                x = self._margins(sl)
                try:
                    jv = self._jv_autograd(x, vec)
                    self.mode = "autograd"
                except (RuntimeError, NotImplementedError):
                    if self.mode == "autograd":
                        raise
                    self.mode = "fd"
            if jv is None:  # the perturbed forwards come first: they edit the parameters in place
                jv = self._jv_fd(sl, vec)
                x = self._margins(sl)
            sig = torch.sigmoid(x.detach())
            weight = sig * (1 - sig) / n
            grads = torch.autograd.grad(x, self.space.params, grad_outputs=weight * jv, allow_unused=True)
            out = out + self.space.gather(list(grads))
        return out


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, damping: float = 0.0,
                       max_iter: int = 50, tol: float = 1e-4) -> tuple[torch.Tensor, dict[str, Any]]:
    """Solve ``(A + damping·I) x = b`` for a symmetric ``A`` given as ``matvec``; ``x₀ = 0``.

    Stops at relative residual ``tol``, after ``max_iter`` products, or when a direction has
    non-positive curvature (``A`` is not positive definite there: more damping is needed); the log says
    which.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = float(r @ r)
    b_norm = math.sqrt(float(b @ b))
    log: dict[str, Any] = {"iterations": 0, "stop": "max_iter", "residual": 1.0}
    if b_norm == 0.0:
        log.update(stop="zero_rhs", residual=0.0)
        return x, log
    for it in range(max_iter):
        ap = matvec(p) + damping * p
        curv = float(p @ ap)
        if curv <= 0.0:
            log.update(stop="negative_curvature")
            break
        alpha = rs / curv
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = float(r @ r)
        log.update(iterations=it + 1, residual=math.sqrt(rs_new) / b_norm)
        if math.sqrt(rs_new) <= tol * b_norm:
            log["stop"] = "converged"
            break
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x, log


def lissa(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, damping: float = 0.0,
          scale: float = 10.0, max_iter: int = 100, tol: float = 1e-4) -> tuple[torch.Tensor, dict[str, Any]]:
    """LiSSA (Agarwal et al. 2017): ``x ← b + (I − (A + λI)/s) x``; returns ``x / s`` ≈ ``(A + λI)⁻¹ b``.

    Converges when ``s`` exceeds the largest eigenvalue of ``A + λI``; cheaper per step than CG (no
    dot products) but usually needs more steps. Stops when the update is below ``tol`` (relative).
    """
    x = b.clone()
    log: dict[str, Any] = {"iterations": 0, "stop": "max_iter"}
    for it in range(max_iter):
        new = b + x - (matvec(x) + damping * x) / scale
        delta = float((new - x).norm()) / max(float(new.norm()), 1e-30)
        x = new
        log["iterations"] = it + 1
        if not math.isfinite(delta):
            log["stop"] = "diverged"
            break
        if delta <= tol:
            log["stop"] = "converged"
            break
    return x / scale, log


def solve(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, solver: str, damping: float,
          max_iter: int, tol: float, lissa_scale: float = 10.0) -> tuple[torch.Tensor, dict[str, Any]]:
    if solver == "cg":
        return conjugate_gradient(matvec, b, damping=damping, max_iter=max_iter, tol=tol)
    if solver == "lissa":
        return lissa(matvec, b, damping=damping, scale=lissa_scale, max_iter=max_iter, tol=tol)
    raise ValueError(f"unknown solver {solver!r}")


# ----- neighbourhoods and losses on fixed triples ---------------------------------------------------------
def k_hop_nodes(train: sp.csr_matrix, users: np.ndarray, items: np.ndarray, hops: int, max_nodes: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Users and items within ``hops`` bipartite hops of the seeds (hop 0 = the seeds themselves).

    Breadth first; when the next hop would pass ``max_nodes`` (users + items together), a seeded random
    part of that hop is kept — the nearest nodes always come first, so the budget trims the far end.
    """
    csc = sp.csc_matrix(train)
    seen_u = np.zeros(train.shape[0], dtype=bool)
    seen_i = np.zeros(train.shape[1], dtype=bool)
    seen_u[users], seen_i[items] = True, True
    front_u, front_i = np.unique(users), np.unique(items)
    for _ in range(hops):
        nxt_i = np.unique(train[front_u].indices) if len(front_u) else np.zeros(0, dtype=np.int64)
        nxt_u = np.unique(csc[:, front_i].indices) if len(front_i) else np.zeros(0, dtype=np.int64)
        nxt_i, nxt_u = nxt_i[~seen_i[nxt_i]], nxt_u[~seen_u[nxt_u]]
        room = max_nodes - int(seen_u.sum() + seen_i.sum())
        if room <= 0:
            break
        if len(nxt_i) + len(nxt_u) > room:
            pick = rng.permutation(len(nxt_i) + len(nxt_u))[:room]
            nxt_i, nxt_u = nxt_i[pick[pick < len(nxt_i)]], nxt_u[pick[pick >= len(nxt_i)] - len(nxt_i)]
        seen_i[nxt_i], seen_u[nxt_u] = True, True
        front_u, front_i = nxt_u, nxt_i
        if len(front_u) + len(front_i) == 0:
            break
    return np.flatnonzero(seen_u), np.flatnonzero(seen_i)


def pairs_touching(train: sp.csr_matrix, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``[n, 2]`` training pairs whose user is in ``users`` or whose item is in ``items``."""
    coo = sp.coo_matrix(train)
    mu = np.zeros(train.shape[0], dtype=bool)
    mi = np.zeros(train.shape[1], dtype=bool)
    mu[users], mi[items] = True, True
    sel = mu[coo.row] | mi[coo.col]
    return np.stack([coo.row[sel], coo.col[sel]], axis=1).astype(np.int64)


def triple_loss(model: Recommender, users: np.ndarray, pos: np.ndarray, neg: np.ndarray, *,
                chunk: int = 2048) -> Loss:
    """A deterministic BPR loss (mean over fixed triples, plus the backbone's aux term) as a closure.

    Influence needs the *same* function at every product, so negatives are drawn once by the caller;
    long lists are scored in chunks (one propagation each) and averaged with their sizes as weights.
    """
    from mmunlearn.unlearn.reverse import forward_bpr, joint_terms

    n = len(users)
    device = next(model.parameters()).device

    def loss() -> torch.Tensor:
        total = None
        for s in range(0, n, chunk):
            sl = slice(s, s + chunk)
            (terms,) = joint_terms(model, (users[sl], pos[sl], neg[sl]), device=device)
            part = (forward_bpr(terms) + terms.aux) * (len(users[sl]) / n)
            total = part if total is None else total + part
        return total if total is not None else torch.zeros((), device=device)

    return loss


# ----- the first-order removal step shared by IFRU and SCIF -------------------------------------------------
@dataclass(frozen=True)
class InfluenceConfig:
    """Solve and budget settings common to the influence methods (each method adds its selection)."""

    retain_pairs: int = option(4096, "budget: retain pairs of the neighbourhood sampled for the Hessian "
                                     "(and the spill-over gradient)", gt=0)
    solver: str = option("cg", "inverse-HVP solver: cg (conjugate gradient) or lissa", choices=("cg", "lissa"))
    curvature: str = option("gauss-newton", "curvature matrix: gauss-newton (PSD; BPR's exact Hessian is "
                                            "indefinite) or hessian (exact Hessian-vector products)")
    damping: float = option(0.1, "λ in (H + λI) x = b, relative to H's Rayleigh quotient along b: keeps "
                                 "the solve positive definite", gt=0)
    max_iter: int = option(30, "budget: Hessian-vector products of the solve", gt=0)
    tol: float = option(1e-3, "relative residual at which CG stops", gt=0)
    hvp: str = option("auto", "Hessian-vector products: autograd (double backward), fd (difference of "
                              "gradients) or auto (autograd, fd where the backbone is not twice differentiable)")
    lissa_scale: float = option(10.0, "LiSSA's scale s relative to the Rayleigh quotient (s must exceed the "
                                      "largest eigenvalue of H + λI)", gt=0)
    scale: float = option(1.0, "multiplier on the influence step (1 = the first-order removal)", ge=0)
    max_relative_step: float = option(0.03, "trust region: the step's norm is capped at this fraction of "
                                            "the updated parameters' norm (BPR's influence step is far longer "
                                            "than the parameters: this cap decides its size)", gt=0)
    reset_deleted: bool = option(True, "re-initialise rows of fully deleted users/items (no retain pair "
                                       "constrains them, so their influence step is undefined)")


def influence_update(ctx: Any, cfg: InfluenceConfig, users: np.ndarray, items: np.ndarray, *, shared: bool,
                     spillover: bool, salt: int) -> tuple[Recommender, dict[str, Any]]:
    """``θ = θ₀ + H_S⁻¹ (g_f + g_s)`` on the rows of ``users``/``items`` (+ shared parameters).

    Derivation (first-order influence removal). ``θ₀`` minimises ``R + F`` (retain and forget losses,
    *sums* over pairs), so ``∇R_old(θ₀) = −∇F_old(θ₀)``. One Newton step on the retain loss over the
    *rebuilt* graph, ``θ₀ − H⁻¹ ∇R_new(θ₀)``, is therefore ``θ₀ + H⁻¹ [∇F_old − (∇R_new − ∇R_old)]``:
    the direct influence of the deleted pairs ``g_f = ∇F_old`` plus the graph spill-over
    ``g_s = −(∇R_new − ∇R_old)``, which is non-zero only for retain pairs whose embeddings the rebuild
    changes — those that touch the neighbourhood (IFRU). In means: with ``F̄`` the mean over the
    ``|D_f|`` deleted pairs and ``H̄`` the Hessian of the mean retain loss, the step is
    ``(|D_f| / |D_r|) · H̄⁻¹ ∇F̄`` — the standard ``|D_f|/|D_r|`` scaling. Here ``D_r`` is the set of
    retain pairs that touch the updated rows (``N_r``): the rest of the retain data reaches those rows
    only through propagation, and the solve is restricted to them, so ``H_S ≈ |N_r| · H̄_{N_r}``
    (estimated on a seeded sample of at most ``retain_pairs`` of them) and we solve
    ``(H_S + λI) x = g_f + g_s``. For shared parameters this under-counts their retain curvature (all
    of ``D_r`` reaches them); the trust region bounds the effect.

    Damping is *relative*: ``λ = damping · |bᵀH_S b / bᵀb|`` (the Rayleigh quotient of ``H_S`` along
    the right-hand side, one extra product), so one default fits backbones whose curvature differs by
    orders of magnitude; LiSSA's scale is relative to the same quotient.
    """
    from mmunlearn.train.sampling import pair_keys, sample_negatives
    from mmunlearn.unlearn.base import clone_model, seeded_rng, start_from_original

    model, log = start_from_original(ctx)
    old = clone_model(ctx.original)  # the original graph (shared, read-only) at θ₀, for ∇F_old / ∇R_old
    model.eval()
    old.eval()
    applied = ctx.applied
    rng = seeded_rng(ctx, salt)
    keep_u = np.setdiff1d(users, applied.deleted_users)
    keep_i = np.setdiff1d(items, applied.deleted_items)
    tables = model.embedding_tables()
    rows = {name: (keep_u if kind == "user" else keep_i) for name, kind in tables.items()}
    shared_names = ([n for n, p in model.named_parameters() if p.requires_grad and n not in tables]
                    if shared else [])
    space, space_old = Subspace(model, rows, shared_names), Subspace(old, rows, shared_names)
    log.update({"updated_users": int(len(keep_u)), "updated_items": int(len(keep_i)),
                "shared_parameters": len(shared_names), "variables": space.size})
    if space.size == 0 or applied.forget.nnz == 0:
        log["skipped"] = "nothing to update"
        return _finish(model, ctx, cfg, log)

    # fixed triples: the same function at every product
    f_pairs = applied.forget_pairs
    f_neg = sample_negatives(f_pairs[:, 0], applied.original.train, rng, keys=pair_keys(applied.original.train))
    n_r_all = pairs_touching(applied.retain.train, keep_u, keep_i)
    n_r = len(n_r_all)
    if n_r == 0:
        log["skipped"] = "no retain pair touches the updated rows"
        return _finish(model, ctx, cfg, log)
    pick = rng.choice(n_r, size=min(cfg.retain_pairs, n_r), replace=False)
    r_pairs = n_r_all[np.sort(pick)]
    r_neg = sample_negatives(r_pairs[:, 0], applied.retain.train, rng, keys=pair_keys(applied.retain.train))

    with torch.enable_grad():
        forget_old = triple_loss(old, f_pairs[:, 0], f_pairs[:, 1], f_neg)
        retain_new = triple_loss(model, r_pairs[:, 0], r_pairs[:, 1], r_neg)
        g = flat_grad(forget_old, space_old) * len(f_pairs)
        if spillover:
            retain_old = triple_loss(old, r_pairs[:, 0], r_pairs[:, 1], r_neg)
            spill = -(flat_grad(retain_new, space) - flat_grad(retain_old, space_old)) * n_r
            log["spillover_norm"] = float(spill.norm())
            g = g + spill
        b = g
        if cfg.curvature == "gauss-newton":
            hvp: HVP | GaussNewton = GaussNewton(model, r_pairs[:, 0], r_pairs[:, 1], r_neg, space, mode=cfg.hvp)
        elif cfg.curvature == "hessian":
            hvp = HVP(retain_new, space, mode=cfg.hvp)
        else:
            raise InputError(f"curvature must be 'gauss-newton' or 'hessian', got {cfg.curvature!r}")
        if cfg.solver not in ("cg", "lissa"):
            raise InputError(f"solver must be 'cg' or 'lissa', got {cfg.solver!r}")

        def matvec(v: torch.Tensor) -> torch.Tensor:  # H_S ≈ |N_r| · H̄_{N_r} (sum form, see above)
            return hvp(v) * n_r

        b_sq = float(b @ b)
        curvature = float(b @ matvec(b)) / b_sq if b_sq > 0 else 0.0  # Rayleigh quotient along b
        damping = cfg.damping * abs(curvature) if curvature != 0.0 else cfg.damping
        step, solve_log = solve(matvec, b, solver=cfg.solver, damping=damping, max_iter=cfg.max_iter,
                                tol=cfg.tol, lissa_scale=cfg.lissa_scale * max(abs(curvature), 1e-12))
        log.update({"rayleigh_curvature": curvature, "damping_abs": damping})
    step = step * cfg.scale
    if not bool(torch.isfinite(step).all()):
        log["skipped"] = f"solve diverged ({solve_log.get('stop')}); parameters left at θ₀"
        step = torch.zeros_like(step)
    norm, cap = float(step.norm()), cfg.max_relative_step * float(space.values().norm())
    clipped = norm > cap > 0
    if clipped:
        step = step * (cap / norm)
    space.add_(step)
    log.update({"forget_pairs": int(len(f_pairs)), "neighbourhood_retain_pairs": int(n_r),
                "hessian_pairs": int(len(r_pairs)), "rhs_norm": float(b.norm()), "step_norm": min(norm, cap),
                "clipped": bool(clipped), "hvp": hvp.mode, "hvp_calls": hvp.calls,
                "solve": {k: v for k, v in solve_log.items()}})
    return _finish(model, ctx, cfg, log)


def _finish(model: Recommender, ctx: Any, cfg: InfluenceConfig, log: dict[str, Any]) -> tuple[Recommender, dict]:
    applied = ctx.applied
    if cfg.reset_deleted:
        model.reset_rows(applied.deleted_users, applied.deleted_items, seed=ctx.seed + 7919)
        log["reset_users"] = int(len(applied.deleted_users))
        log["reset_items"] = int(len(applied.deleted_items))
    return model, log


__all__ = ["Subspace", "Block", "HVP", "GaussNewton", "flat_grad", "conjugate_gradient", "lissa", "solve", "k_hop_nodes",
           "pairs_touching", "triple_loss", "InfluenceConfig", "influence_update"]


#: what --select searches for ifru and scif: the influence step of a BPR model is far longer than the
#: parameters (the loss is flat in the embeddings; docs/BENCHMARKS.md §7), so its trust region decides
INFLUENCE_SEARCH = {"max_relative_step": [0.01, 0.03, 0.1], "damping": [0.1, 1.0]}
