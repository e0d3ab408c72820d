"""A training killed half-way and started again on its snapshot is the uninterrupted training, bit for bit."""

import json

import pytest
import torch

from mmunlearn.data.features import synthetic_modality
from mmunlearn.models.lightgcn import LightGCN, LightGCNConfig
from mmunlearn.models.miggt import MIGGT, MIGGTConfig
from mmunlearn.train.trainer import TrainConfig, seed_everything, train


class Killed(Exception):
    """Stands for the process dying at the end of an epoch."""


def _content(tiny):
    return tiny.with_modalities({"text": synthetic_modality("text", tiny.n_items, 8, seed=0)})


def _build(name, data, seed):
    seed_everything(seed)
    if name == "lightgcn":
        return LightGCN(data, LightGCNConfig(dim=16, n_layers=2))
    # dropout and the global attention's samples draw from torch's stream, and lr decays: all of it resumes
    return MIGGT(data, MIGGTConfig(dim=8, hidden=16))


def _cfg(seed=0, epochs=7):
    return TrainConfig(epochs=epochs, batch_size=64, lr=1e-2, lr_decay=0.9, lr_decay_every=3, min_epochs=2,
                       patience=3, eval_every=2, seed=seed, threads=1)


def _run(name, data, seed=0, snapshot_dir=None, kill_after=None, cfg=None):
    model = _build(name, data, seed)

    def on_epoch(record):
        if kill_after is not None and record["epoch"] == kill_after:
            raise Killed

    result = train(model, data, cfg or _cfg(seed), show_progress=False, on_epoch=on_epoch,
                   snapshot_dir=snapshot_dir, snapshot_seconds=0.0)
    return model, result


def _same_weights(a, b):
    for (name, ta), (_, tb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(ta, tb), name


@pytest.mark.parametrize("name", ["lightgcn", "miggt"])
def test_a_resumed_training_is_the_uninterrupted_one(tmp_path, tiny, name):
    data = _content(tiny) if name == "miggt" else tiny
    straight, expected = _run(name, data)
    with pytest.raises(Killed):
        _run(name, data, snapshot_dir=tmp_path / "snap", kill_after=5)  # the snapshot of epoch 4 is the last
    assert json.loads((tmp_path / "snap" / "snapshot.json").read_text())["loop"]["epoch"] == 4
    resumed, result = _run(name, data, snapshot_dir=tmp_path / "snap")
    _same_weights(straight, resumed)
    assert result.resumed["epoch"] == 4 and result.resumed["seconds"] > 0
    assert (result.best_epoch, result.best_valid, result.epochs_run) == \
        (expected.best_epoch, expected.best_valid, expected.epochs_run)
    assert [h["loss"] for h in result.history] == [h["loss"] for h in expected.history]
    assert result.seconds >= result.resumed["seconds"]


def test_snapshots_do_not_change_the_training(tmp_path, tiny):
    straight, _ = _run("lightgcn", tiny)
    snapped, _ = _run("lightgcn", tiny, snapshot_dir=tmp_path / "snap")
    _same_weights(straight, snapped)


def test_a_snapshot_of_another_training_is_not_resumed(tmp_path, tiny):
    """Keyed by what the training depends on: another seed, other settings or other content start afresh."""
    with pytest.raises(Killed):
        _run("lightgcn", tiny, seed=1, snapshot_dir=tmp_path / "snap", kill_after=3)
    straight, _ = _run("lightgcn", tiny, seed=0)
    fresh, result = _run("lightgcn", tiny, seed=0, snapshot_dir=tmp_path / "snap")
    assert result.resumed == {}
    _same_weights(straight, fresh)

    data = _content(tiny)
    with pytest.raises(Killed):
        _run("miggt", data, snapshot_dir=tmp_path / "mm", kill_after=3)
    other = tiny.with_modalities({"text": synthetic_modality("text", tiny.n_items, 8, seed=5)})
    _, result = _run("miggt", other, snapshot_dir=tmp_path / "mm")
    assert result.resumed == {}


def test_a_half_written_snapshot_leaves_the_previous_one(tmp_path, tiny, monkeypatch):
    from mmunlearn.train import snapshot

    with pytest.raises(Killed):
        _run("lightgcn", tiny, snapshot_dir=tmp_path / "snap", kill_after=3)  # snapshots of epochs 1, 2

    def dying_save(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(snapshot.torch, "save", dying_save)
    with pytest.raises(Killed):
        _run("lightgcn", tiny, snapshot_dir=tmp_path / "snap")  # dies writing epoch 3's
    monkeypatch.undo()
    assert json.loads((tmp_path / "snap" / "snapshot.json").read_text())["loop"]["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["snap"]  # no staging folder left behind
    straight, _ = _run("lightgcn", tiny)
    resumed, result = _run("lightgcn", tiny, snapshot_dir=tmp_path / "snap")
    assert result.resumed["epoch"] == 2
    _same_weights(straight, resumed)
