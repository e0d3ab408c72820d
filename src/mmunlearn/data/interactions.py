"""The MMRec interaction format and the in-memory dataset every other layer consumes.

An ``.inter`` file is a TSV with a header: ``userID itemID x_label`` or
``userID itemID rating timestamp x_label`` (0 train, 1 valid, 2 test), 0-based ids. The id space is
fixed by the *whole* file (all splits), never by train alone, so that deleting data later never
renumbers users or items and checkpoints stay comparable.

Every check raises :class:`~mmunlearn.errors.InputError` with one line that names the file, the line
and the field at fault, because a user can only fix what the message points at.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmunlearn.data.features import Modality, load_npy_modality
from mmunlearn.errors import InputError
from mmunlearn.io import atomic_write_bytes

SPLITS = ("train", "valid", "test")
#: the columns an ``.inter`` file must name (others, e.g. rating/timestamp, are carried but ignored)
REQUIRED_COLUMNS = ("userID", "itemID", "x_label")
#: optional sidecar in a dataset folder recording provenance of ``*_feat.npy`` files
SIDECAR = "mmunlearn.json"
#: the sidecar's field holding :attr:`InteractionData.held_out`
HELD_OUT_KEY = "held_out_pairs"
#: beyond this an id is not a 0-based index but an unmapped raw id (and would allocate absurdly)
_MAX_ID_SLACK = 10
_INT32_MAX = np.iinfo(np.int32).max
_INT64_MAX = np.iinfo(np.int64).max


def pairs_to_csr(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary user×item CSR with sorted indices (the canonical form fingerprints are taken on)."""
    data = np.ones(len(users), dtype=np.float32)
    mat = sp.csr_matrix((data, (users, items)), shape=(n_users, n_items), dtype=np.float32)
    mat.sum_duplicates()
    mat.sort_indices()
    mat.data[:] = 1.0
    return mat


def _canonical(mat: sp.spmatrix | sp.sparray, split: str, name: str) -> sp.csr_matrix:
    """Return ``mat`` as a binary float32 CSR with sorted, unique indices (copying only if needed).

    Fingerprints hash the index structure, so two logically equal splits must have byte-equal
    structure no matter how a caller built them (unsorted, explicit zeros, counts > 1).
    """
    if not sp.issparse(mat):
        raise InputError(f"dataset {name!r}: split {split!r} must be a scipy sparse matrix, got {type(mat)}")
    if (isinstance(mat, sp.csr_matrix) and mat.dtype == np.float32 and mat.has_canonical_format
            and mat.indices.dtype == np.int32 and bool(np.all(mat.data == 1.0))):
        return mat
    csr = sp.csr_matrix(mat, dtype=np.float32, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    csr.sort_indices()
    if csr.data.size and csr.data.min() < 0:
        raise InputError(f"dataset {name!r}: split {split!r} has negative entries")
    csr.data[:] = 1.0
    csr.indices = csr.indices.astype(np.int32, copy=False)
    csr.indptr = csr.indptr.astype(np.int32, copy=False) if csr.nnz <= _INT32_MAX else csr.indptr
    return csr


def _held_out_pairs(pairs: Any, shape: tuple[int, int], where: str) -> np.ndarray:
    """``pairs`` as an ``[n, 2]`` int64 array inside the id space ``shape`` (a one-line error otherwise)."""
    try:
        arr = np.asarray(pairs)
    except ValueError as exc:  # ragged lists
        raise InputError(f"{where}: held-out pairs must be [n, 2] integer (user, item) ids ({exc})") from None
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{where}: held-out pairs must be [n, 2] integer (user, item) ids, "
                         f"got shape {arr.shape} of {arr.dtype}")
    for col, (what, n) in enumerate((("user", shape[0]), ("item", shape[1]))):
        bad = np.flatnonzero((arr[:, col] < 0) | (arr[:, col] >= n))
        if len(bad):
            raise InputError(f"{where}: held-out pair {int(bad[0])} has {what} id {int(arr[bad[0], col])} "
                             f"outside 0..{n - 1}")
    return arr.astype(np.int64, copy=False)


