"""TRU on a backbone without item rows: shared weights only for fully deleted items; triggered repair."""

from __future__ import annotations

import pytest
import torch

from mmunlearn.errors import InputError
from mmunlearn.unlearn import build_method
from mmunlearn.unlearn.base import clone_model
from mmunlearn.unlearn.tru import TRUConfig
from mmunlearn.unlearn.tru.isolation import shared_allowed
from mmunlearn.unlearn.tru.repair import needs_repair, original_valid_ndcg

from .conftest import toy_ctx


def test_shared_rule():
    assert shared_allowed("auto", True, rowless_items_pushed=False)  # item rows: the coverage rule decides
    assert not shared_allowed("auto", False, rowless_items_pushed=False)  # a deleted pair lives in its user row
    assert shared_allowed("auto", False, rowless_items_pushed=True)  # a deleted item has no row to move
    assert shared_allowed("always", False, rowless_items_pushed=False)
    assert not shared_allowed("never", True, rowless_items_pushed=True)


@pytest.mark.parametrize("field,value", [("shared", "sometimes"), ("gate_scale", "cubic")])
def test_unknown_choices_are_refused(field, value):
    with pytest.raises(InputError, match=f"tru.{field}"):
        TRUConfig(**{field: value})


def test_deleted_pairs_move_only_user_rows_without_item_rows(content_trained, small_data):
    # the rule's premise: a request that deletes no item's whole history (seed 0's deletes one)
    ctx = next(c for c in (toy_ctx(content_trained, small_data, "interaction", 0.05, seed=s) for s in range(1, 20))
               if len(c.applied.deleted_items) == 0)
    res = build_method("tru", tol=0.0, epochs=2, repair_epochs=0.0).run(ctx)
    assert res.log["isolation"]["groups"] == ["user_id"]
    assert res.log["steps"] == 2
    for name in ("image", "text"):  # the modules every item goes through are bit-identical
        assert torch.equal(getattr(res.model, name).weight, getattr(ctx.original, name).weight)
    users = ctx.applied.forget_pairs[:, 0]
    assert bool((res.model.user_emb[users] != ctx.original.user_emb[users]).any())


def test_deleted_items_move_shared_weights_without_item_rows(content_trained, small_data):
    ctx = toy_ctx(content_trained, small_data, "item", ratio=0.1)
    res = build_method("tru", tol=0.0, epochs=2, repair_epochs=0.0).run(ctx)
    iso = res.log["isolation"]
    assert iso["shared_from_deleted_items_only"]
    assert set(iso["groups"]) & {"image_proj", "text_proj"}
    moved = [n for n in ("image", "text") if not torch.equal(getattr(res.model, n).weight,
                                                             getattr(ctx.original, n).weight)]
    assert moved
    epochs = res.log["epochs"]
    assert len(ctx.applied.forget_pairs) and epochs[-1]["mean_pct"] > epochs[0]["mean_pct"]  # the items went down


def test_detached_items_are_pushed_in_their_own_rows_on_miggt(miggt_trained, small_data):
    """With the reset on, MIG-GT's fully deleted items are detached onto rows of their own: the push moves
    those rows (and user rows) only, never the modality MLPs or the transformer every item goes through,
    and starts from the never-positive items' mean representation (the item prior)."""
    ctx = toy_ctx(miggt_trained, small_data, "item", ratio=0.1)
    res = build_method("tru", tol=0.0, epochs=3, repair_epochs=0.0).run(ctx)
    iso = res.log["isolation"]
    assert set(iso["groups"]) <= {"user_embedding", "detached_items"} and "detached_items" in iso["groups"]
    assert not iso["shared_from_deleted_items_only"]
    assert res.log["item_prior"] == len(ctx.applied.deleted_items)
    shared = [n for n in dict(ctx.original.named_parameters()) if not n.startswith("user_emb")]
    after = dict(res.model.named_parameters())
    for name, p in ctx.original.named_parameters():
        if name in shared:
            assert torch.equal(after[name], p), name
    assert list(res.model.detached_items()) == sorted(ctx.applied.deleted_items)
    epochs = res.log["epochs"]
    assert epochs[-1]["mean_pct"] != epochs[0]["mean_pct"]  # the rows moved the deleted pairs
    # the ablation without the reset has no row to push: the shared modules take the items' terms
    off = build_method("tru", tol=0.0, epochs=2, repair_epochs=0.0, reset=False).run(ctx)
    assert off.log["isolation"]["shared_from_deleted_items_only"]
    assert off.model.item_override is None


