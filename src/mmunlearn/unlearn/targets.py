"""Retrain-free targets: where should each deleted pair rank once the model has forgotten it?

Retrain is the judge, never an input. What Retrain does to a deleted pair (u, i) depends on what is
left of u and i in the retain data, so each pair gets a *kind* and a reference that the current model
can produce without any retraining:

- ``pair`` — u and i both keep other training interactions (interaction regime). Under Retrain (u, i)
  is an unseen real interaction, exactly what a held-out **valid** pair is to the current model. The
  reference is the valid pairs' rank percentiles under the current model — the user's own valid pairs
  when the user has at least ``min_user_valid`` of them, else the valid pairs whose item falls in the
  same popularity bucket (quantiles of retained item degree) as the deleted item.
- ``item`` — i lost its whole training history (item regime). Under Retrain i is only ever a *negative*.
  The reference is the percentile, for the same user u, of items that were never a training positive in
  the original data (the model saw them only as negatives — the same treatment). Real 5-core data has
  almost none (Baby: 2), so the reference scales only with a **calibration fold** held out of the graph
  before training (``data/calibration.py``, ``mmunlearn data holdout-items``); with fewer than
  ``min_reference_items`` of them the summary says so. ``item_reference = "least-popular"`` (or a data
  set without any never-positive item) uses the least popular retained items instead.
- ``user`` — u lost its whole training history (user regime). Under Retrain u is an untrained row: the
  reference is the percentile of i for a *fresh* row (a second, independent re-initialisation).

Within a reference group the deleted pairs are matched to the reference by quantiles (the pair with
the k-th smallest current percentile gets the reference's (k+½)/n quantile): the target distribution is
the reference distribution, and each pair moves as little as possible to get there (1-D optimal
transport).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmunlearn.config import option
from mmunlearn.data.requests import AppliedRequest
from mmunlearn.errors import InputError
from mmunlearn.evaluate.forgetting import rank_percentiles
from mmunlearn.models.base import Recommender

KIND_PAIR, KIND_ITEM, KIND_USER = 0, 1, 2
KIND_NAMES = {KIND_PAIR: "pair", KIND_ITEM: "item", KIND_USER: "user"}
ITEM_REFERENCES = ("never-positive", "least-popular", "fold-pairs")


@dataclass(frozen=True)
class TargetConfig:
    item_buckets: int = option(10, "item-popularity buckets for the valid-pair reference (pair kind)", gt=0)
    min_user_valid: int = option(3, "a user with at least this many valid pairs is its own reference", ge=0)
    fallback_item_share: float = option(0.05, "share of least popular items used as the never-positive "
                                              "reference when the data has no never-positive item", gt=0, le=1)
    valid_sample: int = option(8000, "valid pairs scored for the bucket reference (0 = all); the forget "
                                     "users' own valid pairs are always scored", ge=0)
    rank_sample: int = option(1024, "items sampled (once, fixed) to estimate rank percentiles; 0 = all items", ge=0)
    fresh_seed: int = option(104729, "seed offset of the fresh rows that are the deleted users' reference", ge=0)
    item_reference: str = option("never-positive", "item-kind reference: 'never-positive' (items never a "
                                                   "training positive: natural ones plus a held-out "
                                                   "calibration fold, each scored for a deleting user), "
                                                   "'fold-pairs' (the fold's held-out interactions: never-"
                                                   "positive items scored for the users who liked them; "
                                                   "'never-positive' where the data holds none) or "
                                                   "'least-popular' (the old fallback)")
    min_reference_items: int = option(20, "fewer never-positive items than this: the summary flags the item "
                                          "reference as resting on too few items", ge=1)

    def __post_init__(self) -> None:
        if self.item_reference not in ITEM_REFERENCES:
            raise InputError(f"targets.item_reference must be one of {list(ITEM_REFERENCES)}, "
                             f"got {self.item_reference!r}")


@dataclass
class ProxyTarget:
    """Per deleted pair: its kind, its target percentile, and the gate group it belongs to."""

    pairs: np.ndarray  # [n, 2]
    kind: np.ndarray  # [n] int8, KIND_*
    target: np.ndarray  # [n] float, target rank percentile
    group: np.ndarray  # [n] int64: pair index (pair), item id (item), user id (user)
    start: np.ndarray  # [n] float, percentile under the model the targets were built on
    info: dict[str, Any] = field(default_factory=dict)
    candidates: np.ndarray | None = None  # the fixed item sample percentiles are estimated on
    exclude: sp.csr_matrix | None = None  # retained training positives

    def percentiles(self, model: Recommender, mask: np.ndarray | None = None) -> np.ndarray:
        """The deleted pairs' percentiles under ``model``, estimated exactly like the targets."""
        user_emb, item_emb = model.final_embeddings()
        return self.percentiles_from(user_emb, item_emb, mask)

    def percentiles_from(self, user_emb, item_emb, mask: np.ndarray | None = None) -> np.ndarray:
        pairs = self.pairs if mask is None else self.pairs[mask]
        return rank_percentiles(user_emb, item_emb, pairs, self.exclude, candidates=self.candidates)

    def summary(self) -> dict[str, Any]:
        out = {"n": int(len(self.pairs)), "target_mean": float(self.target.mean()) if len(self.target) else None,
               "start_mean": float(self.start.mean()) if len(self.start) else None}
        for k, name in KIND_NAMES.items():
            m = self.kind == k
            if m.any():
                out[name] = {"n": int(m.sum()), "target_mean": float(self.target[m].mean()),
                             "start_mean": float(self.start[m].mean())}
        out.update(self.info)
        return out


