"""The cached Retrain: a training killed half-way goes on from its snapshot, and its time is counted whole."""

import pytest
import torch

from mmunlearn.workflow.compare import retrain_cached
from tests.conftest import TrainingKilled

from ..unlearn.conftest import make_ctx


def test_an_interrupted_retrain_goes_on_from_its_snapshot_and_counts_the_earlier_time(
        tmp_path, kill_training, trained, small_data):
    ctx = make_ctx(trained, small_data, "interaction")
    straight, _, straight_log = retrain_cached(ctx, 7, tmp_path / "a")

    kill_training(4)
    with pytest.raises(TrainingKilled):
        retrain_cached(ctx, 7, tmp_path / "b")
    assert list((tmp_path / "b").glob(".*.progress/snapshot.json"))  # the snapshot of epoch 3 waits there
    resumed, seconds, log = retrain_cached(ctx, 7, tmp_path / "b")

    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert log["resumed"]["epoch"] == 3
    assert seconds >= log["resumed"]["seconds"] > 0 and log["cpu_seconds"] >= log["resumed"]["cpu_seconds"]
    assert log["epochs_run"] == straight_log["epochs_run"]
    assert not list((tmp_path / "b").glob(".*progress*"))  # removed once the Retrain is saved
    _, cached_seconds, _ = retrain_cached(ctx, 7, tmp_path / "b")  # and reused from the cache
    assert cached_seconds == pytest.approx(seconds)
