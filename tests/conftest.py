"""Shared fixtures: small deterministic datasets and the location of the real shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmunlearn.data.interactions import InteractionData, pairs_to_csr

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def shared_dataset(name: str) -> Path:
    """Path of a real dataset folder beside the repo, or skip the test where it is absent."""
    path = SHARED_DATASETS / name
    if not path.is_dir():
        pytest.skip(f"real data {path} not present")
    return path


def tiny_dataset(n_users: int = 60, n_items: int = 40, per_user: int = 8, seed: int = 0) -> InteractionData:
    """A small dataset with planted low-rank structure, split per user 6:1:1 (for fast tests)."""
    rng = np.random.default_rng(seed)
    uf, itf = rng.standard_normal((n_users, 4)), rng.standard_normal((n_items, 4))
    logits = uf @ itf.T * 2.0
    users, items, labels = [], [], []
    for u in range(n_users):
        p = np.exp(logits[u] - logits[u].max())
        chosen = rng.choice(n_items, size=per_user, replace=False, p=p / p.sum())
        users += [u] * per_user
        items += list(chosen)
        labels += [0] * (per_user - 2) + [1, 2]
    users_a, items_a, labels_a = map(np.asarray, (users, items, labels))
    splits = {s: pairs_to_csr(users_a[labels_a == k], items_a[labels_a == k], n_users, n_items)
              for k, s in enumerate(("train", "valid", "test"))}
    return InteractionData(name="tiny", source="tests/conftest.py", **splits)


@pytest.fixture
def tiny() -> InteractionData:
    return tiny_dataset()


class TrainingKilled(Exception):
    """Stands for a process killed in the middle of a training."""


@pytest.fixture
def kill_training(monkeypatch):
    """``kill_training(n)``: the n-th training epoch from now (counting every model) dies at its start, once;
    every training snapshots at the end of each epoch instead of every few minutes."""
    from mmunlearn.train import trainer

    real_epoch, real_snapshots = trainer.train_epoch, trainer.Snapshots
    monkeypatch.setattr(trainer, "Snapshots", lambda folder, key, every_seconds=300.0: real_snapshots(folder, key, 0.0))

    def arm(n: int) -> None:
        calls = []

        def dying(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise TrainingKilled
            return real_epoch(*args, **kwargs)

        monkeypatch.setattr(trainer, "train_epoch", dying)

    return arm