def pair_kinds(applied: AppliedRequest) -> np.ndarray:
    pairs = applied.forget_pairs
    kind = np.full(len(pairs), KIND_PAIR, dtype=np.int8)
    item_gone = np.zeros(applied.retain.n_items, dtype=bool)
    item_gone[applied.deleted_items] = True
    user_gone = np.zeros(applied.retain.n_users, dtype=bool)
    user_gone[applied.deleted_users] = True
    kind[item_gone[pairs[:, 1]]] = KIND_ITEM
    kind[user_gone[pairs[:, 0]]] = KIND_USER  # a deleted user's pairs are "fresh user" pairs first
    return kind


def quantile_match(current: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Targets with the reference's distribution, assigned in the order of ``current`` (1-D transport)."""
    n = len(current)
    if n == 0:
        return np.zeros(0)
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    q = (np.arange(n) + 0.5) / n
    values = np.quantile(ref, q) if len(ref) > 1 else np.full(n, ref[0])
    out = np.empty(n)
    out[np.argsort(current, kind="stable")] = values
    return out


def _popularity_buckets(degree: np.ndarray, n_buckets: int) -> np.ndarray:
    edges = np.unique(np.quantile(degree[degree > 0], np.linspace(0, 1, n_buckets + 1)[1:-1])) \
        if (degree > 0).any() else np.zeros(0)
    return np.searchsorted(edges, degree, side="right")


def build_targets(model: Recommender, applied: AppliedRequest, cfg: TargetConfig | None = None,
                  seed: int = 0) -> ProxyTarget:
    """Targets for every deleted pair from the current ``model`` (graph already rebuilt on retain)."""
    cfg = cfg or TargetConfig()
    retain, original = applied.retain, applied.original
    pairs = applied.forget_pairs
    kind = pair_kinds(applied)
    rng = np.random.default_rng([seed, 37])
    cand = None
    if 0 < cfg.rank_sample < retain.n_items:
        cand = np.sort(rng.choice(retain.n_items, size=cfg.rank_sample, replace=False))
    user_emb, item_emb = model.final_embeddings()
    start = rank_percentiles(user_emb, item_emb, pairs, retain.train, candidates=cand)
    target = np.zeros(len(pairs))
    group = np.arange(len(pairs), dtype=np.int64)
    info: dict[str, Any] = {}

    m = kind == KIND_PAIR
    if m.any():
        target[m], info["pair_reference"] = _pair_targets(user_emb, item_emb, applied, pairs[m], start[m], cfg,
                                                          np.random.default_rng([seed, 29]), cand)
    m = kind == KIND_ITEM
    if m.any():
        target[m], info["item_reference"] = _item_targets(user_emb, item_emb, applied, pairs[m], start[m], cfg,
                                                          np.random.default_rng([seed, 31]), cand)
        group[m] = pairs[m, 1]
    m = kind == KIND_USER
    if m.any():
        from mmunlearn.unlearn.base import clone_model

        fresh = clone_model(model)
        fresh.reset_rows(applied.deleted_users, np.zeros(0, dtype=np.int64), seed=seed + cfg.fresh_seed)
        f_user, f_item = fresh.final_embeddings()
        target[m] = rank_percentiles(f_user, f_item, pairs[m], retain.train, candidates=cand)
        group[m] = pairs[m, 0]
        info["user_reference"] = "fresh re-initialised rows (independent draw)"
        del fresh
    del original
    info["rank_sample"] = int(len(cand)) if cand is not None else "all items"
    return ProxyTarget(pairs=pairs, kind=kind, target=target, group=group, start=start, info=info,
                       candidates=cand, exclude=retain.train)


def _pair_targets(user_emb, item_emb, applied: AppliedRequest, pairs: np.ndarray, start: np.ndarray,
                  cfg: TargetConfig, rng: np.random.Generator, cand: np.ndarray | None,
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    retain = applied.retain
    valid = sp.csr_matrix(retain.valid)
    vu = np.repeat(np.arange(retain.n_users, dtype=np.int64), np.diff(valid.indptr))
    vi = valid.indices.astype(np.int64)
    ok = np.ones(len(vu), dtype=bool)
    if len(applied.deleted_users):
        ok &= ~np.isin(vu, applied.deleted_users)
    if len(applied.deleted_items):
        ok &= ~np.isin(vi, applied.deleted_items)
    if cfg.valid_sample and ok.sum() > cfg.valid_sample:  # a sample for the buckets + the forget users' own
        own_user = np.zeros(retain.n_users, dtype=bool)
        own_user[pairs[:, 0]] = True
        sampled = np.zeros(len(vu), dtype=bool)
        sampled[rng.choice(np.flatnonzero(ok), size=cfg.valid_sample, replace=False)] = True
        ok &= sampled | own_user[vu]
    vu, vi = vu[ok], vi[ok]
    vpct = rank_percentiles(user_emb, item_emb, np.stack([vu, vi], 1), retain.train, candidates=cand)
    degree = np.bincount(retain.train.indices, minlength=retain.n_items)
    buckets = _popularity_buckets(degree, cfg.item_buckets)
    n_valid = np.bincount(vu, minlength=retain.n_users)
    target = np.zeros(len(pairs))
    own = n_valid[pairs[:, 0]] >= max(cfg.min_user_valid, 1) if cfg.min_user_valid > 0 else \
        np.zeros(len(pairs), dtype=bool)
    # per user: the user's own valid percentiles
    if own.any():
        order = np.argsort(vu, kind="stable")
        vu_s, vp_s = vu[order], vpct[order]
        bounds = np.searchsorted(vu_s, np.arange(retain.n_users + 1))
        idx_own = np.flatnonzero(own)
        users = pairs[idx_own, 0]
        for u in np.unique(users):
            sel = idx_own[users == u]
            target[sel] = quantile_match(start[sel], vp_s[bounds[u]:bounds[u + 1]])
    # per popularity bucket: valid pairs whose item is as popular as the deleted item
    rest = np.flatnonzero(~own)
    vb = buckets[vi]
    pb = buckets[pairs[rest, 1]]
    for b in np.unique(pb):
        sel = rest[pb == b]
        ref = vpct[vb == b]
        if len(ref) == 0:
            ref = vpct
        target[sel] = quantile_match(start[sel], ref)
    return target, {"valid_pairs": int(len(vpct)), "valid_mean": float(vpct.mean()) if len(vpct) else None,
                    "per_user_pairs": int(own.sum()), "per_bucket_pairs": int(len(rest)),
                    "buckets": int(buckets.max() + 1)}


def negative_only_items(applied: AppliedRequest, cfg: TargetConfig | None = None) -> tuple[np.ndarray, str]:
    """Items the model saw only as negatives (never a training positive in the original data).

    They are what a fully deleted item becomes under Retrain: natural never-positive items plus any
    calibration fold held out of the graph before training. Without any (or with ``item_reference =
    "least-popular"``), the least popular retained items stand in (``cfg.fallback_item_share`` of the
    items); the second value says which was used.
    """
    cfg = cfg or TargetConfig()
    retain, original = applied.retain, applied.original
    orig_deg = np.bincount(original.train.indices, minlength=original.n_items)
    never = np.flatnonzero(orig_deg == 0)
    if len(never) and cfg.item_reference in ("never-positive", "fold-pairs"):  # the item prior's source too
        return never, f"never-positive items of the original train ({len(never)})"
    deg = np.bincount(retain.train.indices, minlength=retain.n_items).astype(float)
    deg[applied.deleted_items] = np.inf
    deg[never] = np.inf
    k = max(1, int(round(cfg.fallback_item_share * retain.n_items)))
    why = "item_reference = least-popular" if len(never) else "no never-positive item in the data"
    return np.argsort(deg, kind="stable")[:k], f"fallback: {k} least popular retained items ({why})"


def item_reference_percentiles(user_emb, item_emb, applied: AppliedRequest, pairs: np.ndarray,
                               reference: np.ndarray, rng: np.random.Generator,
                               cand: np.ndarray | None) -> np.ndarray:
    """Per pair (u, i): the percentile, for the same u, of a random ``reference`` item not among u's positives."""
    retain = applied.retain
    ref_items = reference[rng.integers(0, len(reference), size=len(pairs))]
    pos = retain.train
    from mmunlearn.train.sampling import contains, pair_keys

    clash = contains(pair_keys(pos), pairs[:, 0], ref_items, retain.n_items) if pos.nnz else \
        np.zeros(len(pairs), dtype=bool)
    for _ in range(10):  # a reference item that is one of u's retained positives is not a candidate
        if not clash.any():
            break
        ref_items[clash] = reference[rng.integers(0, len(reference), size=int(clash.sum()))]
        clash = contains(pair_keys(pos), pairs[:, 0], ref_items, retain.n_items)
    return rank_percentiles(user_emb, item_emb, np.stack([pairs[:, 0], ref_items], 1), retain.train,
                            candidates=cand)


def fold_pair_percentiles(user_emb, item_emb, applied: AppliedRequest, cand: np.ndarray | None) -> np.ndarray:
    """Percentiles of the calibration fold's held-out interactions (``InteractionData.held_out``): where the
    model ranks items it saw only as negatives *for the users who liked them* — what Retrain does with a
    deleted item's pairs. Empty when the data holds none (a fold written before they were kept, or none)."""
    held = applied.original.held_out
    if held is None or len(held) == 0:
        return np.zeros(0)
    return rank_percentiles(user_emb, item_emb, held, applied.retain.train, candidates=cand)


def _item_targets(user_emb, item_emb, applied: AppliedRequest, pairs: np.ndarray, start: np.ndarray,
                  cfg: TargetConfig, rng: np.random.Generator, cand: np.ndarray | None,
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    never, how = negative_only_items(applied, cfg)
    fold_ref = fold_pair_percentiles(user_emb, item_emb, applied, cand) if cfg.item_reference == "fold-pairs" \
        else np.zeros(0)
    n_ref_items = len(never)
    if len(fold_ref):
        n_ref_items = len(np.unique(applied.original.held_out[:, 1]))
        how = f"fold-pairs: {len(fold_ref)} held-out interactions of {n_ref_items} fold items, for their own users"
    elif cfg.item_reference == "fold-pairs":
        how += " (fold-pairs asked for, but the data holds no held-out interactions)"
    # quantile-match per deleted item so each item's pairs get the reference's spread, keeping the pairs'
    # own order within the item: against the whole fold distribution, or against as many never-positive
    # items as the item has pairs, each scored for the pair's own user
    ref = fold_ref if len(fold_ref) else item_reference_percentiles(user_emb, item_emb, applied, pairs, never, rng,
                                                                     cand)
    target = np.zeros(len(pairs))
    for it in np.unique(pairs[:, 1]):
        sel = np.flatnonzero(pairs[:, 1] == it)
        target[sel] = quantile_match(start[sel], fold_ref if len(fold_ref) else ref[sel])
    info: dict[str, Any] = {"how": how, "reference_items": int(n_ref_items), "reference_mean": float(ref.mean())}
    if how.startswith("never-positive") and len(never) < cfg.min_reference_items:
        info["warning"] = (f"the item reference rests on {len(never)} item(s) (< {cfg.min_reference_items}); "
                           "hold out a calibration fold before training: mmunlearn data holdout-items")
    return target, info


__all__ = ["TargetConfig", "ProxyTarget", "build_targets", "pair_kinds", "quantile_match", "negative_only_items",
           "item_reference_percentiles", "fold_pair_percentiles", "ITEM_REFERENCES",
           "KIND_PAIR", "KIND_ITEM", "KIND_USER", "KIND_NAMES"]