@dataclass(frozen=True, eq=False)
class InteractionData:
    """Train/valid/test interactions as binary CSR matrices over a fixed id space, plus content.

    Immutable on purpose: unlearning produces a *new* ``InteractionData`` (``with_train``), so the
    original and the retained data can be held side by side and fingerprinted independently.
    Equality is identity (``eq=False``): comparing sparse matrices element-wise is never what a
    caller wants, and identity makes instances usable as cache keys.
    """

    name: str
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    modalities: dict[str, Modality] = field(default_factory=dict)
    source: str = ""
    #: ``[n, 2]`` (user, item) pairs held out of every split — a calibration fold's training interactions
    #: (``data/calibration.py``). Never trained or evaluated on; TRU's ``item_reference = "fold-pairs"``
    #: ranks them as the pairs of items a model saw only as negatives, for the users who liked them. Not
    #: training data, so outside :meth:`fingerprint` (a model trained on the splits does not depend on them)
    held_out: np.ndarray | None = None

    def __post_init__(self) -> None:
        for s in SPLITS:
            object.__setattr__(self, s, _canonical(getattr(self, s), s, self.name))
        if self.held_out is not None:
            object.__setattr__(self, "held_out", _held_out_pairs(self.held_out, self.train.shape,
                                                                 f"dataset {self.name!r}"))
        shapes = {s: getattr(self, s).shape for s in SPLITS}
        if len(set(shapes.values())) != 1:
            raise InputError(f"dataset {self.name!r}: split shapes differ: {shapes}")
        if self.train.nnz == 0:
            raise InputError(f"dataset {self.name!r} ({self.source}): the train split is empty")
        object.__setattr__(self, "modalities", dict(self.modalities))
        for key, mod in self.modalities.items():
            if not isinstance(mod, Modality):
                raise InputError(f"dataset {self.name!r}: modality {key!r} is not a Modality")
            if key != mod.name:
                raise InputError(f"dataset {self.name!r}: modality stored under {key!r} is named {mod.name!r}")
            if mod.values.shape[0] != self.n_items:
                raise InputError(
                    f"dataset {self.name!r}: modality {mod.name!r} ({mod.source}) has "
                    f"{mod.values.shape[0]} rows, expected n_items={self.n_items}"
                )

    @property
    def n_users(self) -> int:
        return int(self.train.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.train.shape[1])

    def split(self, name: str) -> sp.csr_matrix:
        if name not in SPLITS:
            raise InputError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    def pairs(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) int64 arrays of one split, sorted by user then item."""
        mat = self.split(name)
        users = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(mat.indptr))
        return users, mat.indices.astype(np.int64)

    def fingerprint(self) -> str:
        """SHA-256 over the id space and the three splits' structure (not content features).

        Checkpoints and graph caches are keyed by this, so a model is never silently evaluated or
        reused on data it was not built from.
        """
        h = hashlib.sha256()
        h.update(f"{self.n_users}x{self.n_items}".encode())
        for s in SPLITS:
            m = self.split(s)
            h.update(s.encode())
            h.update(np.ascontiguousarray(m.indptr, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(m.indices, dtype=np.int64).tobytes())
        return h.hexdigest()

    def content_fingerprint(self) -> str:
        """Fingerprint of the modalities (names, provenance, bytes): checkpoints record it beside
        :meth:`fingerprint`, so a content file swapped for another of the same shape is noticed on load.

        Kept separate from :meth:`fingerprint` on purpose: forget requests are bound to the interaction
        fingerprint, and a request stays valid whatever content the model reads. Memoised (the instance
        is immutable; hashing a 4096-d image table takes about a second).
        """
        cached = self.__dict__.get("_content_fp")
        if cached is not None:
            return cached
        h = hashlib.sha256()
        for name in sorted(self.modalities):
            mod = self.modalities[name]
            h.update(f"{name}:{mod.provenance}:{mod.values.shape}".encode())
            h.update(memoryview(np.ascontiguousarray(mod.values)).cast("B"))
        digest = h.hexdigest()
        object.__setattr__(self, "_content_fp", digest)
        return digest

    def with_train(self, train: sp.csr_matrix, name: str | None = None) -> InteractionData:
        """Same id space, valid/test and content; a new train split (e.g. the retain data)."""
        return replace(self, train=train, name=name or self.name)

    def with_modalities(self, modalities: dict[str, Modality]) -> InteractionData:
        return replace(self, modalities=dict(modalities))

    def cold_users(self) -> np.ndarray:
        """Users with no train interaction (they exist in the id space; models must not crash on them)."""
        return np.flatnonzero(np.diff(self.train.indptr) == 0)

    def cold_items(self) -> np.ndarray:
        """Items with no train interaction (e.g. seen only in valid/test, or only as negatives)."""
        return np.flatnonzero(np.bincount(self.train.indices, minlength=self.n_items) == 0)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "interactions": {s: int(self.split(s).nnz) for s in SPLITS},
            "cold_users": int(len(self.cold_users())),
            "cold_items": int(len(self.cold_items())),
            "modalities": {n: {"shape": list(m.values.shape), "provenance": m.provenance, "source": m.source}
                           for n, m in self.modalities.items()},
            "fingerprint": self.fingerprint()[:16],
        }


# --------------------------------------------------------------------------------------------------
# building from arrays (shared by the reader, the embedded dataset and the fetchers)


def from_arrays(users: np.ndarray, items: np.ndarray, labels: np.ndarray, *, name: str, source: str,
                n_users: int | None = None, n_items: int | None = None,
                where: Callable[[int], str] | None = None, declared_in: str | None = None) -> InteractionData:
    """Validate id/label arrays and build the dataset; ``where(row)`` names the row in errors.

    ``n_users``/``n_items`` may widen the id space beyond ``max id + 1`` (a catalogue with items that
    nobody interacted with), never narrow it, and never beyond what the data makes plausible (a side
    file declaring 2**40 users would otherwise allocate terabytes); ``declared_in`` names their source.
    """
    where = where or (lambda row: f"{source}: row {row}")
    users, items, labels = (np.asarray(a, dtype=np.int64).ravel() for a in (users, items, labels))
    if not (len(users) == len(items) == len(labels)):
        raise InputError(f"{source}: users/items/labels lengths differ: {len(users)}/{len(items)}/{len(labels)}")
    if len(users) == 0:
        raise InputError(f"{source}: no interactions")
    n_users = _id_space(users, "userID", n_users, where, space="n_users", declared_in=declared_in)
    n_items = _id_space(items, "itemID", n_items, where, space="n_items", declared_in=declared_in)
    bad = np.flatnonzero((labels < 0) | (labels > 2))
    if bad.size:
        raise InputError(f"{where(int(bad[0]))}: field x_label={labels[bad[0]]} is not 0 (train), 1 (valid) or 2 (test)")
    _check_duplicates(users * n_items + items, users, items, where)
    if not (labels == 0).any():
        raise InputError(f"{source}: the train split (x_label=0) is empty")
    splits = {s: pairs_to_csr(users[labels == k], items[labels == k], n_users, n_items)
              for k, s in enumerate(SPLITS)}
    return InteractionData(name=name, source=source, **splits)


def _id_space(ids: np.ndarray, field_name: str, given: int | None, where: Callable[[int], str], *,
              space: str = "", declared_in: str | None = None) -> int:
    """Size of one id space: ``max id + 1`` (or ``given``), after rejecting ids that cannot be indices."""
    neg = np.flatnonzero(ids < 0)
    if neg.size:
        raise InputError(f"{where(int(neg[0]))}: field {field_name}={ids[neg[0]]} is negative (ids are 0-based)")
    top = int(ids.argmax())
    size = int(ids[top]) + 1
    n_distinct = len(np.unique(ids))
    bound = min(_INT32_MAX, _MAX_ID_SLACK * n_distinct + 1000)
    if given is not None:
        if given < size:
            raise InputError(f"{where(top)}: field {field_name}={ids[top]} is outside the id space of {given}")
        if given > max(bound, size):  # a declared catalogue may widen the id space, within reason
            raise InputError(f"{declared_in or 'declared id space'}: {space}={given} is far beyond the "
                             f"{n_distinct} distinct {field_name}s in the data (at most {max(bound, size)} "
                             f"accepted); fix the declared size")
        return int(given)
    if size > bound:
        raise InputError(
            f"{where(top)}: field {field_name}={ids[top]} is far beyond the {n_distinct} distinct ids; "
            f"ids must be 0-based contiguous indices (remap raw ids first)"
        )
    return size


def _check_duplicates(key: np.ndarray, users: np.ndarray, items: np.ndarray,
                      where: Callable[[int], str]) -> None:
    """Reject a (user, item) pair listed twice, in any splits: it would silently count once."""
    order = np.argsort(key, kind="stable")
    same = key[order][1:] == key[order][:-1]
    if not same.any():
        return
    second = order[1:][same]
    row = int(second.min())  # the earliest row that repeats an earlier one
    first = int(np.flatnonzero(key == key[row])[0])
    raise InputError(
        f"{where(row)}: duplicate pair userID={users[row]} itemID={items[row]} "
        f"(first at {where(first)})"
    )


def per_user_split(users: np.ndarray, valid_fraction: float, test_fraction: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Labels for a per-user random split: ``round(f·n)`` valid and test items per user.

    A positive fraction guarantees at least one valid / test item where the user has enough
    interactions for that *and* one train item (train is filled first: 1 item → train, 2 → train +
    test, 3+ → train + valid + test), so no user is cold because of the split.
    """
    users = np.asarray(users, dtype=np.int64)
    n = len(users)
    order = np.lexsort((rng.random(n), users))  # group by user, random order within
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes)
    size = np.repeat(sizes, sizes)
    n_test = np.where(test_fraction > 0, np.maximum(1, np.rint(test_fraction * size)), 0).astype(np.int64)
    n_valid = np.where(valid_fraction > 0, np.maximum(1, np.rint(valid_fraction * size)), 0).astype(np.int64)
    n_test = np.minimum(n_test, size - 1)  # keep one train item
    n_valid = np.minimum(n_valid, size - 1 - n_test)
    sorted_labels = np.zeros(n, dtype=np.int64)
    sorted_labels[rank >= size - n_test] = 2
    sorted_labels[(rank >= size - n_test - n_valid) & (rank < size - n_test)] = 1
    labels = np.empty(n, dtype=np.int64)
    labels[order] = sorted_labels
    return labels


