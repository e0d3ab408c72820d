"""Fixtures for the audit tests: one planted dataset, an original model and its Retrains.

Models are session-scoped and small (400 users × 300 items, LightGCN dim 64, one layer, no L2,
lr 3e-2 for 20 epochs) so that they memorise their training pairs — the membership signal the
audits must find — while every test stays within a few seconds on one thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmunlearn.data.interactions import InteractionData, pairs_to_csr
from mmunlearn.data.synthetic import SyntheticConfig, generate
from mmunlearn.evaluate.mia import csr_pairs
from mmunlearn.models.base import Recommender
from mmunlearn.models.lightgcn import LightGCNConfig
from mmunlearn.models.registry import build_model
from mmunlearn.train.trainer import TrainConfig, train

EPOCHS = 20
MODEL_CFG = LightGCNConfig(dim=64, n_layers=1, reg_weight=0.0)
TRAIN_CFG = TrainConfig(epochs=EPOCHS, batch_size=1024, lr=3e-2, min_epochs=EPOCHS, eval_every=EPOCHS,
                        seed=0, threads=1)


def fit_model(data: InteractionData, seed: int = 0) -> Recommender:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = build_model("lightgcn", data, MODEL_CFG)
    train(model, data, TRAIN_CFG, show_progress=False)
    return model


@dataclass(frozen=True)
class InteractionCase:
    data: InteractionData
    retain: InteractionData
    forget: tuple[np.ndarray, np.ndarray]
    original: Recommender
    retrain: Recommender


@dataclass(frozen=True)
class UserCase:
    data: InteractionData
    retain: InteractionData
    forget_users: np.ndarray
    retrain: Recommender


@pytest.fixture(scope="session")
def audit_data() -> InteractionData:
    return generate(SyntheticConfig(n_users=400, n_items=300, interactions_per_user=20,
                                    valid_fraction=0.2, test_fraction=0.2, seed=0))


@pytest.fixture(scope="session")
def original(audit_data: InteractionData) -> Recommender:
    return fit_model(audit_data, seed=0)


@pytest.fixture(scope="session")
def interaction_case(audit_data: InteractionData, original: Recommender) -> InteractionCase:
    """10% of the training pairs deleted, and Retrain on the rest."""
    users, items = csr_pairs(audit_data.train)
    drop = np.random.default_rng(1).random(len(users)) < 0.1
    retain = audit_data.with_train(pairs_to_csr(users[~drop], items[~drop], audit_data.n_users,
                                                audit_data.n_items))
    return InteractionCase(data=audit_data, retain=retain, forget=(users[drop], items[drop]),
                           original=original, retrain=fit_model(retain, seed=0))


@pytest.fixture(scope="session")
def user_case(audit_data: InteractionData) -> UserCase:
    """40 users' whole training history deleted, and Retrain on the rest."""
    forget = np.sort(np.random.default_rng(3).choice(audit_data.n_users, 40, replace=False))
    keep = np.ones(audit_data.n_users)
    keep[forget] = 0.0
    train_r = sp.csr_matrix(sp.diags(keep) @ audit_data.train, dtype=np.float32)
    train_r.eliminate_zeros()
    retain = audit_data.with_train(train_r)
    return UserCase(data=audit_data, retain=retain, forget_users=forget, retrain=fit_model(retain, seed=0))
