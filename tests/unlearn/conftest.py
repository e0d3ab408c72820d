"""Fixtures for the unlearning tests: a small planted dataset and a briefly trained LightGCN on it."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from mmunlearn.data.interactions import InteractionData
from mmunlearn.data.requests import apply_request, sample_request
from mmunlearn.data.synthetic import SyntheticConfig, generate
from mmunlearn.models.base import Recommender
from mmunlearn.models.registry import build_model, model_config
from mmunlearn.train.trainer import TrainConfig, seed_everything, train
from mmunlearn.unlearn.base import UnlearnContext

FAST_TRAIN = TrainConfig(epochs=4, min_epochs=1, patience=3, batch_size=512, lr=1e-2, threads=1, eval_every=2)


@pytest.fixture(scope="session")
def small_data() -> InteractionData:
    return generate(SyntheticConfig(n_users=150, n_items=90, interactions_per_user=10, seed=3))


@pytest.fixture(scope="session")
def trained(small_data):
    torch.set_num_threads(1)
    seed_everything(0)
    cfg = model_config("lightgcn", ("test", {"dim": 16, "n_layers": 2}))
    model = build_model("lightgcn", small_data, cfg)
    train(model, small_data, FAST_TRAIN, show_progress=False)
    return model, cfg


def make_ctx(trained, data, regime: str, ratio: float = 0.1, seed: int = 0) -> UnlearnContext:
    model, cfg = trained
    applied = apply_request(data, sample_request(data, regime, ratio, seed))
    return UnlearnContext(original=model, applied=applied, model_name="lightgcn", model_config=cfg,
                          train_config=FAST_TRAIN, seed=seed)


class ToyMultimodal(Recommender):
    """A minimal multimodal backbone for tests: ID tables + one Linear projection per modality.

    item = id_item + W_image · image_feat + W_text · text_feat; user = id_user. No graph.
    Branches: id (both tables), image (W_image), text (W_text).
    """

    name = "toy-mm"
    modality_aware = True

    def __init__(self, data: InteractionData, config=None, dim: int = 8) -> None:
        super().__init__(data, config)
        gen = torch.Generator().manual_seed(0)
        self.user_emb = nn.Parameter(torch.randn(self.n_users, dim, generator=gen) * 0.1)
        self.item_emb = nn.Parameter(torch.randn(self.n_items, dim, generator=gen) * 0.1)
        self.image = nn.Linear(data.modalities["image"].dim, dim, bias=False)
        self.text = nn.Linear(data.modalities["text"].dim, dim, bias=False)
        self.register_buffer("img_feat", torch.as_tensor(data.modalities["image"].values))
        self.register_buffer("txt_feat", torch.as_tensor(data.modalities["text"].values))

    def propagate(self):
        items = self.item_emb + self.image(self.img_feat) + self.text(self.txt_feat)
        return self.user_emb, items

    def rebuild_graphs(self, train: sp.csr_matrix) -> None:
        self.rebuilt = int(train.nnz)

    def parameter_groups(self):
        return {"user_id": ["user_emb"], "item_id": ["item_emb"], "image_proj": ["image.weight"],
                "text_proj": ["text.weight"]}

    def modality_branches(self):
        return {"id": ["user_emb", "item_emb"], "image": ["image.weight"], "text": ["text.weight"]}

    def embedding_tables(self):
        return {"user_emb": "user", "item_emb": "item"}


@pytest.fixture(scope="session")
def toy_trained(small_data):
    return _fit_briefly(ToyMultimodal, small_data)


def _fit_briefly(cls: type[Recommender], data: InteractionData) -> Recommender:
    from mmunlearn.train.trainer import train_epoch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = cls(data)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    rng = np.random.default_rng(0)
    for _ in range(15):
        train_epoch(model, opt, data, 512, rng, torch.device("cpu"))
    return model


class ToyContentItems(ToyMultimodal):
    """A backbone without item rows (like MIG-GT): item = W_image · image_feat + W_text · text_feat."""

    name = "toy-content"

    def __init__(self, data: InteractionData, config=None, dim: int = 8) -> None:
        super().__init__(data, config, dim)
        del self.item_emb

    def propagate(self):
        return self.user_emb, self.image(self.img_feat) + self.text(self.txt_feat)

    def parameter_groups(self):
        return {"user_id": ["user_emb"], "image_proj": ["image.weight"], "text_proj": ["text.weight"]}

    def modality_branches(self):
        return {"id": ["user_emb"], "image": ["image.weight"], "text": ["text.weight"]}

    def embedding_tables(self):
        return {"user_emb": "user"}


@pytest.fixture(scope="session")
def content_trained(small_data):
    return _fit_briefly(ToyContentItems, small_data)


def toy_ctx(model: Recommender, data: InteractionData, regime: str, ratio: float = 0.1,
            seed: int = 0) -> UnlearnContext:
    applied = apply_request(data, sample_request(data, regime, ratio, seed))
    return UnlearnContext(original=model, applied=applied, model_name=model.name, model_config=None, seed=seed)


@pytest.fixture(scope="session")
def miggt_trained(small_data):
    """A briefly trained MIG-GT (no item rows; items detached by the exact part's reset)."""
    torch.set_num_threads(1)
    seed_everything(0)
    cfg = model_config("miggt", ("test", {"dim": 16, "hidden": 32, "hops": "id=2,image=1,text=1"}))
    model = build_model("miggt", small_data, cfg)
    train(model, small_data, FAST_TRAIN, show_progress=False)
    return model


@functools.cache
def content_fold_case(backbone: str) -> tuple[UnlearnContext, np.ndarray]:
    """A planted dataset whose image *is* the item factors (what users like is visible in the content),
    a 20 % calibration fold with its interactions kept aside, a briefly trained model and an item request.
    Cached: the target tests and the selection tests share one training per backbone."""
    from mmunlearn.data.calibration import hold_out_items
    from mmunlearn.data.synthetic import one_signal_modality

    data, fold = hold_out_items(generate(one_signal_modality("image", n_users=300, n_items=200, seed=5)), 0.2,
                                seed=1)
    torch.set_num_threads(1)
    seed_everything(0)
    over = {"dim": 16, "hidden": 32, "hops": "id=2,image=1,text=1"} if backbone == "miggt" else \
        {"dim": 16, "n_layers": 2}
    cfg = model_config(backbone, ("test", over))
    model = build_model(backbone, data, cfg)
    epochs = 20 if backbone == "miggt" else 12
    train(model, data, TrainConfig(epochs=epochs, min_epochs=epochs, patience=99, batch_size=512, lr=1e-2,
                                   threads=1, eval_every=epochs), show_progress=False)
    applied = apply_request(data, sample_request(data, "item", 0.1, 0))
    return UnlearnContext(original=model, applied=applied, model_name=backbone, model_config=cfg, seed=0), fold