# --------------------------------------------------------------------------------------------------
# the .inter reader


def read_inter(path: Path, name: str | None = None, *, n_users: int | None = None,
               n_items: int | None = None, declared_in: str | None = None) -> InteractionData:
    """Read and validate an MMRec ``.inter`` file (3 or 5 tab-separated columns, with header).

    Only the id and label columns must be integers; rating/timestamp columns (which MMRec writes as
    floats) are carried by the format but not needed here, so they are not parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such interaction file")
    cols, n_cols = _read_header(path)
    table = _fast_parse(path, cols, n_cols)
    if table is None:
        table = _slow_parse(path, cols, n_cols)
    if table.shape[0] == 0:
        raise InputError(f"{path}: no interactions after the header")
    line_numbers: list[np.ndarray] = []

    def where(row: int) -> str:  # line numbers are only worked out when an error needs one
        if not line_numbers:
            line_numbers.append(_data_line_numbers(path))
        return f"{path}:{line_numbers[0][row]}"

    return from_arrays(table[:, 0], table[:, 1], table[:, 2], name=name or path.stem, source=str(path),
                       n_users=n_users, n_items=n_items, where=where, declared_in=declared_in)


def _read_header(path: Path) -> tuple[list[int], int]:
    """Column positions of userID/itemID/x_label and the column count, from the header line."""
    try:
        with path.open("r", encoding="utf-8-sig") as fh:
            first = fh.readline().rstrip("\r\n")
    except UnicodeDecodeError:
        raise InputError(f"{path}:1: not UTF-8 text; expected an MMRec .inter TSV") from None
    if not first.strip():
        raise InputError(f"{path}:1: empty file or empty header; expected '{chr(9).join(REQUIRED_COLUMNS)}'")
    header = first.split("\t")
    if all(_is_int(f.strip()) for f in first.replace(",", " ").split()):
        raise InputError(f"{path}:1: missing header; the first line must be 'userID<TAB>itemID<TAB>x_label' "
                         f"(or with rating and timestamp), got {first!r}")
    if len(header) == 1 and len(first.replace(",", " ").split()) > 1:
        raise InputError(f"{path}:1: header is not tab-separated (MMRec .inter files are TSV): {first!r}")
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path}:1: header lacks column(s) {', '.join(missing)}; got {header}")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InputError(f"{path}:1: header repeats column(s) {', '.join(dup)}")
    if len(header) not in (3, 5):
        raise InputError(f"{path}:1: expected 3 or 5 columns, header has {len(header)}: {header}")
    return [header.index(c) for c in REQUIRED_COLUMNS], len(header)


def _fast_parse(path: Path, cols: list[int], n_cols: int) -> np.ndarray | None:
    """numpy's C parser for the common, clean case; ``None`` sends the caller to the slow path.

    ``usecols`` skips the float columns, so the field count per row is checked separately: the file
    must hold exactly ``rows × (n_cols - 1)`` tabs after the header (a row with fewer fields already
    fails the parse, so equal totals mean every row is right).
    """
    try:
        with warnings.catch_warnings():  # an empty body is reported by the caller, not as a warning
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, dtype=np.int64, delimiter="\t", skiprows=1, usecols=cols, ndmin=2,
                               comments=None, encoding="utf-8-sig")
    except (ValueError, OverflowError, UnicodeDecodeError):
        return None
    raw = path.read_bytes()
    body = raw[raw.find(b"\n") + 1:] if b"\n" in raw else b""
    if body.count(b"\t") != table.shape[0] * (n_cols - 1):
        return None
    return table


def _slow_parse(path: Path, cols: list[int], n_cols: int) -> np.ndarray:
    """Line-by-line parse that stops at, and names, the first bad line and field."""
    names = dict(zip(cols, REQUIRED_COLUMNS, strict=True))
    rows: list[list[int]] = []
    try:
        with path.open("r", encoding="utf-8-sig") as fh:
            fh.readline()
            for lineno, line in enumerate(fh, start=2):
                if not line.strip():
                    continue
                parts = line.rstrip("\r\n").split("\t")
                if len(parts) != n_cols:
                    raise InputError(f"{path}:{lineno}: expected {n_cols} tab-separated fields, got {len(parts)}")
                row = []
                for c in cols:
                    text = parts[c].strip()
                    if not _is_int(text):
                        raise InputError(f"{path}:{lineno}: field {names[c]}={text!r} is not an integer")
                    value = int(text)
                    if abs(value) > _INT64_MAX:
                        raise InputError(f"{path}:{lineno}: field {names[c]}={text} does not fit in 64 bits "
                                         f"(ids must be 0-based contiguous indices; remap raw ids first)")
                    row.append(value)
                rows.append(row)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def _data_line_numbers(path: Path) -> np.ndarray:
    """1-based file line number of each data row (blank lines are skipped by both parsers)."""
    out = []
    with path.open("r", encoding="utf-8-sig", errors="replace") as fh:
        fh.readline()
        for lineno, line in enumerate(fh, start=2):
            if line.strip():
                out.append(lineno)
    return np.asarray(out, dtype=np.int64)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def write_inter(data: InteractionData, path: Path) -> Path:
    """Write ``data``'s splits as a 3-column MMRec ``.inter`` TSV, atomically.

    Rows are sorted by user, then label, then item (the layout of the shared Amazon files).
    """
    users, items, labels = [], [], []
    for k, s in enumerate(SPLITS):
        u, i = data.pairs(s)
        users.append(u)
        items.append(i)
        labels.append(np.full(len(u), k, dtype=np.int64))
    return write_inter_table(path, np.concatenate(users), np.concatenate(items), np.concatenate(labels))


def write_inter_table(path: Path, users: np.ndarray, items: np.ndarray, labels: np.ndarray, *,
                      rating: np.ndarray | None = None, timestamp: np.ndarray | None = None) -> Path:
    """Write rows as an ``.inter`` TSV (5 columns when rating and timestamp are given), atomically.

    Rows are written sorted by user, label, item, so the same table always gives the same bytes.
    """
    path = Path(path)
    cols: dict[str, np.ndarray] = {"userID": np.asarray(users), "itemID": np.asarray(items)}
    if (rating is None) != (timestamp is None):
        raise InputError(f"{path}: give both rating and timestamp (5 columns) or neither (3 columns)")
    if rating is not None and timestamp is not None:
        cols["rating"] = np.asarray(rating)
        cols["timestamp"] = np.asarray(timestamp)
    cols["x_label"] = np.asarray(labels)
    n = len(cols["userID"])
    for key, values in cols.items():
        if values.ndim != 1 or len(values) != n:
            raise InputError(f"{path}: column {key} has shape {values.shape}, expected ({n},)")
    order = np.lexsort((cols["itemID"], cols["x_label"], cols["userID"]))
    lines = ["\t".join(cols)]
    lines += ["\t".join(map(str, row)) for row in zip(*(c[order].tolist() for c in cols.values()), strict=True)]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


# --------------------------------------------------------------------------------------------------
# dataset folders


def load_folder(path: Path, name: str | None = None) -> InteractionData:
    """Read an MMRec dataset folder: exactly one ``*.inter`` plus any ``<modality>_feat.npy`` files.

    Each ``<prefix>_feat.npy`` becomes the modality ``<prefix>`` (any number of them), provenance
    ``real`` unless the optional ``mmunlearn.json`` sidecar says otherwise (e.g. text embedded here
    from item titles is ``encoded:all-MiniLM-L6-v2``). Features are memory-mapped, never unpickled.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such dataset folder")
    inters = sorted(path.glob("*.inter"))
    if len(inters) != 1:
        found = ", ".join(p.name for p in inters) or "none"
        raise InputError(f"{path}: a dataset folder needs exactly one *.inter file, found {found}")
    meta = _read_sidecar(path / SIDECAR)
    data = read_inter(inters[0], name=name or meta.get("name") or inters[0].stem,
                      n_users=meta.get("n_users"), n_items=meta.get("n_items"), declared_in=str(path / SIDECAR))
    declared = meta.get("modalities", {})
    modalities: dict[str, Modality] = {}
    for npy in sorted(path.glob("*_feat.npy")):
        mod_name = npy.name[: -len("_feat.npy")]
        info = declared.get(mod_name, {})
        modalities[mod_name] = load_npy_modality(
            npy, mod_name, n_items=data.n_items, provenance=info.get("provenance", "real"),
            source=info.get("source"))
    missing = sorted(set(declared) - set(modalities))
    if missing:
        raise InputError(f"{path / SIDECAR}: declares modality {missing[0]!r} but {missing[0]}_feat.npy is missing")
    source = meta.get("source") or str(inters[0])
    held = meta.get(HELD_OUT_KEY)
    if held is not None and not isinstance(held, list):
        raise InputError(f"{path / SIDECAR}: field {HELD_OUT_KEY} must be a list of [user, item] pairs")
    if held is not None:
        held = _held_out_pairs(held, data.train.shape, f"{path / SIDECAR}: field {HELD_OUT_KEY}")
    return replace(data, modalities=modalities, source=source, held_out=held)


