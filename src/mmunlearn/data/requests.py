"""Forget requests: what to delete from the training data, how it is sampled, validated and applied.

A request deletes *training* interactions, named explicitly —

- ``users``: clear these users' whole training history ("delete my history");
- ``items``: every training interaction of these items (a licence revoked);
- ``pairs``: these (user, item) training interactions (poisoned or disputed events)

— or sampled by regime (SPEC §5): ``user`` (a ratio of the users with training history; selection
``random``, ``core`` = most active first, ``edge`` = least active first, as in CURE4Rec), ``item``
(a ratio of the items, same selections by popularity) or ``interaction`` (a ratio of the training pairs,
uniformly). The deleted set is the union of the three parts.

Requests are JSON documents with a **content hash**: the SHA-256 of the canonical JSON of what is
deleted (sorted users, items, pairs) and the fingerprint of the dataset it was drawn from. Provenance
(regime, ratio, seed, selection) is recorded beside it but is not part of the hash: two requests that
delete the same data are the same request (the deletion ledger relies on this).

Applying a request never renumbers anything: the id space stays fixed, the retain data is
``data.with_train(train ∖ D_f)`` with valid/test/content unchanged, and what depends on the deletion —
the forget pairs, the users/items whose *whole* training history went — is returned beside it.
Models rebuild their graphs on the retain train matrix (``Recommender.see_retain``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from mmunlearn.data.interactions import InteractionData, pairs_to_csr
from mmunlearn.data.pairs import contains, csr_pairs, pair_keys
from mmunlearn.errors import InputError
from mmunlearn.io import atomic_write_json

FORMAT = "mmunlearn.forget_request"
FORMAT_VERSION = 1
REGIMES = ("user", "item", "interaction")
SELECTIONS = ("random", "core", "edge")


def _ids(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"forget request: {what} must be integer ids, got {arr.dtype} values")
    return np.unique(arr.astype(np.int64).ravel())


def _pairs(values: Any) -> np.ndarray:
    arr = np.asarray(values if isinstance(values, np.ndarray) else list(values))
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"forget request: pairs must be a list of [user, item], got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise InputError(f"forget request: pairs must be integer ids, got {arr.dtype} values")
    arr = np.unique(arr.astype(np.int64), axis=0)  # sorted by user, then item
    return arr


@dataclass(frozen=True, eq=False)
class ForgetRequest:
    """What to delete (users, items, pairs; sorted, unique) plus where it came from.

    Build one with :meth:`explicit`, :func:`sample_request` or :meth:`from_dict` / :func:`load_request`.
    """

    users: np.ndarray
    items: np.ndarray
    pairs: np.ndarray
    regime: str = "explicit"
    sampling: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)

    # ----- construction --------------------------------------------------------------------------
    @classmethod
    def explicit(cls, users: Any = (), items: Any = (), pairs: Any = (),
                 data: InteractionData | None = None, regime: str = "explicit",
                 sampling: dict[str, Any] | None = None) -> ForgetRequest:
        """A request naming its users / items / (user, item) pairs; ``data`` binds it to a dataset."""
        dataset = {"name": data.name, "fingerprint": data.fingerprint()} if data is not None else {}
        return cls(users=_ids(users, "users"), items=_ids(items, "items"), pairs=_pairs(pairs),
                   regime=regime, sampling=dict(sampling or {}), dataset=dataset)

    # ----- identity ------------------------------------------------------------------------------
    def content(self) -> dict[str, Any]:
        """The canonical content the hash is taken over (what is deleted, and from which dataset)."""
        return {
            "dataset_fingerprint": self.dataset.get("fingerprint"),
            "users": [int(u) for u in self.users],
            "items": [int(i) for i in self.items],
            "pairs": [[int(u), int(i)] for u, i in self.pairs],
        }

    @property
    def hash(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def is_empty(self) -> bool:
        return len(self.users) == 0 and len(self.items) == 0 and len(self.pairs) == 0

    def describe(self) -> str:
        parts = [f"{len(self.users)} users", f"{len(self.items)} items", f"{len(self.pairs)} pairs"]
        src = f" ({self.regime}" + (f", {self.sampling}" if self.sampling else "") + ")"
        return f"request {self.hash[:12]}: " + ", ".join(parts) + src

    # ----- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "hash": self.hash,
            "regime": self.regime,
            "sampling": dict(self.sampling),
            "dataset": dict(self.dataset),
            **{k: v for k, v in self.content().items() if k != "dataset_fingerprint"},
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any], where: str = "forget request") -> ForgetRequest:
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        if obj.get("format", FORMAT) != FORMAT:
            raise InputError(f"{where}: not a forget request (format {obj.get('format')!r})")
        if obj.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
            raise InputError(f"{where}: unsupported format_version {obj.get('format_version')!r}")
        unknown = set(obj) - {"format", "format_version", "hash", "regime", "sampling", "dataset", "users",
                              "items", "pairs"}
        if unknown:
            raise InputError(f"{where}: unknown key(s) {sorted(unknown)}")
        _check_record_types(obj, where)
        try:
            req = cls(users=_ids(obj.get("users", []), "users"), items=_ids(obj.get("items", []), "items"),
                      pairs=_pairs(obj.get("pairs", [])), regime=str(obj.get("regime", "explicit")),
                      sampling=dict(obj.get("sampling") or {}), dataset=dict(obj.get("dataset") or {}))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise InputError(f"{where}: {exc}") from None
            raise InputError(f"{where}: malformed ids: {exc}") from None
        want = obj.get("hash")
        if want is not None and want != req.hash:
            raise InputError(f"{where}: content hash mismatch (file says {str(want)[:12]}, content is "
                             f"{req.hash[:12]}): the request was edited or corrupted")
        return req

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "forget request") -> ForgetRequest:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON: {exc}") from None
        return cls.from_dict(obj, where)

    def merged_with(self, other: ForgetRequest) -> ForgetRequest:
        """The union of two requests on the same base dataset (lineage of repeated unlearning)."""
        pairs = np.concatenate([self.pairs, other.pairs]) if len(self.pairs) + len(other.pairs) else ()
        return ForgetRequest(users=_ids(np.concatenate([self.users, other.users]), "users"),
                             items=_ids(np.concatenate([self.items, other.items]), "items"),
                             pairs=_pairs(pairs), regime="merged", dataset=dict(self.dataset))


def _check_record_types(obj: dict[str, Any], where: str) -> None:
    """The provenance fields a request carries must have their JSON types (``"fingerprint": 5`` is refused)."""
    for key in ("sampling", "dataset"):
        if obj.get(key) is not None and not isinstance(obj[key], dict):
            raise InputError(f"{where}: field {key!r} must be an object, got {type(obj[key]).__name__}")
    for key in ("hash", "regime"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise InputError(f"{where}: field {key!r} must be a string, got {obj[key]!r}")
    dataset = obj.get("dataset") or {}
    for key in ("fingerprint", "name"):
        if dataset.get(key) is not None and not isinstance(dataset[key], str):
            raise InputError(f"{where}: field 'dataset.{key}' must be a string, got {dataset[key]!r}")
    for key in ("users", "items", "pairs"):
        if key in obj and not isinstance(obj[key], list):
            raise InputError(f"{where}: field {key!r} must be a list, got {type(obj[key]).__name__}")
    for key in ("users", "items"):
        for v in obj.get(key, []):
            integral = isinstance(v, int) or (isinstance(v, float) and v.is_integer())
            if not integral or isinstance(v, bool) or not _INT64_MIN <= v <= _INT64_MAX:
                raise InputError(f"{where}: {key} must be integer ids within 64 bits, got {v!r}")
    for p in obj.get("pairs", []):
        if not (isinstance(p, list) and len(p) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and _INT64_MIN <= v <= _INT64_MAX for v in p)):
            raise InputError(f"{where}: pairs must be [user, item] integer ids within 64 bits, got {p!r}")


_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def save_request(path: Path, request: ForgetRequest) -> None:
    """Write a request as JSON (atomically: a crash never leaves half a file)."""
    atomic_write_json(Path(path), request.to_dict())


def load_request(path: Path) -> ForgetRequest:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such request file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); a forget request is JSON") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    return ForgetRequest.from_json(text, where=str(path))


# ----- sampling --------------------------------------------------------------------------------------
def _pick(degrees: np.ndarray, n: int, selection: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` ids among those with degree > 0: random, most active first (core) or least (edge)."""
    cand = np.flatnonzero(degrees > 0)
    if selection == "random":
        return np.sort(rng.choice(cand, size=n, replace=False))
    tie = rng.random(len(cand))  # seeded tie-break among equal degrees
    deg = degrees[cand]
    order = np.lexsort((tie, -deg if selection == "core" else deg))
    return np.sort(cand[order[:n]])


