import json

import pytest
import torch

from mmunlearn.checkpoint import META, load_checkpoint, load_state, read_meta, save_checkpoint
from mmunlearn.data.features import synthetic_modality
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


# ----- damaged or swapped files (issue 14): one InputError each, never a traceback -----------------------
def _damage_weights(run, kind):
    w = run / "model.safetensors"
    if kind == "pickle":
        torch.save({"x": torch.zeros(2)}, w)
    elif kind == "truncated":
        w.write_bytes(w.read_bytes()[:100])
    elif kind == "empty":
        w.write_bytes(b"")
    elif kind == "missing":
        w.unlink()
    elif kind == "folder":
        w.unlink()
        w.mkdir()


@pytest.mark.parametrize("kind", ["pickle", "truncated", "empty", "missing", "folder"])
def test_damaged_weights_file_is_one_line_error(tmp_path, tiny, kind):
    _saved(tmp_path, tiny)
    _damage_weights(tmp_path / "run", kind)
    with pytest.raises(InputError, match="model.safetensors") as exc:
        load_checkpoint(tmp_path / "run", tiny)
    assert "\n" not in str(exc.value)


def test_weights_swapped_for_another_models_are_refused_by_hash(tmp_path, tiny):
    _saved(tmp_path, tiny)
    other = LightGCN(tiny, LightGCNConfig(dim=8, n_layers=2))  # same shapes, other values
    save_checkpoint(tmp_path / "other", other, tiny, model_config=other.config)
    (tmp_path / "run" / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(InputError, match="differs from weights_sha256"):
        load_checkpoint(tmp_path / "run", tiny)


@pytest.mark.parametrize("edit, message", [
    (lambda m: [m], "expected a JSON object"),
    (lambda m: {k: v for k, v in m.items() if k != "dataset"}, "'dataset' missing"),
    (lambda m: {**m, "dataset": {**m["dataset"], "fingerprint": 5}}, "dataset.fingerprint"),
    (lambda m: {**m, "model_config": {**m["model_config"], "dim": -4}}, "dim must be > 0"),
    (lambda m: {k: v for k, v in m.items() if k != "weights_sha256"}, "weights_sha256"),
])
def test_damaged_metadata_is_one_line_error(tmp_path, tiny, edit, message):
    _saved(tmp_path, tiny)
    meta_path = tmp_path / "run" / META
    meta_path.write_text(json.dumps(edit(json.loads(meta_path.read_text()))))
    with pytest.raises(InputError, match=message):
        load_checkpoint(tmp_path / "run", tiny)


def test_non_utf8_metadata_is_one_line_error(tmp_path, tiny):
    _saved(tmp_path, tiny)
    (tmp_path / "run" / META).write_bytes(b'{"format_version": 1, "model": "\xff"}')
    with pytest.raises(InputError, match="not UTF-8"):
        read_meta(tmp_path / "run")


def test_swapped_content_of_the_same_shape_is_noticed(tmp_path, tiny):
    import numpy as np

    from mmunlearn.data.features import Modality

    rng = np.random.default_rng(0)
    with_image = tiny.with_modalities({"image": Modality("image", rng.random((tiny.n_items, 4)), "real")})
    _saved(tmp_path, with_image)
    load_checkpoint(tmp_path / "run", with_image)
    swapped = tiny.with_modalities({"image": Modality("image", rng.random((tiny.n_items, 4)), "real")})
    with pytest.raises(InputError, match="content features"):
        load_checkpoint(tmp_path / "run", swapped)


def test_runs_saved_before_content_fingerprints_still_load(tmp_path, tiny):
    _saved(tmp_path, tiny)
    meta_path = tmp_path / "run" / META
    meta = json.loads(meta_path.read_text())
    del meta["dataset"]["content_fingerprint"]
    meta_path.write_text(json.dumps(meta))
    assert load_checkpoint(tmp_path / "run", tiny).hash == meta["weights_sha256"]


def test_checkpoint_files_are_not_private_0600(tmp_path, tiny):
    _saved(tmp_path, tiny)
    for f in (tmp_path / "run").iterdir():
        assert f.stat().st_mode & 0o044, f"{f.name} is readable only by its owner"


def test_an_unlearned_miggt_with_detached_items_loads_under_its_hash(tmp_path, tiny):
    """MIG-GT's detached-item table exists only after an unlearning reset; a checkpoint holding it must
    load (and hash) like any other, and one without it must not grow it."""
    import numpy as np

    from mmunlearn.models.miggt import MIGGT, MIGGTConfig

    data = tiny.with_modalities({"text": synthetic_modality("text", tiny.n_items, 8, seed=0)})
    model = MIGGT(data, MIGGTConfig(dim=8, hidden=16))
    save_checkpoint(tmp_path / "plain", model, data, model_config=model.config)
    assert load_checkpoint(tmp_path / "plain", data).model.item_override is None
    model.reset_rows(np.zeros(0, dtype=np.int64), np.array([1, 3]), seed=0)
    save_checkpoint(tmp_path / "run", model, data, model_config=model.config)
    loaded = load_checkpoint(tmp_path / "run", data).model
    assert list(loaded.detached_items()) == [1, 3]
    assert torch.equal(model.final_embeddings()[1], loaded.final_embeddings()[1])