def test_repair_trigger_reads_valid_utility(content_trained, small_data):
    ctx = toy_ctx(content_trained, small_data, "interaction", ratio=0.05)
    same = clone_model(ctx.original)
    same.rebuild_graphs(ctx.applied.retain.train)
    needed, check = needs_repair(same, ctx, 0.1, original_valid_ndcg(ctx))
    assert not needed and check["valid_ndcg@20"] > 0
    broken = clone_model(ctx.original)
    with torch.no_grad():
        broken.image.weight.zero_()
        broken.text.weight.zero_()  # every item scores 0: the ranking is gone
    needed, check = needs_repair(broken, ctx, 0.1, original_valid_ndcg(ctx))
    assert needed and check["valid_ndcg@20"] < check["valid_ndcg@20_original"]


def test_triggered_repair_runs_and_the_gate_checks_again(content_trained, small_data):
    ctx = toy_ctx(content_trained, small_data, "item", ratio=0.1)
    # trigger 0: repair whenever valid utility is below the original's at all (it is, after the push)
    res = build_method("tru", tol=0.0, epochs=2, repair_epochs=0.2, repair_trigger=0.0).run(ctx)
    rep = res.log["repair"]
    assert rep["ran"] and rep["steps"] > 0
    assert {e["phase"] for e in res.log["epochs"]} == {0, 1}
    never = build_method("tru", tol=0.0, epochs=2, repair_epochs=0.2, repair_trigger=1.0).run(ctx)
    assert not never.log["repair"]["ran"] and {e["phase"] for e in never.log["epochs"]} == {0}


def test_closing_check_repairs_what_the_second_push_took(content_trained, small_data):
    ctx = toy_ctx(content_trained, small_data, "item", ratio=0.1)
    res = build_method("tru", tol=0.0, epochs=2, repair_epochs=0.2, repair_trigger=0.0).run(ctx)
    close = res.log["closing_repair"]  # trigger 0: the pushed model is below the original, so it repairs
    assert close["ran"] and close["steps"] > 0
    assert {e["phase"] for e in res.log["epochs"]} == {0, 1}  # and no push follows it
    off = build_method("tru", tol=0.0, epochs=2, repair_epochs=0.2, repair_trigger=0.0, repair_close=False).run(ctx)
    assert "closing_repair" not in off.log
    assert not torch.equal(off.model.image.weight, res.model.image.weight)  # the closing repair moved it
    never = build_method("tru", tol=0.0, epochs=2, repair_epochs=0.2, repair_trigger=1.0).run(ctx)
    assert "closing_repair" not in never.log  # no repair, no second push: nothing to check again


def test_original_scores_from_the_context_are_what_ranking_gives(content_trained, small_data):
    """The grid passes the original's per-user valid NDCG@20 (scored once, outside the timer); the trigger
    must read from it the same mean it would rank, for every request's users."""
    from dataclasses import replace

    from mmunlearn.evaluate.forgetting import user_valid_ndcg

    scores = user_valid_ndcg(content_trained, small_data)
    for regime in ("user", "item", "interaction"):
        ctx = toy_ctx(content_trained, small_data, regime, ratio=0.1)
        ranked = original_valid_ndcg(ctx)
        assert ranked > 0
        assert original_valid_ndcg(replace(ctx, original_valid=scores)) == pytest.approx(ranked, abs=1e-12)


def test_tru_reads_the_original_scores_from_the_context(content_trained, small_data):
    from dataclasses import replace

    from mmunlearn.evaluate.forgetting import user_valid_ndcg

    ctx = toy_ctx(content_trained, small_data, "user", ratio=0.1)
    kw = {"tol": 0.0, "epochs": 2, "repair_epochs": 0.2, "repair_trigger": 0.0}
    ranked = build_method("tru", **kw).run(ctx)
    given = build_method("tru", **kw).run(replace(ctx, original_valid=user_valid_ndcg(ctx.original,
                                                                                        small_data)))
    assert ranked.log["repair"]["original_from"] == "ranked"
    assert given.log["repair"]["original_from"] == "context"
    assert given.log["repair"]["valid_ndcg@20_original"] == pytest.approx(
        ranked.log["repair"]["valid_ndcg@20_original"], abs=1e-12)
    for a, b in zip(ranked.model.parameters(), given.model.parameters(), strict=True):
        assert torch.equal(a, b)  # the same decisions, the same model
