"""Fixtures for backbone tests: a planted multimodal dataset and a short BPR training loop."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from mmunlearn.data.interactions import InteractionData
from mmunlearn.data.synthetic import SyntheticConfig, generate
from mmunlearn.models.base import Recommender
from mmunlearn.train.sampling import bpr_batches

#: small but with real structure: a model that uses it beats popularity by a wide margin
PLANTED = SyntheticConfig(n_users=300, n_items=150, n_factors=6, interactions_per_user=12.0, seed=3)

#: per backbone: (config overrides, learning rate, epochs) for a brief training run on PLANTED
BRIEF: dict[str, tuple[dict, float, int]] = {
    "lightgcn": ({}, 1e-2, 20),
    "mgcn": ({}, 1e-2, 10),
    "miggt": ({}, 1e-2, 10),
}


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and a 2-thread OpenMP pool beside another busy
    process spins instead of working (10× slower); restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def planted() -> InteractionData:
    return generate(PLANTED)


def train_steps(model: Recommender, data: InteractionData, epochs: int, lr: float,
                batch_size: int = 256, seed: int = 0, max_steps: int | None = None) -> list[float]:
    """Plain Adam on BPR batches (at most ``max_steps``); returns every step's loss."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(epochs):
        for u, p, n in bpr_batches(data.train, batch_size, rng):
            opt.zero_grad(set_to_none=True)
            loss = model.loss(torch.as_tensor(u), torch.as_tensor(p), torch.as_tensor(n))
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if max_steps is not None and len(losses) >= max_steps:
                return losses
    return losses


@pytest.fixture
def trainer() -> Callable[..., list[float]]:
    return train_steps
