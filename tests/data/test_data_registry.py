"""Named datasets: embedded Baby, synthetic, movielens-100k cache, paths, shared folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmunlearn.data import registry
from mmunlearn.data.interactions import SPLITS, read_inter
from mmunlearn.data.registry import load_dataset, shared_dataset_path
from mmunlearn.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


def test_embedded_baby_has_the_published_counts() -> None:
    data = load_dataset("baby")
    assert data.name == "baby"
    assert (data.n_users, data.n_items) == (19_445, 7_050)
    assert [data.split(s).nnz for s in SPLITS] == [119_674, 20_559, 20_559]
    assert "embedded" in data.source and "McAuley" in data.source
    assert data.modalities == {}


def test_embedded_baby_is_exactly_the_shared_file() -> None:
    path = SHARED / "amazon-baby" / "baby.inter"
    if not path.is_file():
        pytest.skip(f"shared dataset absent: {path}")
    assert load_dataset("baby").fingerprint() == read_inter(path).fingerprint()


def test_embedded_files_are_small_and_attributed() -> None:
    folder = Path(registry.__file__).parent / "embedded"
    assert (folder / "baby.npz").stat().st_size < 1_000_000
    notice = (folder / "ATTRIBUTION.md").read_text()
    assert "McAuley" in notice and "research use" in notice.lower() and "text_feat.npy" in notice


def test_synthetic_uses_the_seed() -> None:
    assert load_dataset("synthetic", seed=1).fingerprint() == load_dataset("synthetic", seed=1).fingerprint()
    assert load_dataset("synthetic", seed=1).fingerprint() != load_dataset("synthetic", seed=2).fingerprint()


def test_movielens_not_fetched_tells_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMUNLEARN_CACHE", str(tmp_path))
    with pytest.raises(InputError, match="run: mmunlearn data fetch movielens-100k"):
        load_dataset("movielens-100k")
    assert list(tmp_path.iterdir()) == []


def test_paths_folders_and_unknown_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "mine.inter").write_text("userID\titemID\tx_label\n0\t1\t0\n1\t0\t0\n1\t1\t2\n")
    np.save(folder / "image_feat.npy", np.ones((2, 3), np.float32))
    by_folder = load_dataset(str(folder))
    assert by_folder.modalities["image"].provenance == "real"
    by_file = load_dataset(str(folder / "mine.inter"))
    assert by_file.fingerprint() == by_folder.fingerprint() and by_file.modalities == {}
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a dataset"):
        load_dataset(str(tmp_path / "notes.txt"))
    monkeypatch.setenv(registry.SHARED_ENV, str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="unknown dataset 'nope': expected one of baby, synthetic, movielens-100k"):
        load_dataset("nope")


def test_shared_dataset_path_finds_env_and_amazon_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "amazon-toys").mkdir()
    monkeypatch.setenv(registry.SHARED_ENV, str(tmp_path))
    assert shared_dataset_path("toys") == (tmp_path / "amazon-toys").resolve()
    assert shared_dataset_path("amazon-toys") == (tmp_path / "amazon-toys").resolve()
    assert shared_dataset_path("absent-dataset") is None


def test_shared_dataset_path_finds_the_real_shared_folder() -> None:
    if not (SHARED / "amazon-baby").is_dir():
        pytest.skip("shared datasets absent")
    assert shared_dataset_path("amazon-baby") == (SHARED / "amazon-baby").resolve()
    sports = load_dataset("sports")
    assert (sports.n_users, sports.n_items) == (35_598, 18_357)
