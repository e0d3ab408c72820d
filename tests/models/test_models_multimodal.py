"""MGCN- and MIG-GT-specific behaviour: modality handling, options, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmunlearn.data.features import synthetic_modality
from mmunlearn.data.interactions import InteractionData
from mmunlearn.errors import InputError
from mmunlearn.models.mgcn import MGCN, MGCNConfig
from mmunlearn.models.miggt import MIGGT, MIGGTConfig, parse_hops

from .conftest import train_steps

CONTENT_MODELS = [(MGCN, MGCNConfig), (MIGGT, MIGGTConfig)]


@pytest.mark.parametrize(("cls", "cfg"), CONTENT_MODELS)
def test_no_modalities_is_an_input_error(cls, cfg, planted: InteractionData) -> None:
    with pytest.raises(InputError, match="synthetic"):
        cls(planted.with_modalities({}), cfg())


@pytest.mark.parametrize(("cls", "cfg"), CONTENT_MODELS)
def test_missing_requested_modality_is_an_input_error(cls, cfg, planted: InteractionData) -> None:
    with pytest.raises(InputError, match="audio"):
        cls(planted, cfg(modalities=("image", "audio")))


@pytest.mark.parametrize(("cls", "cfg"), CONTENT_MODELS)
@pytest.mark.parametrize("names", [("text",), ("image", "text", "audio")])
def test_any_number_of_modalities(cls, cfg, names, planted: InteractionData) -> None:
    mods = dict(planted.modalities)
    mods["audio"] = synthetic_modality("audio", planted.n_items, 24, seed=5)
    data = planted.with_modalities({n: mods[n] for n in names})
    model = cls(data, cfg())
    model.check_groups()
    assert set(model.modality_branches()) == {"id", *names}
    losses = train_steps(model, data, epochs=3, lr=1e-2)
    assert np.isfinite(losses).all()


@pytest.mark.parametrize(("cls", "cfg"), CONTENT_MODELS)
def test_awkward_modality_names_keep_groups_disjoint(cls, cfg, planted: InteractionData) -> None:
    names = ("fuser", "user", "img", "img_hd")
    data = planted.with_modalities({n: synthetic_modality(n, planted.n_items, 8, seed=i)
                                    for i, n in enumerate(names)})
    model = cls(data, cfg(hops="id=2") if cls is MIGGT else cfg())
    model.check_groups()
    assert set(model.modality_branches()) == {"id", *names}


def test_mgcn_frozen_features_have_no_feature_parameters(planted: InteractionData) -> None:
    model = MGCN(planted, MGCNConfig(train_features=False))
    model.check_groups()
    assert not any(n.startswith("features.") for n, _ in model.named_parameters())
    assert not any("features" in k for k in model.state_dict())  # content is not checkpointed
    assert np.shares_memory(model._frozen["image"].numpy(), planted.modalities["image"].values)
    assert set(model.embedding_tables()) == {"user_emb", "item_emb"}
    train_steps(model, planted, epochs=1, lr=1e-2)


def test_mgcn_reset_restores_raw_content_rows(planted: InteractionData) -> None:
    model = MGCN(planted, MGCNConfig())
    train_steps(model, planted, epochs=2, lr=1e-2)
    raw = planted.modalities["image"].values
    assert not np.allclose(model.features["image"][5].detach().numpy(), raw[5])
    model.reset_rows(np.array([], dtype=np.int64), np.array([5]))
    np.testing.assert_array_equal(model.features["image"][5].detach().numpy(), raw[5])


def test_mgcn_knn_graph_leaves_out_items_without_training_history(planted: InteractionData) -> None:
    model = MGCN(planted, MGCNConfig())
    item = int(planted.train.indices[0])
    knn = model._graphs["knn.image"].to_dense()
    assert knn[item].abs().sum() > 0
    reduced = planted.train.tolil()
    reduced[:, item] = 0
    reduced = reduced.tocsr()
    reduced.eliminate_zeros()
    model.rebuild_graphs(reduced)
    knn = model._graphs["knn.image"].to_dense()
    assert knn[item].abs().sum() == 0 and knn[:, item].abs().sum() == 0
    keep = MGCN(planted, MGCNConfig(knn_drop_cold=False))
    keep.rebuild_graphs(reduced)
    assert keep._graphs["knn.image"].to_dense()[item].abs().sum() > 0


def test_mgcn_directed_knn_option(planted: InteractionData) -> None:
    model = MGCN(planted, MGCNConfig(knn_symmetric=False))
    assert "knn_t.image" in model._graphs
    assert np.isfinite(train_steps(model, planted, epochs=2, lr=1e-2)).all()


def test_parse_hops() -> None:
    assert parse_hops("id=4,text=2,image=1", ["id", "text"], 2) == {"id": 4, "text": 2}
    assert parse_hops("id=3", ["id", "audio"], 1) == {"id": 3, "audio": 1}
    for bad in ("text=2", "id=-1", "id=x", "id"):
        with pytest.raises(InputError):
            parse_hops(bad, ["id"], 2)


def test_miggt_evaluation_is_deterministic_and_training_is_not(planted: InteractionData) -> None:
    model = MIGGT(planted, MIGGTConfig())
    a, b = model.final_embeddings(), model.final_embeddings()
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    model.train()
    u = torch.arange(4)
    assert not torch.equal(model.batch_terms(u, u, u).pos, model.batch_terms(u, u, u).pos)  # dropout, sampling


@pytest.mark.parametrize("overrides", [{"hops": "id=2,text=2,image=0"}, {"n_samples": 0}, {"item_id_embedding": True},
                                       {"edge_dropout": 0.0, "rp_dim": 0}])
def test_miggt_variants_train(overrides: dict, planted: InteractionData) -> None:
    model = MIGGT(planted, MIGGTConfig(**overrides))
    model.check_groups()
    losses = train_steps(model, planted, epochs=3, lr=1e-2)
    assert np.isfinite(losses).all()


def test_miggt_zero_hop_branch_gives_users_nothing(planted: InteractionData) -> None:
    model = MIGGT(planted, MIGGTConfig(hops="id=2,text=0,image=0", n_samples=0, out_dropout=0.0))
    model.eval()
    inputs = model._branch_inputs()
    assert model._diffuse(inputs["text"], 0)[: planted.n_users].abs().sum() == 0


def test_miggt_random_projection_narrows_wide_modalities(planted: InteractionData) -> None:
    wide = synthetic_modality("image", planted.n_items, 600, seed=1)
    data = planted.with_modalities({"image": wide, "text": planted.modalities["text"]})
    model = MIGGT(data, MIGGTConfig(rp_dim=64))
    assert model._feats["image"].shape == (planted.n_items, 64)
    assert model._feats["text"].shape == (planted.n_items, planted.modalities["text"].dim)


def test_info_nce_matches_cross_entropy_and_survives_retain_graph() -> None:
    from torch.nn import functional as F

    from mmunlearn.models.mgcn import info_nce

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(30, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(30, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    ref = F.cross_entropy(F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / 0.2, torch.arange(30))
    got = info_nce(a, b, 0.2)
    torch.testing.assert_close(got, ref)
    for x, y in zip(torch.autograd.grad(ref, (a, b)), torch.autograd.grad(got, (a, b), retain_graph=True), strict=True):
        torch.testing.assert_close(x, y)
    torch.autograd.grad(got, (a,))  # a second backward through the same graph
    assert torch.autograd.gradcheck(lambda x, y: info_nce(x, y, 0.2), (a, b))


def test_fast_dropout_rate_and_expectation() -> None:
    from mmunlearn.models.miggt import fast_dropout

    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = fast_dropout(x, 0.3, True)
    assert abs(float((y == 0).float().mean()) - 77 / 256) < 0.005  # p quantised to 1/256
    assert abs(float(y.mean()) - 1.0) < 0.01
    assert fast_dropout(x, 0.3, False) is x and fast_dropout(x, 0.0, True) is x
    torch.manual_seed(1)
    a = fast_dropout(x, 0.5, True)
    torch.manual_seed(1)
    torch.testing.assert_close(fast_dropout(x, 0.5, True), a)  # reproducible under torch.manual_seed


def _mgcn_batch(model: MGCN, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randint(0, model.n_users, (32,), generator=gen),
            torch.randint(0, model.n_items, (32,), generator=gen),
            torch.randint(0, model.n_items, (32,), generator=gen))


def test_mgcn_feature_gradient_reuses_its_storage_and_matches_autograd(planted: InteractionData) -> None:
    """The table-projection backward writes into the last step's gradient storage: same values as a
    plain Linear, same memory across steps, and accumulation (no zero_grad) still adds up."""
    from mmunlearn.unlearn.base import clone_model

    torch.manual_seed(0)
    model = MGCN(planted, MGCNConfig())
    table = model.features["image"]
    batch = _mgcn_batch(model, 1)
    (ref,) = torch.autograd.grad(model.loss(*batch), [table])  # no store involvement: nothing kept yet
    ptrs = []
    for _ in range(3):
        model.zero_grad(set_to_none=True)
        model.loss(*batch).backward()
        torch.testing.assert_close(table.grad, ref)
        ptrs.append(table.grad.data_ptr())
    assert ptrs[1] == ptrs[2]  # steps after the first write into the kept storage
    model.loss(*batch).backward()  # accumulate on top: must not overwrite its own input
    torch.testing.assert_close(table.grad, 2 * ref)
    copy = clone_model(model)  # a copy hooks its own parameter and never shares the original's storage
    copy.zero_grad(set_to_none=True)
    copy.loss(*batch).backward()
    torch.testing.assert_close(copy.features["image"].grad, ref)
    assert copy.features["image"].grad.data_ptr() != table.grad.data_ptr()
    torch.testing.assert_close(table.grad, 2 * ref)


def test_mgcn_in_eval_mode_keeps_no_spare_gradient(planted: InteractionData) -> None:
    model = MGCN(planted, MGCNConfig())
    model.loss(*_mgcn_batch(model, 2)).backward()
    assert all(store._spare is not None for store in model._grad_stores.values())
    model.eval()
    assert all(store._spare is None for store in model._grad_stores.values())


def test_a_dropped_mgcn_frees_its_feature_tables(planted: InteractionData) -> None:
    """The gradient hook must not keep the model alive: Python's cycle collector cannot see torch's
    C++ hook references, so such a cycle is never collected (an MGCN grid leaked every method's copy)."""
    import gc
    import weakref

    from mmunlearn.unlearn.base import clone_model

    model = MGCN(planted, MGCNConfig())
    copy = clone_model(model)
    copy.loss(*_mgcn_batch(copy, 2)).backward()  # hooks attached and a spare gradient kept
    copy.propagate()
    tables = [weakref.ref(t) for t in copy.features.values()]
    gc.disable()
    try:
        del copy
        assert all(t() is None for t in tables)  # freed by reference counting alone
    finally:
        gc.enable()


def test_miggt_reset_detaches_fully_deleted_items(planted: InteractionData) -> None:
    """A detached item reads its row, nothing else: content changes leave its representation alone,
    every other item's summed branch output is what it was, and a trained model has no such table."""
    model = MIGGT(planted, MIGGTConfig(n_samples=0))
    train_steps(model, planted, epochs=2, lr=1e-2)
    assert "item_override" not in model.state_dict() and "item_override" not in model.embedding_tables()
    model.eval()
    with torch.no_grad():
        z_before = model._forward()[1][planted.n_users:].clone()
    items = np.array([2, 5])
    model.reset_rows(np.zeros(0, dtype=np.int64), items, seed=3)
    model.check_groups()
    assert model.embedding_tables()["item_override"] == "item"
    assert list(model.detached_items()) == [2, 5]
    assert list(model.items_with_rows(np.array([1, 2, 5]))) == [False, True, True]
    with torch.no_grad():
        _, items_final = model.final_embeddings()
        torch.testing.assert_close(items_final[items], model.item_override[torch.as_tensor(items)])
        others = np.setdiff1d(np.arange(planted.n_items), items)
        torch.testing.assert_close(items_final[others], z_before[others])
        # the prior's reference for an undetached item is its summed branch output, not the zero row
        torch.testing.assert_close(model.item_table_rows("item_override", others[:3]), z_before[others[:3]])
        for mlp in model.mlp.values():
            for p in mlp.parameters():
                p.add_(1.0)
        torch.testing.assert_close(model.final_embeddings()[1][items], items_final[items])


def test_miggt_detached_items_survive_a_state_dict_round_trip(planted: InteractionData) -> None:
    model = MIGGT(planted, MIGGTConfig())
    model.reset_rows(np.array([0]), np.array([4, 7]), seed=1)
    fresh = MIGGT(planted, MIGGTConfig())
    fresh.load_state_dict(model.state_dict())
    assert list(fresh.detached_items()) == [4, 7]
    for a, b in zip(model.final_embeddings(), fresh.final_embeddings(), strict=True):
        torch.testing.assert_close(a, b)