def sample_request(data: InteractionData, regime: str, ratio: float = 0.05, seed: int = 0,
                   selection: str = "random") -> ForgetRequest:
    """A seeded request of the given regime deleting ``ratio`` of the users / items / training pairs."""
    if regime not in REGIMES:
        raise InputError(f"unknown regime {regime!r}; expected one of {', '.join(REGIMES)}")
    if selection not in SELECTIONS:
        raise InputError(f"unknown selection {selection!r}; expected one of {', '.join(SELECTIONS)}")
    if not 0.0 < ratio < 1.0:
        raise InputError(f"ratio must be in (0, 1), got {ratio}")
    if regime == "interaction" and selection != "random":
        raise InputError("the interaction regime samples pairs uniformly: selection must be 'random'")
    rng = np.random.default_rng(seed)
    train = data.train
    if regime == "user":
        deg = np.diff(train.indptr)
        n = max(1, int(round(ratio * int((deg > 0).sum()))))
        kwargs = {"users": _pick(deg, n, selection, rng)}
    elif regime == "item":
        deg = np.bincount(train.indices, minlength=data.n_items)
        n = max(1, int(round(ratio * int((deg > 0).sum()))))
        kwargs = {"items": _pick(deg, n, selection, rng)}
    else:
        n = max(1, int(round(ratio * train.nnz)))
        idx = rng.choice(train.nnz, size=n, replace=False)
        users, items = csr_pairs(train)
        kwargs = {"pairs": np.stack([users[idx], items[idx]], axis=1)}
    req = ForgetRequest.explicit(data=data, regime=regime, **kwargs,
                                 sampling={"ratio": float(ratio), "seed": int(seed), "selection": selection})
    validate_request(req, data)
    return req


