"""A seeded dataset generator with planted structure, for unit tests and controlled studies.

Real data cannot tell us how much of a deleted interaction's influence sits in each modality
branch; a generator can, because it decides it. The planted model:

- latent factors ``P[u]`` (users) and ``Q[i]`` (items), i.i.d. N(0, 1), ``n_factors`` wide;
- item popularity ``b[i]`` ~ N(0, 1);
- user ``u`` picks ``n_u`` distinct items (``n_u`` ~ 1 + Poisson(mean − 1), at least 3) by sampling
  without replacement from ``softmax(affinity_scale · P[u]·Q[i] / sqrt(k) + popularity_scale · b[i])``
  (Gumbel top-k);
- each modality ``m`` is ``sqrt(r_m) · Z(Q W_m) + sqrt(1 − r_m) · noise`` with ``W_m`` a random
  projection, ``Z`` column standardisation and ``r_m`` the modality's *informativeness*: the share of
  each feature's variance explained by the item factors (1 = a noiseless projection, 0 = pure noise);
- per user, a random ``valid_fraction`` / ``test_fraction`` of the picks go to valid / test (at
  least one each when the fraction is positive), the rest (at least one) to train.

The affinity term dominates popularity at the defaults, so a matrix-factorisation model beats a
popularity ranking by a wide margin (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmunlearn.data.features import Modality
from mmunlearn.data.interactions import InteractionData, pairs_to_csr, per_user_split
from mmunlearn.errors import InputError

_USER_BLOCK = 2048  # users per block of the Gumbel top-k, bounding memory at block × n_items


@dataclass(frozen=True)
class ModalitySpec:
    """One planted modality: its width and how much of it the item factors explain (0..1)."""

    name: str
    dim: int
    informativeness: float


@dataclass(frozen=True)
class SyntheticConfig:
    """Shape and strength of the planted structure; every field is seeded by ``seed``."""

    n_users: int = 400
    n_items: int = 300
    n_factors: int = 8
    interactions_per_user: float = 12.0
    modalities: tuple[ModalitySpec, ...] = field(default_factory=lambda: (
        ModalitySpec("image", 32, 0.8), ModalitySpec("text", 16, 0.5)))
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    affinity_scale: float = 3.0
    popularity_scale: float = 1.0
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first field that cannot produce a dataset."""
        for key in ("n_users", "n_items", "n_factors"):
            if int(getattr(self, key)) <= 0:
                raise InputError(f"SyntheticConfig.{key} must be positive, got {getattr(self, key)}")
        if not 3 <= self.interactions_per_user <= self.n_items:
            raise InputError(f"SyntheticConfig.interactions_per_user must be in [3, n_items={self.n_items}], "
                             f"got {self.interactions_per_user}")
        for key in ("valid_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, key) < 0.5:
                raise InputError(f"SyntheticConfig.{key} must be in [0, 0.5), got {getattr(self, key)}")
        names = [m.name for m in self.modalities]
        if len(set(names)) != len(names):
            raise InputError(f"SyntheticConfig.modalities: repeated names {names}")
        for m in self.modalities:
            if m.dim <= 0 or not 0.0 <= m.informativeness <= 1.0:
                raise InputError(f"SyntheticConfig.modalities[{m.name!r}]: dim must be > 0 and informativeness "
                                 f"in [0, 1], got dim={m.dim}, informativeness={m.informativeness}")


@dataclass(frozen=True)
class SyntheticTruth:
    """The planted quantities, so tests can check what a model or an unlearning method recovered."""

    user_factors: np.ndarray  # [n_users, k]
    item_factors: np.ndarray  # [n_items, k]
    item_popularity: np.ndarray  # [n_items], the popularity logit b
    projections: dict[str, np.ndarray]  # modality -> W_m [k, dim]

    def logits(self, cfg: SyntheticConfig) -> np.ndarray:
        """``[n_users, n_items]`` sampling logits (dense: meant for the small planted datasets)."""
        k = self.user_factors.shape[1]
        return (cfg.affinity_scale * (self.user_factors @ self.item_factors.T) / np.sqrt(k)
                + cfg.popularity_scale * self.item_popularity[None, :])


def one_signal_modality(signal: str = "image", *, noise: str = "text", n_users: int = 600, n_items: int = 400,
                        interactions_per_user: float = 15.0, dims: tuple[int, int] = (32, 16),
                        seed: int = 0) -> SyntheticConfig:
    """A planted case where modality ``signal`` is a noiseless projection of the item factors and
    ``noise`` is pure noise (informativeness 1 and 0).

    Why: on real and seeded-random content TRU's branch-wise scaling ties with ``tru-no-scaling``
    everywhere (BENCHMARKS §5e), and there no branch carries the deletion more than another by
    construction. Here one branch can explain the interactions and the other cannot, so whether
    scaling the reverse step per branch matters is a question the data can answer.
    """
    if signal == noise:
        raise InputError(f"one_signal_modality: signal and noise must differ, got {signal!r} twice")
    return SyntheticConfig(n_users=n_users, n_items=n_items, interactions_per_user=interactions_per_user,
                           modalities=(ModalitySpec(signal, dims[0], 1.0), ModalitySpec(noise, dims[1], 0.0)),
                           seed=seed)


def generate(cfg: SyntheticConfig | None = None) -> InteractionData:
    """The planted dataset (name ``synthetic``): deterministic per ``cfg.seed``."""
    return generate_with_truth(cfg)[0]


def generate_with_truth(cfg: SyntheticConfig | None = None) -> tuple[InteractionData, SyntheticTruth]:
    """The planted dataset together with the factors, popularity and projections that made it."""
    cfg = cfg or SyntheticConfig()
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    k = cfg.n_factors
    P = rng.standard_normal((cfg.n_users, k))
    Q = rng.standard_normal((cfg.n_items, k))
    b = rng.standard_normal(cfg.n_items)
    truth = SyntheticTruth(P, Q, b, {})
    users, items = _sample_interactions(cfg, truth, rng)
    labels = _split_labels(users, cfg, rng)
    splits = {s: pairs_to_csr(users[labels == j], items[labels == j], cfg.n_users, cfg.n_items)
              for j, s in enumerate(("train", "valid", "test"))}
    modalities: dict[str, Modality] = {}
    for spec in cfg.modalities:
        values, W = _planted_modality(Q, spec, rng)
        truth.projections[spec.name] = W
        modalities[spec.name] = Modality(
            name=spec.name, values=values, provenance="synthetic",
            source=(f"planted: sqrt({spec.informativeness})*standardised(Q@W) + "
                    f"sqrt({1 - spec.informativeness:.3g})*noise, Q = rank-{k} item factors, seed={cfg.seed}"))
    source = (f"synthetic generator (seed={cfg.seed}): {cfg.n_users} users x {cfg.n_items} items, "
              f"rank-{k} factors, softmax({cfg.affinity_scale}*affinity + {cfg.popularity_scale}*popularity) "
              f"sampling, ~{cfg.interactions_per_user:g} interactions/user; modalities: "
              + ", ".join(f"{m.name} dim {m.dim} informativeness {m.informativeness:g}" for m in cfg.modalities))
    data = InteractionData(name="synthetic", modalities=modalities, source=source, **splits)
    return data, truth


def _sample_interactions(cfg: SyntheticConfig, truth: SyntheticTruth,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Distinct items per user by Gumbel top-k on the planted logits (= sampling w/o replacement)."""
    min_n = 1 + (cfg.valid_fraction > 0) + (cfg.test_fraction > 0)
    counts = 1 + rng.poisson(cfg.interactions_per_user - 1, size=cfg.n_users)
    counts = np.clip(counts, max(min_n, 3), cfg.n_items)
    k = cfg.n_factors
    users, items = [], []
    for start in range(0, cfg.n_users, _USER_BLOCK):
        stop = min(start + _USER_BLOCK, cfg.n_users)
        logits = (cfg.affinity_scale * (truth.user_factors[start:stop] @ truth.item_factors.T) / np.sqrt(k)
                  + cfg.popularity_scale * truth.item_popularity[None, :])
        keys = logits + rng.gumbel(size=logits.shape)
        order = np.argsort(-keys, axis=1)
        n = counts[start:stop]
        take = np.arange(cfg.n_items)[None, :] < n[:, None]
        users.append(np.repeat(np.arange(start, stop), n))
        items.append(order[take])
    return np.concatenate(users), np.concatenate(items)


def _split_labels(users: np.ndarray, cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Per-user random split; rows arrive grouped by user. 0 train, 1 valid, 2 test."""
    return per_user_split(users, cfg.valid_fraction, cfg.test_fraction, rng)


def _planted_modality(Q: np.ndarray, spec: ModalitySpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features whose variance share explained by the item factors is ``spec.informativeness``."""
    W = rng.standard_normal((Q.shape[1], spec.dim))
    signal = Q @ W
    signal = (signal - signal.mean(0)) / (signal.std(0) + 1e-12)
    noise = rng.standard_normal((Q.shape[0], spec.dim))
    r = spec.informativeness
    values = np.sqrt(r) * signal + np.sqrt(1.0 - r) * noise
    return values.astype(np.float32), W
