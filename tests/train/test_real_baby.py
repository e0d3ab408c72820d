"""Real-data checks (marked slow; CI runs them when ../shared/datasets is present)."""

import pytest

from mmunlearn.data.interactions import read_inter
from mmunlearn.evaluate.ranking import evaluate_split
from mmunlearn.models.lightgcn import LightGCN, LightGCNConfig
from mmunlearn.train.trainer import TrainConfig, seed_everything, train
from tests.conftest import shared_dataset

pytestmark = pytest.mark.slow


def test_lightgcn_learns_real_baby_in_a_few_epochs():
    data = read_inter(shared_dataset("amazon-baby") / "baby.inter")
    seed_everything(0)
    model = LightGCN(data, LightGCNConfig())
    before = evaluate_split(model, data, "valid", ks=(20,))["recall@20"]
    cfg = TrainConfig(epochs=3, min_epochs=3, lr=LightGCN.recommended_lr, threads=1)
    result = train(model, data, cfg, show_progress=False)
    assert before < 0.01
    # a popularity-like ranking after one epoch already gives ~0.06; the full run reaches 0.077 on test
    assert result.best_valid["recall@20"] > 0.055
