"""The cached Retrain: a training killed half-way goes on from its snapshot, and its time is counted whole."""

import pytest
import torch

from mmunlearn.train import trainer
from mmunlearn.workflow.compare import retrain_cached

from ..unlearn.conftest import make_ctx


class Killed(Exception):
    pass


def test_an_interrupted_retrain_goes_on_from_its_snapshot_and_counts_the_earlier_time(
        tmp_path, monkeypatch, trained, small_data):
    ctx = make_ctx(trained, small_data, "interaction")
    straight, _, straight_log = retrain_cached(ctx, 7, tmp_path / "a")

    real_epoch, calls = trainer.train_epoch, []

    def dying_epoch(*args, **kwargs):
        if len(calls) == 3:
            raise Killed
        calls.append(1)
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_epoch", dying_epoch)
    monkeypatch.setattr(trainer, "Snapshots", _every_epoch(trainer.Snapshots))
    with pytest.raises(Killed):
        retrain_cached(ctx, 7, tmp_path / "b")
    assert list((tmp_path / "b").glob(".*.progress/snapshot.json"))  # the snapshot of epoch 3 waits there
    monkeypatch.setattr(trainer, "train_epoch", real_epoch)
    resumed, seconds, log = retrain_cached(ctx, 7, tmp_path / "b")

    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert log["resumed"]["epoch"] == 3
    assert seconds >= log["resumed"]["seconds"] > 0 and log["cpu_seconds"] >= log["resumed"]["cpu_seconds"]
    assert log["epochs_run"] == straight_log["epochs_run"]
    assert not list((tmp_path / "b").glob(".*progress*"))  # removed once the Retrain is saved
    _, cached_seconds, _ = retrain_cached(ctx, 7, tmp_path / "b")  # and reused from the cache
    assert cached_seconds == pytest.approx(seconds)


def _every_epoch(cls):
    """The trainer's Snapshots, writing at the end of every epoch instead of every few minutes."""
    def make(folder, key, every_seconds=300.0):
        return cls(folder, key, 0.0)
    return make
