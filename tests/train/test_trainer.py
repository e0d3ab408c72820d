import numpy as np
import pytest
import torch

from mmunlearn.evaluate.ranking import evaluate_split
from mmunlearn.models.lightgcn import LightGCN, LightGCNConfig
from mmunlearn.train.trainer import TrainConfig, seed_everything, train


def _train(data, seed=0, epochs=6):
    seed_everything(seed)
    model = LightGCN(data, LightGCNConfig(dim=16, n_layers=2))
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=1e-2, min_epochs=2, patience=3, seed=seed, threads=1)
    return model, train(model, data, cfg, show_progress=False)


def test_training_is_reproducible_per_seed(tiny):
    a, _ = _train(tiny, seed=3)
    b, _ = _train(tiny, seed=3)
    c, _ = _train(tiny, seed=4)
    for (na, ta), (_, tb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(ta, tb), na
    assert not torch.equal(a.user_emb, c.user_emb)


def test_model_is_left_at_best_valid_epoch(tiny):
    model, result = _train(tiny, epochs=8)
    best = max(h.get("valid_recall@20", -1) for h in result.history)
    assert result.best_valid["recall@20"] == pytest.approx(best)
    assert evaluate_split(model, tiny, "valid", ks=(20,))["recall@20"] == pytest.approx(best)
    assert 1 <= result.best_epoch <= result.epochs_run


def test_early_stopping_waits_for_min_epochs(tiny):
    seed_everything(0)
    model = LightGCN(tiny, LightGCNConfig(dim=8, n_layers=1))
    cfg = TrainConfig(epochs=12, batch_size=64, lr=0.0, min_epochs=9, patience=1, threads=1)
    result = train(model, tiny, cfg, show_progress=False)  # lr 0: never improves after epoch 1
    assert result.epochs_run == 9


def test_training_improves_over_initialisation(tiny):
    seed_everything(0)
    fresh = LightGCN(tiny, LightGCNConfig(dim=16, n_layers=2))
    before = evaluate_split(fresh, tiny, "valid", ks=(10,))["recall@10"]
    model, _ = _train(tiny, epochs=15)
    after = evaluate_split(model, tiny, "valid", ks=(10,))["recall@10"]
    assert after > before + 0.05
    assert np.isfinite(after)


def test_training_leaves_no_gradients_or_optimiser_state_behind(tiny, monkeypatch):
    """Evaluation and the best-state restore run without the last step's gradients and Adam moments,
    which on Clothing's MGCN are worth 3× the feature table (the memory target of issue #2)."""
    from mmunlearn.train import trainer

    seen = []
    real_evaluate = trainer.evaluate_split

    def spying_evaluate(model, *args, **kwargs):
        seen.append([p.grad is None for p in model.parameters()])
        return real_evaluate(model, *args, **kwargs)

    monkeypatch.setattr(trainer, "evaluate_split", spying_evaluate)
    captured = []
    real_make = trainer.make_optimizer
    monkeypatch.setattr(trainer, "make_optimizer", lambda m, lr: captured.append(real_make(m, lr)) or captured[-1])
    model, result = _train(tiny, epochs=3)
    assert seen and all(all(flags) for flags in seen)
    assert all(p.grad is None for p in model.parameters())
    assert len(captured) == 1 and not captured[0].state
