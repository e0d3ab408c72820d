"""Real item text as a ``text`` modality: ``mmunlearn data encode-text``.

Input: a file of lines ``ASIN<space>text`` (one per item, e.g. IDGenRec's textual IDs of Amazon
Sports in ``../shared/datasets/amazon-sports/item_text_idgenrec.txt``) and an MMRec dataset folder.
Output: a dataset folder (the same ``.inter``, any other ``*_feat.npy`` hard-linked or copied) plus
``text_feat.npy`` — all-MiniLM-L6-v2 embeddings, row k = MMRec itemID k, provenance
``encoded:all-MiniLM-L6-v2`` — and an ``mmunlearn.json`` sidecar recording the text file's sha256, the
model and the alignment rule, so nobody mistakes it for the synthetic stand-in or for MMRec's own
features.

Why the checks are strict: a text file that is off by one row gives every item its neighbour's text,
and nothing downstream can tell. So the file is refused (one line naming the problem, nothing written)
unless every line has an ASIN and a non-empty text, no ASIN repeats, there is one line per item, and —
when an ASIN→itemID mapping is available (``--mapping``, or ``i_id_mapping.csv`` / ``item2id.json`` in
the dataset folder) — the ASIN set is exactly the mapping's. Without a mapping, MMRec's rule is used:
itemID = rank of the ASIN in byte-wise (C-locale) sorted order (MMRec's preprocessing numbers items
that way; checked on Baby's full mapping, see the Sports README).

Encoding is cached by sha256(text file) + model (``$MMUNLEARN_CACHE/text`` or
``~/.cache/mmunlearn/text``), in *file* order, so re-running re-encodes only when the text or the model
changes; the alignment is a cheap permutation applied afterwards. Everything is written into a build
folder beside the destination and renamed into place (:func:`mmunlearn.io.install_folder`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmunlearn.data.features import TEXT_DIM, TEXT_MODEL, TEXT_PROVENANCE, encode_texts
from mmunlearn.data.interactions import SIDECAR, _read_sidecar, load_folder
from mmunlearn.errors import InputError
from mmunlearn.io import atomic_write, atomic_write_json, install_folder

Encoder = Callable[[list[str]], np.ndarray]
#: bump when the sentence handling below changes, so old cache entries are not reused
RECIPE = "asin-text-v1: text after the first space, stripped, as is"
ALIGN_SORTED = "itemID = rank of the ASIN in byte-wise (C-locale) sorted order (MMRec's numbering)"
MAPPING_FILES = ("i_id_mapping.csv", "item2id.json")


@dataclass(frozen=True)
class AsinText:
    """The parsed text file, in file order."""

    path: Path
    sha256: str
    asins: list[str]
    texts: list[str]


def default_cache() -> Path:
    """``$MMUNLEARN_CACHE/text``, else ``~/.cache/mmunlearn/text``."""
    root = os.environ.get("MMUNLEARN_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "mmunlearn"
    return base / "text"


def read_asin_text(path: Path) -> AsinText:
    """Parse ``ASIN<space>text`` lines; refuse empty text, a missing ASIN and repeated ASINs."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such text file") from None
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc})") from None
    while lines and not lines[-1].strip():  # trailing blank lines only
        lines.pop()
    if not lines:
        raise InputError(f"{path}: empty text file")
    asins: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for no, line in enumerate(lines, 1):
        parts = line.strip().split(None, 1)
        if not parts:
            raise InputError(f"{path}:{no}: empty line (expected 'ASIN text')")
        asin = parts[0]
        text = parts[1].strip() if len(parts) > 1 else ""
        if not text:
            raise InputError(f"{path}:{no}: ASIN {asin} has empty text")
        if asin in seen:
            raise InputError(f"{path}:{no}: duplicate ASIN {asin} (first on line {seen[asin]})")
        seen[asin] = no
        asins.append(asin)
        texts.append(text)
    return AsinText(path=path, sha256=hashlib.sha256(raw).hexdigest(), asins=asins, texts=texts)


