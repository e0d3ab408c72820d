"""Interaction-level membership inference: does a model still "remember" the deleted pairs?

The audit (SPEC §5, audit 1). An attacker sees a model's scores and public interaction counts and
wants to tell, for a real interaction ``(u, i)``, whether the model was trained on it. We train such
an attack on the **original** model and then point it at an unlearned model's deleted pairs: after
good unlearning they should be classified *member* about as often as under Retrain, where they are
genuinely unseen. The figure is reported beside Retrain's (and the attack's own held-out AUC, which
says how strong the attacker is at all).

Why these choices:

- **Non-members are valid/test pairs**, real interactions the model never trained on. Random
  non-interacted pairs would be trivially separable by "is this a plausible item at all", which says
  nothing about memorisation; a deleted pair under Retrain is exactly an unseen *real* interaction,
  so that is the contrast the attack must learn.
- **Features describe the pair relative to everything else the model knows** (see
  :data:`FEATURE_NAMES`): the raw score, its rank percentile among the user's candidates, the
  score's z-score within the user's row and within the item's column, its gap to the user's top-20,
  plus context (item popularity, user activity) so the classifier can condition on how much a
  model *can* memorise about a pair. Context counts **exclude the pair itself**, otherwise "the item's
  degree counts this very interaction" would leak membership from the data rather than the model.
- **Rank percentile is masked with the model's own training data.** Candidates are all items minus
  the user's *other* training positives of the data passed in. For an unlearned model that is the
  *retain* data: retained positives are masked, deleted pairs are not — the same view Retrain has.
- **Honest training**: the deleted pairs can be excluded from the attack's members
  (``exclude_pairs``), and the attack's users are split three ways — fit / select (model choice and
  threshold) / report (held-out AUC) — so its reported strength is measured on users it never saw.
- **Classifier**: standardised logistic regression and histogram gradient boosting are both fitted;
  the one with the higher AUC on the *select* users is kept (``candidate_aucs`` records both).
  Boosting usually wins because membership shows up non-linearly (a member's advantage is large for
  rare items and active users, small for popular items), but the choice is measured, not assumed.
- All features come from one vectorised pass per user block (``B × n_items`` scores, sorted once,
  ``searchsorted`` for every pair of the block), so feature cost is ``O(n_users · n_items · log)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmunlearn.data.interactions import InteractionData
from mmunlearn.data.pairs import csr_pairs, in_matrix

if TYPE_CHECKING:  # evaluate/ sits below models/ and train/ in the layering: annotations only
    from mmunlearn.models.base import Recommender

Pairs = tuple[np.ndarray, np.ndarray]
PairsLike = Pairs | np.ndarray | sp.spmatrix

FEATURE_NAMES: tuple[str, ...] = (
    "score",            # s(u, i)
    "rank_percentile",  # share of the user's candidates scoring strictly higher (0 = top)
    "log_rank",         # log(1 + number of candidates scoring strictly higher)
    "user_z",           # (s − mean_j s(u, j)) / std_j s(u, j)   (within the user's row)
    "item_z",           # (s − mean_v s(v, i)) / std_v s(v, i)   (within the item's column)
    "gap_top20",        # s − mean of the user's top-20 other candidates
    "log_item_degree",  # log(1 + training degree of i, this pair excluded)
    "log_user_activity",  # log(1 + training positives of u, this pair excluded)
)
_TOP = 20


def as_pairs(pairs: PairsLike) -> Pairs:
    """``(users, items)`` int64 arrays from a ``(users, items)`` tuple, an ``[n, 2]`` array or a CSR matrix."""
    if sp.issparse(pairs):
        return csr_pairs(sp.csr_matrix(pairs))
    if isinstance(pairs, tuple):
        users, items = (np.asarray(p, dtype=np.int64).ravel() for p in pairs)
    else:
        arr = np.asarray(pairs, dtype=np.int64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"pairs must be (users, items), an [n, 2] array or a CSR matrix; got shape {arr.shape}")
        users, items = arr[:, 0], arr[:, 1]
    if users.shape != items.shape:
        raise ValueError(f"users and items differ in length: {users.shape} vs {items.shape}")
    return users, items


def _embeddings(model: Recommender | tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(model, tuple):
        return model
    return model.final_embeddings()


@torch.no_grad()
def pair_features(model: Recommender | tuple[torch.Tensor, torch.Tensor], train: sp.csr_matrix,
                  pairs: PairsLike, *, user_block: int = 1024) -> np.ndarray:
    """``[n_pairs, len(FEATURE_NAMES)]`` float64 features of ``pairs`` under ``model``.

    ``train`` is the training matrix the model is supposed to have been trained on (the retain data
    for an unlearned model): it defines the candidates for ranking (the user's *other* positives are
    masked) and the context counts (the pair itself excluded). ``model`` may also be a precomputed
    ``(user_emb, item_emb)`` tuple. Rows follow the order of ``pairs``.
    """
    users, items = as_pairs(pairs)
    n_pairs = len(users)
    out = np.zeros((n_pairs, len(FEATURE_NAMES)), dtype=np.float64)
    if n_pairs == 0:
        return out
    user_emb, item_emb = _embeddings(model)
    device = user_emb.device
    train = sp.csr_matrix(train)
    n_items = train.shape[1]
    if n_items < 2:
        raise ValueError("ranking features need at least two items")
    if users.max() >= train.shape[0] or items.max() >= n_items or users.min() < 0 or items.min() < 0:
        raise ValueError("pairs reference ids outside the data's id space")

    in_train = in_matrix(train, users, items)
    row_nnz = np.diff(train.indptr)
    item_deg = np.bincount(train.indices, minlength=n_items)
    n_cand = n_items - row_nnz[users] + in_train  # all items minus the user's *other* positives
    top = min(_TOP, n_items - 1)

    # Column statistics of the score matrix from d×d moments: mean_v s(v,i) = ū·e_i and
    # var_v s(v,i) = e_iᵀ Σ_U e_i, so the item-side z-score needs no n_users × n_items pass.
    u64 = user_emb.double()
    i64 = item_emb.double()
    u_mean = u64.mean(0)
    centred = u64 - u_mean
    cov = centred.T @ centred / max(u64.shape[0], 1)
    col_mean = (i64 @ u_mean).cpu().numpy()
    col_std = torch.sqrt(torch.clamp(((i64 @ cov) * i64).sum(1), min=0.0)).cpu().numpy()

    order = np.argsort(users, kind="stable")
    su, si = users[order], items[order]
    uniq, first, counts = np.unique(su, return_index=True, return_counts=True)
    for b0 in range(0, len(uniq), user_block):
        b1 = min(b0 + user_block, len(uniq))
        blk_users, blk_counts = uniq[b0:b1], counts[b0:b1]
        lo, hi = first[b0], (first[b1] if b1 < len(uniq) else n_pairs)
        p_rows = np.repeat(np.arange(len(blk_users)), blk_counts)
        p_items = si[lo:hi]
        p_pos = np.arange(hi - lo) - np.repeat(first[b0:b1] - lo, blk_counts)  # index within its user
        rows_t = torch.as_tensor(p_rows, device=device)
        items_t = torch.as_tensor(p_items, device=device)

        scores = user_emb[torch.as_tensor(blk_users, device=device)] @ item_emb.T  # [B, n_items]
        s = scores[rows_t, items_t].clone()
        row_mean = scores.double().mean(1)
        row_std = scores.double().std(1, unbiased=False)
        sub = train[blk_users]
        if sub.nnz:
            m_rows = torch.as_tensor(np.repeat(np.arange(len(blk_users)), np.diff(sub.indptr)), device=device)
            m_cols = torch.as_tensor(sub.indices.astype(np.int64), device=device)
            scores[m_rows, m_cols] = -torch.inf
        # strictly higher = n_items − #(≤ s); masked items are −inf and always ≤ s
        sorted_scores = torch.sort(scores, dim=1).values
        width = int(blk_counts.max())
        values = torch.full((len(blk_users), width), torch.inf, dtype=scores.dtype, device=device)
        values[rows_t, torch.as_tensor(p_pos, device=device)] = s
        n_le = torch.searchsorted(sorted_scores, values, right=True)
        n_higher = (n_items - n_le[rows_t, torch.as_tensor(p_pos, device=device)]).cpu().numpy()

        # top-20 mean of the *other* candidates: take the top-21 and drop the pair's own item if present,
        # else the 21st — so members (own item masked) and non-members are treated alike
        tv, ti = torch.topk(scores, top + 1, dim=1)
        pv, pi = tv[rows_t].double(), ti[rows_t]
        others = torch.isfinite(pv) & (pi != items_t[:, None])
        keep = others & (torch.cumsum(others.long(), dim=1) <= top)
        kept = torch.where(keep, pv, torch.zeros_like(pv)).sum(1)
        top_mean = (kept / keep.sum(1).clamp(min=1)).cpu().numpy()

        idx = order[lo:hi]
        s_np = s.double().cpu().numpy()
        nc = n_cand[idx]
        out[idx, 0] = s_np
        out[idx, 1] = n_higher / np.maximum(nc - 1, 1)
        out[idx, 2] = np.log1p(n_higher)
        rm = row_mean.cpu().numpy()[p_rows]
        rs = row_std.cpu().numpy()[p_rows]
        out[idx, 3] = (s_np - rm) / np.maximum(rs, 1e-12)
        out[idx, 4] = (s_np - col_mean[p_items]) / np.maximum(col_std[p_items], 1e-12)
        out[idx, 5] = s_np - top_mean
    out[:, 6] = np.log1p(item_deg[items] - in_train)
    out[:, 7] = np.log1p(row_nnz[users] - in_train)
    return out


def _subsample(pairs: Pairs, max_n: int, rng: np.random.Generator) -> Pairs:
    if len(pairs[0]) <= max_n:
        return pairs
    keep = np.sort(rng.choice(len(pairs[0]), size=max_n, replace=False))
    return pairs[0][keep], pairs[1][keep]


def _best_threshold(y: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
    """Threshold maximising balanced accuracy (Youden's J) and that balanced accuracy."""
    cand = np.unique(prob)
    pos, neg = y == 1, y == 0
    # vectorised over candidate thresholds via sorted cumulative counts
    order = np.argsort(prob)
    p_sorted, y_sorted = prob[order], y[order]
    idx = np.searchsorted(p_sorted, cand, side="left")  # predictions ≥ cand are "member"
    neg_below = np.concatenate([[0], np.cumsum(y_sorted == 0)])[idx]
    pos_below = np.concatenate([[0], np.cumsum(y_sorted == 1)])[idx]
    tpr = 1.0 - pos_below / max(pos.sum(), 1)
    tnr = neg_below / max(neg.sum(), 1)
    bal = (tpr + tnr) / 2
    best = int(np.argmax(bal))
    return float(cand[best]), float(bal[best])



def separation_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """ROC AUC of ``positives`` scored above ``negatives``; NaN when either side is empty."""
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    return float(roc_auc_score(y, np.r_[positives, negatives]))


def rate_at(probabilities: np.ndarray, threshold: float) -> float:
    """Share of probabilities at or above ``threshold`` (the member rate); NaN when there are none."""
    return float(np.mean(probabilities >= threshold)) if len(probabilities) else float("nan")

@dataclass
class MembershipAttack:
    """A fitted interaction-level attack plus what it measured about itself.

    ``threshold`` (on the member probability) maximises balanced accuracy on the *select* users;
    ``heldout_auc`` / ``heldout_balanced_accuracy`` are on the *report* users, which neither the
    classifier nor the threshold saw. ``heldout_members`` / ``heldout_nonmembers`` are those users'
    pairs, handy as reference sets.
    """

    classifier: Any
    kind: str
    threshold: float
    heldout_auc: float
    heldout_balanced_accuracy: float
    candidate_aucs: dict[str, float]
    heldout_members: Pairs
    heldout_nonmembers: Pairs
    feature_names: tuple[str, ...] = FEATURE_NAMES
    n_train: dict[str, int] = field(default_factory=dict)

    def features(self, model: Recommender, data: InteractionData | sp.csr_matrix, pairs: PairsLike) -> np.ndarray:
        train = data.train if isinstance(data, InteractionData) else data
        return pair_features(model, train, pairs)

    def member_probability(self, model: Recommender, data: InteractionData | sp.csr_matrix,
                           pairs: PairsLike) -> np.ndarray:
        """The attack's member probability for each pair; ``data`` is what ``model`` was trained on."""
        feats = self.features(model, data, pairs)
        if len(feats) == 0:
            return np.zeros(0)
        return self.classifier.predict_proba(feats)[:, 1]

    def member_rate(self, model: Recommender, data_for_masking: InteractionData | sp.csr_matrix,
                    pairs: PairsLike) -> float:
        """Share of ``pairs`` the attack calls *member* (probability ≥ ``threshold``)."""
        prob = self.member_probability(model, data_for_masking, pairs)
        return float(np.mean(prob >= self.threshold)) if len(prob) else float("nan")

    def auc(self, model: Recommender, data: InteractionData | sp.csr_matrix, members: PairsLike,
            nonmembers: PairsLike) -> float:
        """ROC-AUC of the attack separating ``members`` from ``nonmembers`` under ``model``.

        0.5 means the model shows no membership trace on these pairs.
        """
        return separation_auc(self.member_probability(model, data, members),
                              self.member_probability(model, data, nonmembers))

    def summary(self) -> dict[str, Any]:
        return {"classifier": self.kind, "threshold": self.threshold, "heldout_auc": self.heldout_auc,
                "heldout_balanced_accuracy": self.heldout_balanced_accuracy,
                "candidate_aucs": dict(self.candidate_aucs), "n_train": dict(self.n_train),
                "features": list(self.feature_names)}


def fit_membership_attack(model: Recommender, data: InteractionData, *, exclude_pairs: PairsLike | None = None,
                          seed: int = 0, max_pairs: int = 20000,
                          split: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> MembershipAttack:
    """Train the attack on ``model`` (the original, trained on ``data.train``).

    Members: training pairs minus ``exclude_pairs`` (pass the deletion request so the attack has never
    seen the pairs it will be asked about); non-members: valid ∪ test pairs. Each class is subsampled
    to at most ``max_pairs`` and to the same size, so 0.5 is chance for every reported rate. Users are
    split ``split`` = (fit, select, report).
    """
    rng = np.random.default_rng(seed)
    n_items = data.n_items
    members = csr_pairs(data.train)
    if exclude_pairs is not None:
        ex_u, ex_i = as_pairs(exclude_pairs)
        if len(ex_u):
            ex_keys = np.unique(ex_u * n_items + ex_i)
            keep = ~np.isin(members[0] * n_items + members[1], ex_keys)
            members = (members[0][keep], members[1][keep])
    nonmembers = csr_pairs(sp.csr_matrix(data.valid + data.test))
    if len(members[0]) < 10 or len(nonmembers[0]) < 10:
        raise ValueError(f"membership attack needs ≥ 10 members and non-members, got {len(members[0])} "
                         f"and {len(nonmembers[0])} (are valid/test empty?)")
    n = min(max_pairs, len(members[0]), len(nonmembers[0]))
    members, nonmembers = _subsample(members, n, rng), _subsample(nonmembers, n, rng)

    users = np.r_[members[0], nonmembers[0]]
    items = np.r_[members[1], nonmembers[1]]
    y = np.r_[np.ones(n), np.zeros(n)].astype(np.int64)
    feats = pair_features(model, data.train, (users, items))

    # three-way split by *user*: the held-out AUC is on users the attack never fitted or tuned on
    perm = rng.permutation(data.n_users)
    fit_share, sel_share, _ = split
    cut1, cut2 = int(fit_share * len(perm)), int((fit_share + sel_share) * len(perm))
    part = np.empty(data.n_users, dtype=np.int64)
    part[perm[:cut1]], part[perm[cut1:cut2]], part[perm[cut2:]] = 0, 1, 2
    where = part[users]
    fit, sel, rep = (where == 0), (where == 1), (where == 2)
    for name, m in (("fit", fit), ("select", sel), ("report", rep)):
        if len(np.unique(y[m])) < 2:
            raise ValueError(f"membership attack: the {name} users hold only one class; use more data")

    candidates: dict[str, Any] = {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "hgb": HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                              l2_regularization=1.0, random_state=seed),
    }
    aucs: dict[str, float] = {}
    for name, clf in candidates.items():
        clf.fit(feats[fit], y[fit])
        aucs[name] = float(roc_auc_score(y[sel], clf.predict_proba(feats[sel])[:, 1]))
    kind = max(aucs, key=lambda k: aucs[k])
    clf = candidates[kind]
    threshold, _ = _best_threshold(y[sel], clf.predict_proba(feats[sel])[:, 1])
    p_rep = clf.predict_proba(feats[rep])[:, 1]
    pred = p_rep >= threshold
    bal = 0.5 * (pred[y[rep] == 1].mean() + (~pred[y[rep] == 0]).mean())
    rep_m, rep_n = rep & (y == 1), rep & (y == 0)
    return MembershipAttack(
        classifier=clf, kind=kind, threshold=threshold,
        heldout_auc=float(roc_auc_score(y[rep], p_rep)), heldout_balanced_accuracy=float(bal),
        candidate_aucs=aucs,
        heldout_members=(users[rep_m], items[rep_m]), heldout_nonmembers=(users[rep_n], items[rep_n]),
        n_train={"fit": int(fit.sum()), "select": int(sel.sum()), "report": int(rep.sum())},
    )


def audit_forget_set(attack: MembershipAttack, model: Recommender, retain_data: InteractionData,
                     forget_pairs: PairsLike, nonmember_pairs: PairsLike | None = None) -> dict[str, Any]:
    """The audit of one (unlearned) model: how member-like do its deleted pairs look?

    ``retain_data`` is what ``model`` claims to be trained on (its retained positives are masked;
    the deleted pairs are not). ``nonmember_pairs`` are unseen real interactions for the AUC
    (default: the attack's held-out non-members). Report ``member_rate_forget`` beside Retrain's:
    the target is Retrain's value, not zero — deleted pairs are real interactions and may look
    plausible without being memorised.
    """
    nonmember_pairs = attack.heldout_nonmembers if nonmember_pairs is None else nonmember_pairs
    fu, fi = as_pairs(forget_pairs)
    nu, ni = as_pairs(nonmember_pairs)
    pf = attack.member_probability(model, retain_data, (fu, fi))
    pn = attack.member_probability(model, retain_data, (nu, ni))
    auc = separation_auc(pf, pn)
    return {
        "member_rate_forget": rate_at(pf, attack.threshold),
        "member_rate_nonmember": rate_at(pn, attack.threshold),
        "mean_member_prob_forget": float(pf.mean()) if len(pf) else float("nan"),
        "auc_forget_vs_nonmember": auc,
        "n_forget": int(len(pf)),
        "n_nonmember": int(len(pn)),
        "attack": attack.summary(),
    }