def _read_sidecar(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot parse: {exc}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("modalities", {}), dict):
        raise InputError(f"{path}: expected a JSON object with an optional 'modalities' object")
    for key in ("n_users", "n_items"):
        if key in meta and not (isinstance(meta[key], int) and not isinstance(meta[key], bool) and meta[key] > 0):
            raise InputError(f"{path}: field {key} must be a positive integer, got {meta[key]!r}")
    return meta


def write_dataset_folder(data: InteractionData, out: Path, extra: dict | None = None) -> Path:
    """Write ``data`` as a dataset folder :func:`load_folder` reads back (``.inter``, every modality as
    ``<name>_feat.npy`` with its provenance in the sidecar, plus ``extra`` sidecar fields), atomically:
    built beside ``out`` and renamed into place."""
    import shutil
    import tempfile

    from mmunlearn.io import install_folder

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.build.", dir=out.parent))
    try:
        write_inter(data, build / f"{data.name}.inter")
        modalities = {}
        for name, mod in data.modalities.items():
            with open(build / f"{name}_feat.npy", "wb") as fh:
                np.save(fh, np.asarray(mod.values, dtype=np.float32), allow_pickle=False)
            modalities[name] = {"provenance": mod.provenance, "source": mod.source}
        sidecar = {"name": data.name, "source": data.source, "n_users": data.n_users, "n_items": data.n_items,
                   "modalities": modalities, **(extra or {})}
        if data.held_out is not None:
            sidecar[HELD_OUT_KEY] = data.held_out.tolist()
        (build / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
        install_folder(build, out)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return out