def read_mapping(path: Path) -> dict[str, int]:
    """ASIN → itemID from MMRec's ``i_id_mapping.csv`` (TSV ``asin itemID``) or ``item2id.json``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such mapping file")
    if path.suffix == ".json":
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot parse: {exc}") from None
        if not isinstance(obj, dict) or not all(isinstance(v, int) for v in obj.values()):
            raise InputError(f"{path}: expected a JSON object ASIN -> integer itemID")
        mapping = {str(k): int(v) for k, v in obj.items()}
    else:
        mapping = {}
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or lines[0].split("\t")[:2] != ["asin", "itemID"]:
            raise InputError(f"{path}: expected a tab-separated header 'asin<TAB>itemID'")
        for no, line in enumerate(lines[1:], 2):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or not fields[1].strip().isdigit():
                raise InputError(f"{path}:{no}: expected 'asin<TAB>itemID', got {line[:60]!r}")
            if fields[0] in mapping:
                raise InputError(f"{path}:{no}: duplicate ASIN {fields[0]}")
            mapping[fields[0]] = int(fields[1])
    ids = sorted(mapping.values())
    if ids != list(range(len(ids))):
        raise InputError(f"{path}: itemIDs must be exactly 0..{len(ids) - 1}, each once")
    return mapping


def find_mapping(folder: Path) -> Path | None:
    for name in MAPPING_FILES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def align(parsed: AsinText, n_items: int, mapping: dict[str, int] | None = None,
          mapping_name: str = "mapping") -> tuple[np.ndarray, str]:
    """``order`` with ``order[item_id]`` = line index of that item's text, and the rule used."""
    n = len(parsed.asins)
    if n != n_items:
        raise InputError(f"{parsed.path}: {n} lines, but the dataset has {n_items} items (one line per item)")
    if mapping is not None:
        if len(mapping) != n_items:
            raise InputError(f"{mapping_name}: maps {len(mapping)} ASINs, but the dataset has {n_items} items")
        missing = [a for a in parsed.asins if a not in mapping]
        if missing:
            raise InputError(f"{parsed.path}: ASIN {missing[0]} is not in {mapping_name} "
                             f"({len(missing)} of {n} ASINs unmatched)")
        order = np.empty(n_items, dtype=np.int64)
        order[[mapping[a] for a in parsed.asins]] = np.arange(n)
        return order, f"itemID from {mapping_name}"
    keys = [a.encode("utf-8") for a in parsed.asins]
    order = np.array(sorted(range(n), key=keys.__getitem__), dtype=np.int64)
    return order, ALIGN_SORTED


def cache_key(text_sha256: str, model: str) -> str:
    return hashlib.sha256(f"{text_sha256}\n{model}\n{RECIPE}".encode()).hexdigest()[:32]


def cached_encoding(parsed: AsinText, model: str, cache: Path, encoder: Encoder | None = None,
                    log: Callable[[str], None] = lambda msg: None) -> tuple[np.ndarray, bool]:
    """File-order embeddings of ``parsed`` from ``cache`` or freshly encoded (then cached); + hit flag."""
    key = cache_key(parsed.sha256, model)
    path = Path(cache) / f"{key}.npy"
    if path.is_file():
        values = np.load(path, allow_pickle=False)
        if values.shape == (len(parsed.texts), TEXT_DIM) and np.isfinite(values).all():
            log(f"cache hit: {path}")
            return values.astype(np.float32, copy=False), True
        log(f"{path}: unusable cache entry (shape {values.shape}), re-encoding")
    log(f"encoding {len(parsed.texts)} texts with {model} (CPU; about a minute per 20k short texts) ...")
    values = np.asarray((encoder or encode_texts)(parsed.texts), dtype=np.float32)
    if values.shape != (len(parsed.texts), TEXT_DIM) or not np.isfinite(values).all():
        raise InputError(f"text encoder returned shape {values.shape} (or non-finite values) "
                         f"for {len(parsed.texts)} texts; expected ({len(parsed.texts)}, {TEXT_DIM})")
    atomic_write(path, lambda p: _save(p, values))
    atomic_write_json(path.with_suffix(".json"), {"model": model, "recipe": RECIPE, "text_sha256": parsed.sha256,
                                                  "source": str(parsed.path), "rows": len(parsed.texts),
                                                  "order": "file order"})
    return values, False


def _save(path: Path, values: np.ndarray) -> None:
    with open(path, "wb") as fh:  # np.save on a name would append ".npy" to the temp file
        np.save(fh, values, allow_pickle=False)


