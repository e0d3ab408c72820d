"""What a grid *is*: its typed config (datasets × backbones × regimes × methods × seeds and every
setting), how a config file and CLI flags layer onto it, and the cells it consists of.

Nothing here runs anything or touches a results folder, so the report, the plots and the CLI can read a
grid without importing the runner.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mmunlearn.config import build, load_config_file, option
from mmunlearn.errors import InputError
from mmunlearn.workflow.compare import DEFAULT_METHODS
from mmunlearn.workflow.request import NOISE_SEED_OFFSET

#: the list-valued fields: a grid may be *extended* along these, nothing else may change
AXES = ("datasets", "backbones", "regimes", "methods", "seeds")
#: grid fields that act in one regime only: a stored grid without that regime computed no cell with them, so
#: ``--extend`` may change them while it adds the regime (``results._superset_problems``)
REGIME_ONLY_FIELDS = {"user_attack": "user", "user_attack_epochs": "user", "user_attack_mf_dim": "user",
                      "user_attack_k": "user"}
#: reference cells written for every (dataset, backbone, regime, seed) group
REFERENCES = ("retrain", "retrain-noise", "original")
REF_PREFIX = "ref-"


@dataclass(frozen=True)
class GridConfig:
    """An experiment grid. Every field is recorded in ``grid.json`` and hashed; see ``mmunlearn bench run
    --help`` for this list with defaults."""

    # --- the axes (a grid may be extended along these) ---
    datasets: tuple[str, ...] = option(("baby",), "datasets: baby (embedded), synthetic, movielens-100k, "
                                                  "a folder or an .inter file")
    backbones: tuple[str, ...] = option(("lightgcn",), "backbones (lightgcn, mgcn, miggt, or a registered one)")
    regimes: tuple[str, ...] = option(("user", "item", "interaction"), "forget regimes (SPEC §5)")
    methods: tuple[str, ...] = option(tuple(DEFAULT_METHODS), "unlearning methods (Retrain, its second seed "
                                                              "and the original always run as references)")
    seeds: tuple[int, ...] = option((0, 1, 2), "seeds: each seeds the original's training, the request, "
                                               "Retrain and the method", ge=0)
    # --- the request ---
    ratio: float = option(0.05, "share of users / items / training pairs deleted", gt=0, lt=1)
    selection: str = option("random", "user/item selection: random, core (most active), edge (least active); "
                                      "the interaction regime is always uniform")
    noise_seed_offset: int = option(NOISE_SEED_OFFSET, "the second-seed Retrain (noise floor) uses seed + this", gt=0)
    # --- data ---
    user_subsample: int = option(0, "keep a seeded random subset of this many users with all their "
                                    "interactions (items nobody kept touches are dropped); 0 = all users", ge=0)
    subsample_seed: int = option(0, "seed of the user subsample", ge=0)
    feature_seed: int = option(0, "seed of synthetic content, used only where real content is missing", ge=0)
    synthetic_dims: str = option("", "widths of synthetic stand-in content, 'image=256,text=384' "
                                     "(default MMRec's 4096/384); real content is never touched")
    # --- training (originals and Retrain); empty = TrainConfig's default ---
    epochs: int | None = option(None, "maximum training epochs (TrainConfig default 300)", gt=0)
    min_epochs: int | None = option(None, "early stopping may not fire before this epoch (default 30)", ge=0)
    patience: int | None = option(None, "evaluations without a new best valid score before stopping (20)", gt=0)
    eval_every: int | None = option(None, "evaluate valid every N epochs (1)", gt=0)
    lr: float | None = option(None, "learning rate (default: the backbone's recommended lr, else 1e-3)", gt=0)
    lr_decay: float | None = option(None, "lr multiplier every lr_decay_every epochs (default 1.0)", gt=0)
    batch_size: int | None = option(None, "BPR batch size (2048)", gt=0)
    model_sets: tuple[str, ...] = option((), "backbone config overrides 'backbone.key=value' "
                                             "(file: [model.<backbone>] tables)")
    method_sets: tuple[str, ...] = option((), "method config overrides 'method.key=value', held fixed; with "
                                              "select, the rest of the method's search space is still "
                                              "searched (file: [method.<name>] tables)")
    select: bool = option(True, "select each method's hyper-parameters with the retrain-free rule "
                                "(valid data + proxy; never test, never Retrain); false = defaults")
    # --- audits ---
    mia: bool = option(True, "interaction-level membership inference on the deleted pairs")
    mia_max_pairs: int = option(20000, "members / non-members used to fit the interaction-level attack", gt=0)
    user_attack: bool = option(True, "user-level attack of Zhang et al. (user regime only; trains a shadow)")
    user_attack_epochs: int = option(0, "shadow model epochs (0 = the grid's training config)", ge=0)
    user_attack_mf_dim: int = option(100, "MF item-vector width of the user-level attack (8 on tiny data)", gt=0)
    user_attack_k: int = option(100, "top-K recommendations in the user-level feature", gt=0)
    cka: bool = option(True, "linear CKA of final user/item embeddings to Retrain (beside the 2nd seed's)")
    overlap: bool = option(True, "top-K Jaccard overlap with Retrain's lists (beside the 2nd seed's)")
    overlap_k: int = option(20, "K of the top-K overlap", gt=0)
    hist_bins: int = option(50, "bins of the stored deleted-pair rank-percentile histogram", gt=0)

    # ----- checks and canonical form ----------------------------------------------------------------
    def validate(self) -> GridConfig:
        """Raise a one-line :class:`InputError` for the first impossible setting; return ``self``."""
        from mmunlearn.data.requests import REGIMES, SELECTIONS
        from mmunlearn.models.registry import MODELS
        from mmunlearn.unlearn.base import method_names

        for axis in AXES:
            values = getattr(self, axis)
            if not values:
                raise InputError(f"grid: {axis} is empty")
            if len(set(values)) != len(values):
                raise InputError(f"grid: {axis} lists a value twice: {list(values)}")
        for s in self.seeds:
            if not isinstance(s, int) or isinstance(s, bool):
                raise InputError(f"grid: seeds must be integers, got {s!r}")
        for name in self.datasets + self.backbones + self.regimes + self.methods:
            if not isinstance(name, str) or not name:
                raise InputError(f"grid: expected non-empty names, got {name!r}")
        for b in self.backbones:
            if b not in MODELS:
                raise InputError(f"grid: unknown backbone {b!r}; available: {', '.join(sorted(MODELS))}")
        for r in self.regimes:
            if r not in REGIMES:
                raise InputError(f"grid: unknown regime {r!r}; expected one of {', '.join(REGIMES)}")
        known = method_names()
        for m in self.methods:
            if m == "retrain":
                raise InputError("grid: 'retrain' is always run as the reference; leave it out of methods")
            if m not in known:
                raise InputError(f"grid: unknown method {m!r}; available: {', '.join(known)}")
        if self.selection not in SELECTIONS:
            raise InputError(f"grid: selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        if not 0.0 < self.ratio < 1.0:
            raise InputError(f"grid: ratio must be in (0, 1), got {self.ratio}")
        if self.noise_seed_offset == 0:
            raise InputError("grid: noise_seed_offset must not be 0 (the noise Retrain needs another seed)")
        for key in ("hist_bins", "mia_max_pairs", "user_attack_mf_dim", "user_attack_k", "overlap_k"):
            if getattr(self, key) <= 0:
                raise InputError(f"grid: {key} must be positive, got {getattr(self, key)}")
        for key in ("user_subsample", "user_attack_epochs"):
            if getattr(self, key) < 0:
                raise InputError(f"grid: {key} must be ≥ 0, got {getattr(self, key)}")
        for key in ("epochs", "min_epochs", "patience", "eval_every", "batch_size"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise InputError(f"grid: {key} must be positive, got {value}")
        parse_dims(self.synthetic_dims)
        for b in parse_sets(self.model_sets, "model_sets"):
            if b not in self.backbones:
                raise InputError(f"grid: model_sets names backbone {b!r}, which is not in backbones")
        for m in parse_sets(self.method_sets, "method_sets"):
            if m not in self.methods:
                raise InputError(f"grid: method_sets names method {m!r}, which is not in methods")
        return self

    def normalised(self) -> GridConfig:
        """Same grid with override lists in canonical form (sorted, last setting of a key wins)."""
        return replace(self, model_sets=_canonical_sets(self.model_sets, "model_sets"),
                       method_sets=_canonical_sets(self.method_sets, "method_sets"))

    def as_record(self) -> dict[str, Any]:
        """JSON-able dict in the given axis order (what ``grid.json`` stores and tables follow)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.normalised()).items()}

    def canonical(self) -> dict[str, Any]:
        """:meth:`as_record` with the axes sorted: a reordered grid is the same grid (same hash)."""
        out = self.as_record()
        for axis in AXES:
            out[axis] = sorted(out[axis], key=str)
        return out

    def hash(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def train_overrides(self) -> dict[str, Any]:
        keys = ("epochs", "min_epochs", "patience", "eval_every", "lr", "lr_decay", "batch_size")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def groups(self) -> list[tuple[str, str, int, str]]:
        """(dataset, backbone, seed, regime) in run order: an original is finished before the next."""
        return [(d, b, s, r) for d in self.datasets for b in self.backbones for s in self.seeds
                for r in self.regimes]

    def cells(self) -> list[Cell]:
        return [Cell(d, b, r, s, m) for d, b, s, r in self.groups()
                for m in (*(REF_PREFIX + x for x in REFERENCES), *self.methods)]


def parse_dims(text: str) -> dict[str, int]:
    """``'image=256,text=384'`` → ``{'image': 256, 'text': 384}``."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            dim = int(value)
        except ValueError:
            dim = 0
        if not name.strip() or dim <= 0:
            raise InputError(f"grid: synthetic_dims entry {part!r}: expected modality=positive_int")
        out[name.strip()] = dim
    return out


def parse_sets(values: Iterable[str], what: str) -> dict[str, dict[str, Any]]:
    """``['lightgcn.n_layers=2', ...]`` → ``{'lightgcn': {'n_layers': 2}}`` (values parsed as JSON)."""
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        head, eq, raw = str(item).partition("=")
        name, dot, key = head.strip().partition(".")
        if not eq or not dot or not name or not key.strip():
            raise InputError(f"grid: {what} entry {item!r}: expected name.key=value")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(name, {})[key.strip()] = value
    return out


def _canonical_sets(values: Iterable[str], what: str) -> tuple[str, ...]:
    parsed = parse_sets(values, what)
    return tuple(sorted(f"{n}.{k}={json.dumps(v, sort_keys=True)}" for n, kv in parsed.items()
                        for k, v in kv.items()))


def grid_config(*layers: tuple[str, dict[str, Any]]) -> GridConfig:
    """Defaults overridden by each ``(where, mapping)`` layer in turn (later wins), validated.

    ``model_sets`` / ``method_sets`` of all layers are merged (a later layer wins per key) rather than
    replaced, so a CLI ``--set-model`` adds to a file's ``[model.x]`` tables. A layer that narrows
    ``backbones`` / ``methods`` drops the earlier layers' tables for the names it left out (``--methods
    sisa`` over a file that also tunes ``receraser``); a table a layer gives for a name missing from the
    final axis is still an error (a typo, or a setting that would do nothing).
    """
    axis_of = {"model_sets": "backbones", "method_sets": "methods"}
    merged_sets: dict[str, list[tuple[int, str]]] = {key: [] for key in axis_of}
    axis_set_at: dict[str, int] = {}
    plain = []
    for index, (where, mapping) in enumerate(layers):
        mapping = dict(mapping)
        for key, axis in axis_of.items():
            if mapping.get(axis) is not None:
                axis_set_at[axis] = index
            if mapping.get(key) is not None:
                value = mapping.pop(key)
                merged_sets[key] += [(index, v) for v in ([value] if isinstance(value, str) else list(value))]
        plain.append((where, mapping))
    axes = build(GridConfig, *plain)
    kept: dict[str, list[str]] = {}
    for key, entries in merged_sets.items():
        axis = axis_of[key]
        names = set(getattr(axes, axis))
        kept[key] = [v for i, v in entries
                     if str(v).partition(".")[0].strip() in names or i >= axis_set_at.get(axis, -1)]
    cfg = build(GridConfig, *plain, ("merged overrides", {k: v for k, v in kept.items() if v}))
    return cfg.normalised().validate()


def file_layer(path: Path | None) -> tuple[str, dict[str, Any]]:
    """A grid file as one config layer: ``[grid]`` keys plus ``[model.<b>]`` / ``[method.<m>]`` tables."""
    if path is None:
        return ("no config file", {})
    raw = load_config_file(path)
    unknown = set(raw) - {"grid", "model", "method"}
    if unknown:
        raise InputError(f"{path}: unknown section(s) {sorted(unknown)}; expected [grid], [model.<backbone>], "
                         f"[method.<name>]")
    layer = dict(raw.get("grid", {}))
    for section, key in (("model", "model_sets"), ("method", "method_sets")):
        sets = list(layer.pop(key, []) or [])
        for name, table in raw.get(section, {}).items():
            if not isinstance(table, dict):
                raise InputError(f"{path}: [{section}] must hold one table per name, e.g. [{section}.{name}]")
            sets += [f"{name}.{k}={json.dumps(v)}" for k, v in table.items()]
        if sets:
            layer[key] = sets
    return (str(path), layer)


@dataclass(frozen=True)
class Cell:
    dataset: str
    backbone: str
    regime: str
    seed: int
    method: str

    @property
    def is_reference(self) -> bool:
        return self.method.startswith(REF_PREFIX)

    def path(self, out: Path) -> Path:
        return (Path(out) / "cells" / dataset_key(self.dataset) / self.backbone / self.regime
                / f"s{self.seed}" / f"{self.method}.json")

    def key(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "backbone": self.backbone, "regime": self.regime, "seed": self.seed,
                "method": self.method}


def dataset_key(name: str) -> str:
    """A folder name for a dataset: the name itself, or a path's last part plus a short hash."""
    if re.fullmatch(r"[A-Za-z0-9_.-]+", name) and name not in (".", ".."):
        return name
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name or "dataset").strip("._") or "dataset"
    return f"{base}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


__all__ = ["GridConfig", "grid_config", "file_layer", "parse_dims", "parse_sets", "Cell", "dataset_key",
           "AXES", "REFERENCES", "REF_PREFIX"]
