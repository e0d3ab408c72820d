"""The backbone contract, checked on every registered backbone: groups, learning, graphs, devices."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmunlearn.data.interactions import InteractionData
from mmunlearn.evaluate.ranking import rank_metrics, split_mask
from mmunlearn.models.registry import MODELS, build_model, model_config

from .conftest import BRIEF, train_steps

BACKBONES = ["lightgcn", "mgcn", "miggt"]


def make(name: str, data: InteractionData, **overrides):
    torch.manual_seed(0)
    return build_model(name, data, model_config(name, ("test", {**BRIEF[name][0], **overrides})))


def popularity_recall(data: InteractionData, k: int = 10) -> float:
    pop = torch.tensor(np.bincount(data.train.indices, minlength=data.n_items), dtype=torch.float32)
    return rank_metrics(torch.ones(data.n_users, 1), pop[:, None], data.test,
                        split_mask(data.train, data.valid), ks=(k,))[f"recall@{k}"]


def model_recall(model, data: InteractionData, k: int = 10) -> float:
    u, i = model.final_embeddings()
    return rank_metrics(u, i, data.test, split_mask(data.train, data.valid), ks=(k,))[f"recall@{k}"]


def test_registry_has_every_backbone() -> None:
    assert set(BACKBONES) <= set(MODELS)
    assert MODELS["mgcn"][0].modality_aware and MODELS["miggt"][0].modality_aware


@pytest.mark.parametrize("name", BACKBONES)
def test_groups_and_branches_partition_parameters(name: str, planted: InteractionData) -> None:
    model = make(name, planted)
    model.check_groups()
    branches = model.modality_branches()
    if model.modality_aware:
        assert set(branches) == {"id", *planted.modalities}
        assert all(branches.values())
    params = dict(model.named_parameters())
    for pname, kind in model.embedding_tables().items():
        assert params[pname].shape[0] == (model.n_users if kind == "user" else model.n_items)


@pytest.mark.parametrize("name", BACKBONES)
def test_loss_decreases(name: str, planted: InteractionData) -> None:
    model = make(name, planted)
    losses = train_steps(model, planted, epochs=100, lr=BRIEF[name][1], batch_size=512, max_steps=50)
    assert len(losses) == 50
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses[::10]


@pytest.mark.parametrize("name", BACKBONES)
def test_beats_popularity_after_brief_training(name: str, planted: InteractionData) -> None:
    overrides, lr, epochs = BRIEF[name]
    model = make(name, planted)
    train_steps(model, planted, epochs=epochs, lr=lr)
    ours, pop = model_recall(model, planted), popularity_recall(planted)
    assert ours > pop + 0.05, (ours, pop)


@pytest.mark.parametrize("name", BACKBONES)
def test_rebuild_graphs_changes_affected_users(name: str, planted: InteractionData) -> None:
    model = make(name, planted)
    train_steps(model, planted, epochs=3, lr=BRIEF[name][1])
    u_before, i_before = model.final_embeddings()
    affected = np.arange(0, planted.n_users, 7)
    reduced = planted.train.tolil()
    for u in affected:  # delete the first training item of every 7th user
        reduced[u, planted.train[u].indices[0]] = 0
    reduced = sp.csr_matrix(reduced)
    reduced.eliminate_zeros()
    model.rebuild_graphs(reduced)
    u_after, i_after = model.final_embeddings()
    scores_before, scores_after = u_before[affected] @ i_before.T, u_after[affected] @ i_after.T
    assert (scores_before - scores_after).abs().amax(dim=1).min() > 1e-5
    model.rebuild_graphs(planted.train)  # rebuilding from the original data restores the model
    u_back, i_back = model.final_embeddings()
    torch.testing.assert_close(u_back, u_before)
    torch.testing.assert_close(i_back, i_before)


def _graph_tensors(model) -> list[torch.Tensor]:
    graphs = getattr(model, "_graphs", None)
    return list(graphs.values()) if graphs is not None else [model.adj]


@pytest.mark.parametrize("name", BACKBONES)
def test_device_moves_take_the_graphs_along(name: str, planted: InteractionData) -> None:
    model = make(name, planted)
    before = model.final_embeddings()
    model.to("cpu")
    assert all(t.device.type == "cpu" for t in _graph_tensors(model))
    after = model.final_embeddings()
    torch.testing.assert_close(before[0], after[0])
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here for the round trip")
    model.to("cuda")
    assert all(t.device.type == "cuda" for t in _graph_tensors(model))
    model.loss(*(torch.tensor([0, 1], device="cuda"),) * 3).backward()
    on_gpu = model.final_embeddings()
    torch.testing.assert_close(on_gpu[0].cpu(), before[0], atol=1e-4, rtol=1e-4)
    model.to("cpu")
    assert all(t.device.type == "cpu" for t in _graph_tensors(model))


@pytest.mark.parametrize("name", BACKBONES)
def test_state_dict_round_trip(name: str, planted: InteractionData) -> None:
    model = make(name, planted)
    train_steps(model, planted, epochs=2, lr=BRIEF[name][1])
    fresh = make(name, planted)
    fresh.load_state_dict(model.state_dict())
    for a, b in zip(model.final_embeddings(), fresh.final_embeddings(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", BACKBONES)
def test_reset_rows_touches_only_given_rows(name: str, planted: InteractionData) -> None:
    model = make(name, planted)
    train_steps(model, planted, epochs=2, lr=BRIEF[name][1])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    users, items = np.array([1, 4, 9]), np.array([2, 3])
    model.reset_rows(users, items, seed=1)
    tables = model.embedding_tables()
    for pname, p in model.named_parameters():
        # a table the reset creates (MIG-GT's detached-item rows) held nothing before: zeros
        was = before.get(pname, torch.zeros_like(p))
        if pname not in tables:
            torch.testing.assert_close(p, was)
            continue
        rows = users if tables[pname] == "user" else items
        others = np.setdiff1d(np.arange(p.shape[0]), rows)
        torch.testing.assert_close(p[others], was[others])
        assert (p[rows] != was[rows]).any(dim=1).all(), pname


def _deepcopy_sharing_graphs(model):
    """Deep copy as unlearning does it: sparse graph tensors (not deep-copyable) are shared."""
    import copy

    memo = {}
    for module in model.modules():
        for value in vars(module).values():
            for t in (value.values() if isinstance(value, dict) else (value,)):
                if isinstance(t, torch.Tensor) and t.layout != torch.strided:
                    memo[id(t)] = t
    return copy.deepcopy(model, memo)


@pytest.mark.parametrize("name", BACKBONES)
def test_deep_copy_is_independent_and_shares_content(name: str, planted: InteractionData) -> None:
    model = make(name, planted)
    clone = _deepcopy_sharing_graphs(model)
    for a, b in zip(model.final_embeddings(), clone.final_embeddings(), strict=True):
        torch.testing.assert_close(a, b)
    for attr in ("_raw", "_feats", "_knn_full"):  # read-only content is shared, never duplicated
        if hasattr(model, attr):
            assert getattr(clone, attr) is getattr(model, attr)
    with torch.no_grad():
        next(clone.parameters()).add_(1.0)
    assert not torch.equal(next(clone.parameters()), next(model.parameters()))