def resolve_folder(dataset: str | os.PathLike[str]) -> Path:
    """A dataset folder path, or a shared dataset name (``sports`` → ``../shared/datasets/amazon-sports``)."""
    path = Path(dataset).expanduser()
    if path.is_dir():
        return path
    from mmunlearn.data.registry import shared_dataset_path

    shared = shared_dataset_path(str(dataset)) if "/" not in str(dataset) else None
    if shared is None:
        raise InputError(f"{dataset}: no such dataset folder (a folder path or a shared name like 'sports')")
    return shared


def encode_text_folder(text_file: Path, dataset: str | os.PathLike[str], out: Path, *,
                       mapping: Path | None = None, cache: Path | None = None, model: str = TEXT_MODEL,
                       encoder: Encoder | None = None, force: bool = False,
                       log: Callable[[str], None] = lambda msg: None) -> Path:
    """Build ``out``: ``dataset``'s folder plus ``text_feat.npy`` encoded from ``text_file``; return ``out``.

    Every check runs before anything is written; a complete ``out`` built from the same text, model,
    alignment and interactions is kept as is (unless ``force``).
    """
    folder = resolve_folder(dataset)
    out = Path(out)
    if out.resolve() == folder.resolve():
        raise InputError(f"{out}: --out must differ from the dataset folder (it is rebuilt and swapped in)")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    data = load_folder(folder)
    inters = sorted(folder.glob("*.inter"))
    parsed = read_asin_text(Path(text_file))
    mapping_path = Path(mapping) if mapping is not None else find_mapping(folder)
    table = read_mapping(mapping_path) if mapping_path is not None else None
    order, rule = align(parsed, data.n_items, table, str(mapping_path))
    record = {
        "source_file": str(Path(text_file).resolve()), "source_sha256": parsed.sha256, "model": model,
        "recipe": RECIPE, "alignment": rule, "n_items": data.n_items,
        "mapping_sha256": hashlib.sha256(mapping_path.read_bytes()).hexdigest() if mapping_path else None,
        "inter_sha256": hashlib.sha256(inters[0].read_bytes()).hexdigest(),
        "provenance": TEXT_PROVENANCE if encoder is None else "encoded:custom",
    }
    if not force and _up_to_date(out, record):
        log(f"{out}: up to date (same text, model, alignment and interactions)")
        return out
    values, _ = cached_encoding(parsed, model, Path(cache) if cache is not None else default_cache(), encoder, log)
    aligned = np.ascontiguousarray(values[order])
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.build.", dir=out.parent))
    try:
        _write_folder(build, folder, inters[0], aligned, record, data.name, data.n_users, parsed)
        install_folder(build, out)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    log(f"{out}: text_feat.npy {aligned.shape[0]}x{aligned.shape[1]} [{record['provenance']}], {rule}")
    return out


def _up_to_date(out: Path, record: dict[str, Any]) -> bool:
    side = out / SIDECAR
    if not (side.is_file() and (out / "text_feat.npy").is_file()):
        return False
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return meta.get("text_encoding") == record


def _write_folder(build: Path, folder: Path, inter: Path, values: np.ndarray, record: dict[str, Any],
                  name: str, n_users: int, parsed: AsinText) -> None:
    shutil.copy2(inter, build / inter.name)
    meta = _read_sidecar(folder / SIDECAR)
    modalities = dict(meta.get("modalities", {}))
    for npy in sorted(folder.glob("*_feat.npy")):
        if npy.name == "text_feat.npy":
            continue  # replaced by the encoded text
        try:
            os.link(npy, build / npy.name)
        except OSError:
            shutil.copy2(npy, build / npy.name)
    _save(build / "text_feat.npy", values)
    modalities["text"] = {
        "provenance": record["provenance"],
        "source": f"{record['model']} embeddings of {parsed.path.name} (sha256 {parsed.sha256[:16]}...), "
                  f"{record['alignment']}",
    }
    source = meta.get("source") or f"interactions of {folder}"
    sidecar = {**meta, "name": meta.get("name") or f"{name}-text", "n_users": n_users,
               "n_items": record["n_items"], "modalities": modalities,
               "source": f"{source}; text modality encoded here from {parsed.path.name}",
               "text_encoding": record}
    (build / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")


__all__ = ["AsinText", "read_asin_text", "read_mapping", "align", "cached_encoding", "encode_text_folder",
           "default_cache", "cache_key", "resolve_folder"]
