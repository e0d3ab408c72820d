"""Partitions for sharded unlearning: balanced, deterministic, and the shard restriction is exact."""

from __future__ import annotations

import numpy as np
import pytest

from mmunlearn.data.partition import (
    balanced_partition,
    make_partition,
    membership,
    restrict,
    shards_touched,
    svd_embedding,
)
from mmunlearn.errors import InputError
from tests.conftest import tiny_dataset


@pytest.mark.parametrize("partition", ["random", "user", "item"])
def test_partitions_are_balanced_and_deterministic(partition):
    data = tiny_dataset()
    shard = make_partition(data.train, partition, 4, seed=3)
    n = data.n_items if partition == "item" else data.n_users
    assert shard.shape == (n,) and set(np.unique(shard)) == {0, 1, 2, 3}
    assert np.bincount(shard).max() <= -(-n // 4)
    assert np.array_equal(shard, make_partition(data.train, partition, 4, seed=3))


def test_balanced_partition_groups_nearby_rows():
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 0.0], [-10.0, 0.0], [0.0, 10.0]])
    emb = np.concatenate([c + rng.standard_normal((20, 2)) for c in centres])
    shard = balanced_partition(emb, 3, seed=1)
    for block in range(3):  # each well-separated cluster lands in one shard
        assert len(set(shard[block * 20:(block + 1) * 20])) == 1
    assert svd_embedding(tiny_dataset().train, "user", dim=4).shape == (60, 4)


def test_restrict_membership_and_touched_shards_agree():
    data = tiny_dataset()
    shard = make_partition(data.train, "item", 3, seed=0)
    parts = [restrict(data.train, shard, k, "item") for k in range(3)]
    assert sum(p.nnz for p in parts) == data.train.nnz
    for k, p in enumerate(parts):
        assert np.all(shard[p.indices] == k)
    mu, mi = membership(data.train, shard, 3, "item")
    assert np.array_equal(mi.argmax(1)[mi.any(1)], shard[mi.any(1)])
    assert np.array_equal(mu[:, 0], np.diff(parts[0].indptr) > 0)
    one_item = restrict(data.train, (np.arange(data.n_items) == 5).astype(np.int64), 1, "item")
    assert shards_touched(one_item, shard, "item") == [int(shard[5])]


def test_too_many_shards_is_an_input_error():
    data = tiny_dataset()
    with pytest.raises(InputError, match="--shards"):
        make_partition(data.train, "user", data.n_users + 1, seed=0)