def sample_sequence(data: InteractionData, regime: str, n: int, ratio: float = 0.01, seed: int = 0,
                    selection: str = "random") -> list[ForgetRequest]:
    """``n`` requests in arrival order, request ``k`` sampled (seed ``seed + k``) on the data that
    remains after requests ``0..k-1``: what a stream of erasure requests looks like, each valid on the
    checkpoint the previous one produced (each carries the fingerprint of the data it was drawn from)."""
    if n < 1:
        raise InputError(f"a request sequence needs n >= 1, got {n}")
    out: list[ForgetRequest] = []
    current = data
    for k in range(n):
        req = sample_request(current, regime, ratio, seed + k, selection)
        out.append(req)
        current = apply_request(current, req).retain
    return out


# ----- validation and application --------------------------------------------------------------------
def validate_request(request: ForgetRequest, data: InteractionData) -> sp.csr_matrix:
    """Check a request against ``data``; returns the forget matrix (CSR). One-line InputErrors."""
    tag = f"forget request {request.hash[:12]}"
    fp = request.dataset.get("fingerprint")
    if fp is not None and fp != data.fingerprint():
        raise InputError(
            f"{tag} was drawn from dataset {request.dataset.get('name')!r} (fingerprint {fp[:12]}), not from "
            f"{data.name!r} (fingerprint {data.fingerprint()[:12]}); sample it from this data/run instead")
    if request.is_empty():
        raise InputError(f"{tag} is empty: it names no users, items or pairs")
    for what, ids, n in (("user", request.users, data.n_users), ("item", request.items, data.n_items)):
        bad = ids[(ids < 0) | (ids >= n)]
        if bad.size:
            raise InputError(f"{tag}: unknown {what} id {bad[0]} (valid: 0..{n - 1})")
    if len(request.pairs):
        for col, what, n in ((0, "user", data.n_users), (1, "item", data.n_items)):
            ids = request.pairs[:, col]
            bad = np.flatnonzero((ids < 0) | (ids >= n))
            if bad.size:
                u, i = request.pairs[bad[0]]
                raise InputError(f"{tag}: pair ({u}, {i}) has unknown {what} id (valid: 0..{n - 1})")
    train = data.train
    udeg = np.diff(train.indptr)
    idle = request.users[udeg[request.users] == 0]
    if idle.size:
        raise InputError(f"{tag}: user {idle[0]} has no training interactions to delete "
                         f"({idle.size} such user(s); already deleted?)")
    ideg = np.bincount(train.indices, minlength=data.n_items)
    idle = request.items[ideg[request.items] == 0]
    if idle.size:
        raise InputError(f"{tag}: item {idle[0]} has no training interactions to delete "
                         f"({idle.size} such item(s); already deleted?)")
    if len(request.pairs):
        ok = contains(pair_keys(train), request.pairs[:, 0], request.pairs[:, 1], data.n_items)
        if not ok.all():
            u, i = request.pairs[np.flatnonzero(~ok)[0]]
            raise InputError(f"{tag}: pair ({u}, {i}) is not a training interaction "
                             f"({int((~ok).sum())} such pair(s))")
    forget = _forget_matrix(request, data)
    if forget.nnz >= train.nnz:
        raise InputError(f"{tag} would delete all {train.nnz} training interactions and leave the train "
                         f"split empty")
    return forget


