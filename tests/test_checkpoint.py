import json

import pytest
import torch

from mmunlearn.checkpoint import META, load_checkpoint, load_state, read_meta, save_checkpoint
from mmunlearn.errors import InputError
from mmunlearn.models.lightgcn import LightGCN, LightGCNConfig
from tests.conftest import tiny_dataset


def _saved(tmp_path, data):
    model = LightGCN(data, LightGCNConfig(dim=8, n_layers=2))
    opt = torch.optim.Adam(model.parameters())
    model.loss(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 3])).backward()
    opt.step()
    save_checkpoint(tmp_path / "run", model, data, model_config=model.config, optimizer=opt)
    return model


def test_round_trip_gives_identical_scores(tmp_path, tiny):
    model = _saved(tmp_path, tiny)
    loaded = load_checkpoint(tmp_path / "run", tiny)
    u0, i0 = model.final_embeddings()
    u1, i1 = loaded.model.final_embeddings()
    assert torch.equal(u0 @ i0.T, u1 @ i1.T)
    assert loaded.hash == read_meta(tmp_path / "run")["weights_sha256"]
    state = load_state(tmp_path / "run")
    assert "optimizer" in state and "torch_rng" in state


def test_checkpoint_for_other_dataset_is_refused(tmp_path, tiny):
    _saved(tmp_path, tiny)
    other = tiny_dataset(seed=1)
    with pytest.raises(InputError, match="refusing dataset"):
        load_checkpoint(tmp_path / "run", other)


def test_folder_without_meta_is_not_a_run(tmp_path, tiny):
    _saved(tmp_path, tiny)
    (tmp_path / "run" / META).unlink()
    with pytest.raises(InputError, match="not a run folder"):
        load_checkpoint(tmp_path / "run", tiny)


def test_meta_records_dataset_and_versions(tmp_path, tiny):
    _saved(tmp_path, tiny)
    meta = json.loads((tmp_path / "run" / META).read_text())
    assert meta["dataset"]["fingerprint"] == tiny.fingerprint()
    assert meta["versions"]["torch"] == torch.__version__
    assert not list((tmp_path / "run").glob("*.tmp"))
