"""Forget requests: sampling by regime, explicit requests, validation, application, JSON round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmunlearn.data.requests import (
    ForgetRequest,
    apply_request,
    load_request,
    sample_request,
    save_request,
)
from mmunlearn.data.synthetic import SyntheticConfig, generate
from mmunlearn.errors import InputError
from mmunlearn.train.sampling import contains, pair_keys


@pytest.fixture(scope="module")
def data():
    return generate(SyntheticConfig(n_users=120, n_items=80, interactions_per_user=10, seed=1))


def _train_pairs(mat):
    users = np.repeat(np.arange(mat.shape[0]), np.diff(mat.indptr))
    return np.stack([users, mat.indices], 1)


@pytest.mark.parametrize("regime", ["user", "item", "interaction"])
def test_retain_has_no_deleted_pair_and_keeps_the_id_space(data, regime):
    applied = apply_request(data, sample_request(data, regime, 0.1, seed=4))
    retain = applied.retain
    fp = applied.forget_pairs
    assert len(fp) > 0
    assert not contains(pair_keys(retain.train), fp[:, 0], fp[:, 1], data.n_items).any()
    assert retain.train.nnz + len(fp) == data.train.nnz
    assert retain.train.shape == data.train.shape  # ids never renumbered
    assert (retain.valid != data.valid).nnz == 0 and (retain.test != data.test).nnz == 0
    # every retained pair was a training pair
    rp = _train_pairs(retain.train)
    assert contains(pair_keys(data.train), rp[:, 0], rp[:, 1], data.n_items).all()


def test_regime_sizes_and_full_deletions(data):
    users_with = int((np.diff(data.train.indptr) > 0).sum())
    a = apply_request(data, sample_request(data, "user", 0.1, seed=0))
    assert len(a.request.users) == round(0.1 * users_with)
    assert set(a.deleted_users) == set(a.request.users)  # their whole history is gone
    assert np.all(np.diff(a.retain.train.indptr)[a.request.users] == 0)
    b = apply_request(data, sample_request(data, "item", 0.1, seed=0))
    assert np.all(np.bincount(b.retain.train.indices, minlength=data.n_items)[b.request.items] == 0)
    assert set(b.deleted_items) == set(b.request.items)
    c = apply_request(data, sample_request(data, "interaction", 0.1, seed=0))
    assert len(c.forget_pairs) == round(0.1 * data.train.nnz)


def test_core_and_edge_selections(data):
    deg = np.diff(data.train.indptr)
    core = sample_request(data, "user", 0.1, seed=0, selection="core").users
    edge = sample_request(data, "user", 0.1, seed=0, selection="edge").users
    rest_core = np.setdiff1d(np.flatnonzero(deg > 0), core)
    assert deg[core].min() >= deg[rest_core].max()
    assert deg[edge].max() <= deg[np.setdiff1d(np.flatnonzero(deg > 0), edge)].min()


def test_sampling_is_seeded(data):
    assert sample_request(data, "interaction", 0.1, 3).hash == sample_request(data, "interaction", 0.1, 3).hash
    assert sample_request(data, "interaction", 0.1, 3).hash != sample_request(data, "interaction", 0.1, 4).hash


def test_explicit_request_is_the_union_of_its_parts(data):
    u = 0
    i = int(np.bincount(data.train.indices).argmax())
    pair = _train_pairs(data.train)[-1]
    req = ForgetRequest.explicit(users=[u], items=[i], pairs=[pair], data=data)
    a = apply_request(data, req)
    fp = {tuple(p) for p in a.forget_pairs}
    expected = {(u, int(j)) for j in data.train[u].indices}
    expected |= {(int(v), i) for v in data.train[:, i].nonzero()[0]}
    expected.add(tuple(int(x) for x in pair))
    assert fp == expected


def test_json_round_trip_keeps_the_hash(data, tmp_path):
    req = sample_request(data, "user", 0.1, seed=2)
    path = tmp_path / "r.json"
    save_request(path, req)
    back = load_request(path)
    assert back.hash == req.hash and back.sampling == req.sampling and back.regime == "user"
    assert ForgetRequest.from_json(req.to_json()).hash == req.hash
    # provenance is not content: the same deletion has the same hash
    same = ForgetRequest.explicit(users=req.users, data=data)
    assert same.hash == req.hash
    # an edited file is caught
    obj = json.loads(path.read_text())
    obj["users"] = obj["users"][1:]
    path.write_text(json.dumps(obj))
    with pytest.raises(InputError, match="hash mismatch"):
        load_request(path)


@pytest.mark.parametrize("kwargs, message", [
    ({"users": [10_000]}, "unknown user id 10000"),
    ({"items": [-1]}, "unknown item id -1"),
    ({}, "is empty"),
])
def test_bad_requests_fail_with_one_line(data, kwargs, message):
    with pytest.raises(InputError, match=message) as exc:
        apply_request(data, ForgetRequest.explicit(data=data, **kwargs))
    assert "\n" not in str(exc.value)


def test_pair_that_is_not_a_training_interaction(data):
    vu = int(np.flatnonzero(np.diff(data.valid.indptr))[0])
    vi = int(data.valid[vu].indices[0])  # a valid pair is not a training pair
    with pytest.raises(InputError, match=rf"pair \({vu}, {vi}\) is not a training interaction"):
        apply_request(data, ForgetRequest.explicit(pairs=[[vu, vi]], data=data))


def test_request_that_would_empty_train(data):
    everyone = np.flatnonzero(np.diff(data.train.indptr) > 0)
    with pytest.raises(InputError, match="leave the train split empty"):
        apply_request(data, ForgetRequest.explicit(users=everyone, data=data))
    with pytest.raises(InputError, match="ratio"):
        sample_request(data, "user", 1.0)


def test_request_from_another_dataset_is_refused(data):
    other = generate(SyntheticConfig(n_users=120, n_items=80, interactions_per_user=10, seed=2))
    with pytest.raises(InputError, match="drawn from dataset"):
        apply_request(other, sample_request(data, "user", 0.1, 0))


def test_already_deleted_user_is_reported(data):
    a = apply_request(data, ForgetRequest.explicit(users=[3], data=data))
    with pytest.raises(InputError, match="user 3 has no training interactions"):
        apply_request(a.retain, ForgetRequest.explicit(users=[3]))


def test_merged_requests_compose(data):
    r1 = ForgetRequest.explicit(users=[1], data=data)
    a1 = apply_request(data, r1)
    r2 = sample_request(a1.retain, "interaction", 0.05, 0)
    a2 = apply_request(a1.retain, r2)
    merged = r1.merged_with(r2)
    assert (apply_request(data, merged).retain.train != a2.retain.train).nnz == 0


@pytest.mark.parametrize("edit, message", [
    (lambda o: {**o, "dataset": {**o["dataset"], "fingerprint": 5}}, "dataset.fingerprint"),
    (lambda o: {**o, "dataset": [1]}, "'dataset' must be an object"),
    (lambda o: {**o, "users": [2 ** 70], "hash": None}, "within 64 bits"),
    (lambda o: {**o, "pairs": [[1, 2 ** 70]], "hash": None}, "within 64 bits"),
    (lambda o: {**o, "pairs": [[1]], "hash": None}, "pairs must be"),
    (lambda o: {**o, "users": "1,2", "hash": None}, "must be a list"),
    (lambda o: {**o, "regime": 3}, "'regime' must be a string"),
])
def test_malformed_request_fields_are_one_line(data, tmp_path, edit, message):
    obj = sample_request(data, "user", 0.1, 0).to_dict()
    path = tmp_path / "r.json"
    path.write_text(json.dumps(edit(obj)))
    with pytest.raises(InputError, match=message) as exc:
        load_request(path)
    assert "\n" not in str(exc.value)


def test_non_utf8_request_is_one_line(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(b'{"users": [1], "regime": "\xff"}')
    with pytest.raises(InputError, match="not UTF-8"):
        load_request(path)