def _forget_matrix(request: ForgetRequest, data: InteractionData) -> sp.csr_matrix:
    train = data.train.tocsr()
    rows = np.zeros(data.n_users, dtype=bool)
    rows[request.users] = True
    cols = np.zeros(data.n_items, dtype=bool)
    cols[request.items] = True
    users, items = csr_pairs(train)
    hit = rows[users] | cols[items]
    if len(request.pairs):
        keys = np.sort(request.pairs[:, 0] * data.n_items + request.pairs[:, 1])
        hit |= contains(keys, users, items, data.n_items)
    return pairs_to_csr(users[hit], items[hit], data.n_users, data.n_items)


@dataclass(frozen=True)
class AppliedRequest:
    """A request applied to a dataset: the retain data and everything that depends on the deletion."""

    request: ForgetRequest
    original: InteractionData
    retain: InteractionData
    forget: sp.csr_matrix  # [n_users, n_items] binary, the deleted training pairs
    deleted_users: np.ndarray  # users with training history before, none after
    deleted_items: np.ndarray  # items with training history before, none after

    @property
    def forget_pairs(self) -> np.ndarray:
        """``[n, 2]`` (user, item) of the deleted pairs, sorted by user then item."""
        return np.stack(csr_pairs(self.forget), axis=1)

    @property
    def forget_users(self) -> np.ndarray:
        """Users that lost at least one training pair."""
        return np.flatnonzero(np.diff(self.forget.indptr) > 0)

    @property
    def forget_items(self) -> np.ndarray:
        """Items that lost at least one training pair."""
        return np.flatnonzero(np.bincount(self.forget.indices, minlength=self.forget.shape[1]) > 0)

    def counts(self) -> dict[str, int]:
        return {"forget_pairs": int(self.forget.nnz), "retain_pairs": int(self.retain.train.nnz),
                "request_users": int(len(self.request.users)), "request_items": int(len(self.request.items)),
                "request_pairs": int(len(self.request.pairs)), "deleted_users": int(len(self.deleted_users)),
                "deleted_items": int(len(self.deleted_items)),
                "touched_users": int(len(self.forget_users)), "touched_items": int(len(self.forget_items))}


def apply_request(data: InteractionData, request: ForgetRequest) -> AppliedRequest:
    """Validate and apply: retain = train ∖ D_f over the same id space (valid/test/content untouched)."""
    forget = validate_request(request, data)
    retain_train = data.train - forget
    retain_train.eliminate_zeros()
    retain_train = pairs_to_csr(*csr_pairs(retain_train), data.n_users, data.n_items)
    retain = data.with_train(retain_train, name=data.name)
    before_u, after_u = np.diff(data.train.indptr) > 0, np.diff(retain_train.indptr) > 0
    before_i = np.bincount(data.train.indices, minlength=data.n_items) > 0
    after_i = np.bincount(retain_train.indices, minlength=data.n_items) > 0
    return AppliedRequest(request=request, original=data, retain=retain, forget=forget,
                          deleted_users=np.flatnonzero(before_u & ~after_u),
                          deleted_items=np.flatnonzero(before_i & ~after_i))


__all__ = ["ForgetRequest", "AppliedRequest", "sample_request", "sample_sequence", "validate_request", "apply_request",
           "save_request", "load_request", "REGIMES", "SELECTIONS"]
