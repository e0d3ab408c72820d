"""The audits of one grid group: membership-inference attacks fitted once on the original, CKA and
top-K overlap, each beside the value Retrain and the second-seed Retrain get (computed once per group)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmunlearn.bench.grid.schema import GridConfig

if TYPE_CHECKING:
    from mmunlearn.train.shadow import ShadowCache


def saved_shadows(folder: Path, device: str) -> ShadowCache:
    """A :data:`~mmunlearn.train.shadow.ShadowCache` keeping each shadow as a checkpoint in
    ``folder/shadow-<key>`` beside the group's original, so extending a finished user-regime group with
    another method does not train the attack's shadow (a full training) again. ``load_checkpoint``
    checks the data and content fingerprints on load; the key already names them."""
    def cache(data: Any, key: str, train_fresh: Callable[[], Any]) -> Any:
        from mmunlearn.checkpoint import load_checkpoint, save_checkpoint

        path = folder / f"shadow-{key}"
        if (path / "meta.json").is_file():
            return load_checkpoint(path, data, device=device).model
        model = train_fresh()
        save_checkpoint(path, model, data, model_config=model.config)
        return model

    return cache


class GroupAuditor:
    """The audits of one group: attacks fitted once on the original, reference values computed once."""

    def __init__(self, cfg: GridConfig, ctx: Any, retrain: Any, noise: Any, bar: Any, tag: str,
                 shadow_dir: Path) -> None:
        self.cfg, self.ctx, self.retrain, self.noise, self.bar, self.tag = cfg, ctx, retrain, noise, bar, tag
        self.shadow_dir = shadow_dir
        applied = ctx.applied
        from mmunlearn.evaluate.forgetting import utility_users

        self.users = utility_users(applied)
        keep_items = np.ones(applied.retain.n_items, dtype=bool)
        keep_items[applied.request.items] = False
        self.items = np.flatnonzero(keep_items) if len(applied.request.items) else None
        self._mia: Any = None
        self._user_attack: Any = None
        self._refs: dict[str, Any] = {}

    # attacks, lazily (a resumed group whose remaining cells need none fits none)
    def mia(self) -> Any:
        if self._mia is None:
            from mmunlearn.evaluate.mia import fit_membership_attack

            self.bar.describe(f"{self.tag}: fitting the membership-inference attack")
            applied = self.ctx.applied
            self._mia = fit_membership_attack(self.ctx.original, applied.original,
                                              exclude_pairs=applied.forget_pairs, seed=self.ctx.seed,
                                              max_pairs=self.cfg.mia_max_pairs)
        return self._mia

    def user_attack(self) -> Any:
        if self._user_attack is None:
            from mmunlearn.train.shadow import fit_user_attack

            self.bar.describe(f"{self.tag}: training the user-level attack's shadow model")
            ctx = self.ctx
            self._user_attack = fit_user_attack(
                ctx.applied.original, ctx.model_name, ctx.model_config, ctx.train_config, seed=ctx.seed,
                epochs=self.cfg.user_attack_epochs or None, mf_dim=self.cfg.user_attack_mf_dim,
                k=self.cfg.user_attack_k, cache=saved_shadows(self.shadow_dir, ctx.train_config.device))
        return self._user_attack

    def _mia_of(self, model: Any) -> dict[str, Any]:
        from mmunlearn.evaluate.mia import audit_forget_set

        applied = self.ctx.applied
        return audit_forget_set(self.mia(), model, applied.retain, applied.forget_pairs)

    def _user_of(self, model: Any) -> dict[str, Any]:
        from mmunlearn.evaluate.user_attack import audit_forget_users

        applied = self.ctx.applied
        return audit_forget_users(self.user_attack(), model, applied.retain, applied.request.users,
                                  applied.original.train, seed=self.ctx.seed)

    def _cka(self, model: Any) -> dict[str, float]:
        from mmunlearn.evaluate.similarity import embedding_cka

        return embedding_cka(model, self.retrain, users=self.users, items=self.items)

    def _overlap(self, model: Any) -> float:
        from mmunlearn.evaluate.ranking import split_mask
        from mmunlearn.evaluate.similarity import topk_overlap

        applied = self.ctx.applied
        users = self.users if self.users is not None else np.arange(applied.retain.n_users)
        k = min(self.cfg.overlap_k, applied.retain.n_items - 1)
        return topk_overlap(model, self.retrain, users, split_mask(applied.retain.train), k=k)

    def _ref(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._refs:
            self._refs[key] = fn()
        return self._refs[key]

    def audit(self, model: Any, reference: str | None) -> dict[str, Any]:
        """Audits of ``model`` plus the reference values beside them; ``_flat`` holds the table columns.

        The values of Retrain and of the second-seed Retrain are computed once per group and reused.
        """
        cfg, out, flat = self.cfg, {}, {}
        user_regime = len(self.ctx.applied.request.users) > 0

        def measure(kind: str, fn: Callable[[Any], Any]) -> tuple[Any, Any, Any]:
            rt = self._ref(f"{kind}:retrain", lambda: fn(self.retrain))
            nz = self._ref(f"{kind}:noise", lambda: fn(self.noise))
            own = {"retrain": rt, "retrain-noise": nz}.get(reference or "")
            return (fn(model) if own is None else own), rt, nz

        if cfg.mia:
            res, rt, nz = measure("mia", self._mia_of)
            out["mia"] = {**res, "retrain": _strip_attack(rt), "noise": _strip_attack(nz)}
            flat.update({"mia_member_rate": res["member_rate_forget"], "mia_auc": res["auc_forget_vs_nonmember"],
                         "mia_member_rate_retrain": rt["member_rate_forget"],
                         "mia_auc_retrain": rt["auc_forget_vs_nonmember"],
                         "mia_member_rate_noise": nz["member_rate_forget"],
                         "mia_attack_auc": res["attack"]["heldout_auc"]})
        if cfg.user_attack and user_regime:
            res, rt, nz = measure("user", self._user_of)
            out["user_attack"] = {**res, "retrain": _strip_attack(rt), "noise": _strip_attack(nz)}
            flat.update({"user_member_rate": res["member_rate_forget"],
                         "user_auc": res["auc_retained_vs_forget"],
                         "user_member_rate_retrain": rt["member_rate_forget"],
                         "user_member_rate_noise": nz["member_rate_forget"],
                         "user_attack_auc": res["attack"]["heldout_auc"]})
        if cfg.cka:
            nz = self._ref("cka:noise", lambda: self._cka(self.noise))
            res = {"retrain": {"user": 1.0, "item": 1.0}, "retrain-noise": nz}.get(reference or "") \
                or self._cka(model)
            out["cka"] = {"vs_retrain": res, "noise": nz,
                          "rows": "users outside the request; items outside the request"}
            flat.update({"cka_user": res["user"], "cka_item": res["item"], "cka_user_noise": nz["user"],
                         "cka_item_noise": nz["item"]})
        if cfg.overlap:
            k = min(cfg.overlap_k, self.ctx.applied.retain.n_items - 1)
            nz = self._ref("overlap:noise", lambda: self._overlap(self.noise))
            res = {"retrain": 1.0, "retrain-noise": nz}.get(reference or "")
            res = self._overlap(model) if res is None else res
            out["overlap"] = {"k": k, "jaccard_vs_retrain": res, "noise": nz, "users": "outside the request"}
            flat.update({"jaccard": res, "jaccard_noise": nz})
        out["_flat"] = flat
        return out


def _strip_attack(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k != "attack"}


__all__ = ["GroupAuditor"]
