"""Layer isolation: frozen groups and untouched rows stay bit-identical; selection covers p of S."""

from __future__ import annotations

import numpy as np
import torch

from mmunlearn.unlearn import build_method
from mmunlearn.unlearn.tru.isolation import select_groups, touched_rows

from .conftest import make_ctx


def test_select_groups_smallest_set_covering_p():
    sens = {"a": 6.0, "b": 3.0, "c": 1.0}
    assert select_groups(sens, 0.5) == ["a"]
    assert select_groups(sens, 0.9) == ["a", "b"]
    assert select_groups(sens, 1.0) == ["a", "b", "c"]
    assert select_groups({"a": 0.0}, 0.9) == []


def test_frozen_group_and_untouched_rows_are_bit_identical(trained, small_data):
    # item regime: the forget gradient reaches only the deleted items' rows (user side detached), so the
    # user table is not selected and must come back bit-identical; so must every untouched item row
    ctx = make_ctx(trained, small_data, "item", ratio=0.1)
    res = build_method("tru", item_prior=False, tol=0.0, epochs=3).run(ctx)
    assert "user_embedding" not in res.log["isolation"]["groups"]
    assert res.log["steps"] > 0
    assert torch.equal(res.model.user_emb, ctx.original.user_emb)
    deleted = ctx.applied.deleted_items
    others = np.setdiff1d(np.arange(small_data.n_items), deleted)
    assert torch.equal(res.model.item_emb[others], ctx.original.item_emb[others])
    assert not torch.equal(res.model.item_emb[deleted], ctx.original.item_emb[deleted])


def test_interaction_updates_only_rows_of_the_deleted_pairs(trained, small_data):
    ctx = make_ctx(trained, small_data, "interaction", ratio=0.05)
    res = build_method("tru", tol=0.0, epochs=2).run(ctx)
    users = np.unique(ctx.applied.forget_pairs[:, 0])
    items = np.unique(ctx.applied.forget_pairs[:, 1])
    other_u = np.setdiff1d(np.arange(small_data.n_users), users)
    other_i = np.setdiff1d(np.arange(small_data.n_items), items)
    assert torch.equal(res.model.user_emb[other_u], ctx.original.user_emb[other_u])
    assert torch.equal(res.model.item_emb[other_i], ctx.original.item_emb[other_i])
    changed = (res.model.user_emb[users] != ctx.original.user_emb[users]).any(1)
    assert bool(changed.any())
    # without isolation the update is free to touch other rows
    free = build_method("tru-no-isolation", tol=0.0, epochs=2).run(ctx)
    assert free.log["isolation"]["rows"] == {}


def test_pair_rows_user_leaves_every_item_row_of_an_interaction_request_alone(trained, small_data):
    # a deleted interaction costs its item one of many likers: with pair_rows = "user" only the users'
    # rows carry the push and every row of an item that keeps some history comes back bit-identical
    ctx = make_ctx(trained, small_data, "interaction", ratio=0.05)
    both = build_method("tru", tol=0.0, epochs=2, pair_rows="both").run(ctx)
    users_only = build_method("tru", tol=0.0, epochs=2, repair_epochs=0.0).run(ctx)  # the default; the repair is never isolated
    kept = np.setdiff1d(np.arange(small_data.n_items), ctx.applied.deleted_items)  # a fully deleted item
    # is an item-kind pair's: its row is pushed (and re-initialised) under either setting
    assert not torch.equal(both.model.item_emb[kept], ctx.original.item_emb[kept])
    assert torch.equal(users_only.model.item_emb[kept], ctx.original.item_emb[kept])
    users = np.unique(ctx.applied.forget_pairs[:, 0])
    assert bool((users_only.model.user_emb[users] != ctx.original.user_emb[users]).any())
    assert users_only.log["steps"] > 0


def test_touched_rows_with_neighbours(small_data):
    users, items = touched_rows(np.array([0]), np.array([], dtype=np.int64), small_data.train, hops=0)
    assert list(users) == [0] and len(items) == 0
    users1, items1 = touched_rows(np.array([0]), np.array([], dtype=np.int64), small_data.train, hops=1)
    assert set(items1) == set(small_data.train[0].indices)


def test_row_restricted_groups_are_kept_and_coverage_ranks_only_shared_groups():
    sens = {"gate": 20.0, "purifier": 17.0, "projection": 3.0, "user_table": 5.0, "item_table": 4.0,
            "unreached_table": 0.0}
    tables = {"user_table", "item_table", "unreached_table"}
    chosen = select_groups(sens, 0.9, tables)
    # both reached tables stay although the shared gates outrank them; the unreached one does not
    assert chosen[:2] == ["user_table", "item_table"] and "unreached_table" not in chosen
    assert chosen[2:] == ["gate", "purifier"]  # 37 of 40 shared ≥ 0.9
    assert select_groups({"user_table": 1.0, "item_table": 0.0}, 0.9, tables) == ["user_table"]
