"""The unlearning experiment grid: datasets × backbones × regimes × methods × seeds, resumable.

A grid is a :class:`GridConfig` (typed, documented defaults; a TOML/JSON file; CLI flags override the
file). :func:`run_grid` works through it group by group — one group is (dataset, backbone, seed, regime)
— and shares everything expensive inside a group:

- the **original** model of (dataset, backbone, seed) is trained once and saved under
  ``models/<dataset>/<backbone>/original-s<seed>/``; the **Retrain** of every request (and its
  **second-seed** Retrain, the noise floor) once under ``models/<dataset>/<backbone>/retrain/``
  (:func:`~mmunlearn.unlearn.compare.retrain_cached`); both are reused whenever they are present;
- the forget request of (dataset, regime, seed) is sampled once and saved under ``requests/``, so
  every backbone forgets the same data;
- the membership-inference attack is fitted once per (original model, request) — the deleted pairs
  are excluded from its training members, so it must differ per request — and the user-level attack
  (user regime) once per (original, request); both are shared by every method of the group.

Every **cell** (dataset, backbone, regime, seed, method) is written atomically as one JSON file as soon
as it is finished: the result row (:func:`~mmunlearn.evaluate.forgetting.result_row`), the audits, the
method's log and a histogram of the deleted pairs' rank percentiles (so plots need no model). Retrain,
the second-seed Retrain and the untouched original are written as *reference cells* (``ref-*.json``)
beside them. A grid that is interrupted resumes where it stopped: finished cells are never recomputed
or rewritten, and a group whose cells are all present is skipped without loading anything.

A results folder is bound to its grid: ``grid.json`` stores the config and its hash, and a run with a
different config is refused unless ``extend=True`` and the new grid is a superset of the stored one
(same settings, more datasets/backbones/regimes/methods/seeds); then only the missing cells run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmunlearn.config import build, load_config_file, option
from mmunlearn.data.interactions import SPLITS, InteractionData
from mmunlearn.errors import InputError
from mmunlearn.io import atomic_write_json
from mmunlearn.pipeline import required_modalities
from mmunlearn.unlearn.compare import DEFAULT_METHODS

GRID_FILE = "grid.json"
GRID_FORMAT = "mmunlearn.grid"
CELL_FORMAT = "mmunlearn.grid_cell"
#: the list-valued fields: a grid may be *extended* along these, nothing else may change
AXES = ("datasets", "backbones", "regimes", "methods", "seeds")
#: reference cells written for every (dataset, backbone, regime, seed) group
REFERENCES = ("retrain", "retrain-noise", "original")
REF_PREFIX = "ref-"
#: test hook: seconds to sleep after writing each cell (lets a test kill the grid mid-way)
SLOW_CELL_ENV = "MMUNLEARN_BENCH_SLOW_CELL"
#: the partition a sharded exact method's grid model uses unless its ``partition`` is set
METHOD_PARTITION = {"sisa": "random", "receraser": "user"}


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
                                               "Retrain and the method")
    # --- the request ---
    ratio: float = option(0.05, "share of users / items / training pairs deleted")
    selection: str = option("random", "user/item selection: random, core (most active), edge (least active); "
                                      "the interaction regime is always uniform")
    noise_seed_offset: int = option(1000, "the second-seed Retrain (noise floor) uses seed + this")
    # --- data ---
    user_subsample: int = option(0, "keep a seeded random subset of this many users with all their "
                                    "interactions (items nobody kept touches are dropped); 0 = all users")
    subsample_seed: int = option(0, "seed of the user subsample")
    feature_seed: int = option(0, "seed of synthetic content, used only where real content is missing")
    synthetic_dims: str = option("", "widths of synthetic stand-in content, 'image=256,text=384' "
                                     "(default MMRec's 4096/384); real content is never touched")
    # --- training (originals and Retrain); empty = TrainConfig's default ---
    epochs: int | None = option(None, "maximum training epochs (TrainConfig default 300)")
    min_epochs: int | None = option(None, "early stopping may not fire before this epoch (default 30)")
    patience: int | None = option(None, "evaluations without a new best valid score before stopping (20)")
    eval_every: int | None = option(None, "evaluate valid every N epochs (1)")
    lr: float | None = option(None, "learning rate (default: the backbone's recommended lr, else 1e-3)")
    lr_decay: float | None = option(None, "lr multiplier every lr_decay_every epochs (default 1.0)")
    batch_size: int | None = option(None, "BPR batch size (2048)")
    model_sets: tuple[str, ...] = option((), "backbone config overrides 'backbone.key=value' "
                                             "(file: [model.<backbone>] tables)")
    method_sets: tuple[str, ...] = option((), "method config overrides 'method.key=value'; a method with "
                                              "overrides runs them as a fixed config, without selection "
                                              "(file: [method.<name>] tables)")
    select: bool = option(True, "select each method's hyper-parameters with the retrain-free rule "
                                "(valid data + proxy; never test, never Retrain); false = defaults")
    # --- audits ---
    mia: bool = option(True, "interaction-level membership inference on the deleted pairs")
    mia_max_pairs: int = option(20000, "members / non-members used to fit the interaction-level attack")
    user_attack: bool = option(True, "user-level attack of Zhang et al. (user regime only; trains a shadow)")
    user_attack_epochs: int = option(0, "shadow model epochs (0 = the grid's training config)")
    user_attack_mf_dim: int = option(100, "MF item-vector width of the user-level attack (8 on tiny data)")
    user_attack_k: int = option(100, "top-K recommendations in the user-level feature")
    cka: bool = option(True, "linear CKA of final user/item embeddings to Retrain (beside the 2nd seed's)")
    overlap: bool = option(True, "top-K Jaccard overlap with Retrain's lists (beside the 2nd seed's)")
    overlap_k: int = option(20, "K of the top-K overlap")
    hist_bins: int = option(50, "bins of the stored deleted-pair rank-percentile histogram")

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
    replaced, so a CLI ``--set-model`` adds to a file's ``[model.x]`` tables.
    """
    merged_sets: dict[str, list[str]] = {"model_sets": [], "method_sets": []}
    plain = []
    for where, mapping in layers:
        mapping = dict(mapping)
        for key in merged_sets:
            if mapping.get(key) is not None:
                value = mapping.pop(key)
                merged_sets[key] += [value] if isinstance(value, str) else list(value)
        plain.append((where, mapping))
    cfg = build(GridConfig, *plain, ("merged overrides", {k: v for k, v in merged_sets.items() if v}))
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


# ----- cells and the results folder -------------------------------------------------------------------
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


def machine() -> str:
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load avg {os.getloadavg()[0]:.1f}"
    return (f"{platform.node() or 'host'}: {platform.machine()} {os.cpu_count()} cores "
            f"({platform.processor() or platform.system()}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s){load}")


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def _superset_problems(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    problems = []
    for key in sorted(set(new) | set(old)):
        if key in AXES:
            missing = sorted(set(map(str, old.get(key, []))) - set(map(str, new.get(key, []))))
            if missing:
                problems.append(f"{key} drops {', '.join(missing)}")
        elif new.get(key) != old.get(key):
            problems.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    return problems


def _differences(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(new) | set(old)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key in AXES:
            added = sorted(set(map(str, b or [])) - set(map(str, a or [])))
            dropped = sorted(set(map(str, a or [])) - set(map(str, b or [])))
            out.append(f"{key}" + (f" +{','.join(added)}" if added else "") + (f" -{','.join(dropped)}" if dropped else ""))
        else:
            out.append(f"{key} {a!r} -> {b!r}")
    return out


def bind_results_dir(out: Path, cfg: GridConfig, *, extend: bool = False, device: str = "cpu",
                     threads: int = 1) -> dict[str, Any]:
    """Create or check ``out/grid.json``; refuse a different grid unless ``extend`` and a superset."""
    out = Path(out)
    path = out / GRID_FILE
    new_canon, new_hash = cfg.as_record(), cfg.hash()
    run = {"started": now(), "device": device, "threads": threads, "machine": machine(), "hash": new_hash}
    if path.is_file():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            old_hash, old_canon = record["hash"], record["config"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{path}: corrupt grid record; use a new results folder") from None
        if old_hash != new_hash:
            problems = _superset_problems(new_canon, old_canon)
            if not extend:
                diff = "; ".join(_differences(new_canon, old_canon))
                raise InputError(f"{out} holds results of a different grid (hash {old_hash[:12]}, this one "
                                 f"{new_hash[:12]}: {diff}); use another --out, or --extend to add cells")
            if problems:
                raise InputError(f"--extend needs a superset of the stored grid ({out}): {'; '.join(problems)}")
            record["history"] = [*record.get("history", []),
                                 {"hash": old_hash, "config": old_canon, "replaced": now()}]
        record.update({"config": new_canon, "hash": new_hash})
        record["runs"] = [*record.get("runs", []), run]
    else:
        if out.exists() and any(out.iterdir()) and not (out / "cells").exists():
            raise InputError(f"{out} exists and is not a results folder (no {GRID_FILE}); use an empty or new folder")
        record = {"format": GRID_FORMAT, "created": now(), "config": new_canon, "hash": new_hash,
                  "history": [], "runs": [run]}
    atomic_write_json(path, record)
    return record


def read_grid(out: Path) -> dict[str, Any]:
    path = Path(out) / GRID_FILE
    if not path.is_file():
        raise InputError(f"{out}: not a results folder (no {GRID_FILE})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: corrupt grid record: {exc}") from None


def config_from_record(record: dict[str, Any]) -> GridConfig:
    names = {f.name for f in fields(GridConfig)}
    return grid_config(("grid.json", {k: v for k, v in record["config"].items() if k in names}))


# ----- data ---------------------------------------------------------------------------------------------
def subsample_users(data: InteractionData, n_users: int, seed: int) -> InteractionData:
    """A seeded subset of ``n_users`` users with training history, with all their interactions.

    Items that no kept user interacts with in any split are dropped and ids are compacted (content
    rows follow their items); ``n_users = 0`` or more than there are returns ``data`` unchanged.
    """
    from mmunlearn.data.features import Modality

    active = np.flatnonzero(np.diff(data.train.indptr) > 0)
    if n_users <= 0 or n_users >= len(active):
        return data
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(active, size=n_users, replace=False))
    splits = {s: data.split(s)[keep] for s in SPLITS}
    touched = np.asarray((splits["train"] + splits["valid"] + splits["test"]).sum(axis=0)).ravel() > 0
    items = np.flatnonzero(touched)
    splits = {s: m[:, items].tocsr() for s, m in splits.items()}
    mods = {k: Modality(name=m.name, values=np.asarray(m.values[items]), provenance=m.provenance,
                        source=f"{m.source} (rows of the {len(items)} kept items)")
            for k, m in data.modalities.items()}
    return InteractionData(name=f"{data.name}-u{n_users}", modalities=mods,
                           source=f"{data.source}; seeded subsample: {n_users} of {len(active)} users "
                                  f"(seed {seed}) with all their interactions, {len(items)} of "
                                  f"{data.n_items} items", **splits)


@dataclass
class GridData:
    data: InteractionData
    warnings: list[str]
    notes: list[str]

    def record(self) -> dict[str, Any]:
        d = self.data
        return {"name": d.name, "source": d.source, "n_users": d.n_users, "n_items": d.n_items,
                "train_pairs": int(d.train.nnz), "fingerprint": d.fingerprint()[:16],
                "modalities": {n: {"provenance": m.provenance, "dim": m.dim, "source": m.source,
                                   "synthetic": m.is_synthetic} for n, m in d.modalities.items()},
                "content_warnings": list(self.warnings), "notes": list(self.notes)}


def load_grid_data(cfg: GridConfig, dataset: str, backbone: str, model_cfg: Any) -> GridData:
    from mmunlearn.data.features import ensure_modalities
    from mmunlearn.data.registry import load_dataset

    data = load_dataset(dataset)
    notes = []
    if cfg.user_subsample:
        before = data.n_users
        data = subsample_users(data, cfg.user_subsample, cfg.subsample_seed)
        if data.n_users != before:
            notes.append(f"user subsample: {cfg.user_subsample} users (seed {cfg.subsample_seed}) of {dataset}, "
                         f"{data.n_items} items kept, {data.train.nnz} training pairs — not the full dataset")
    warnings: list[str] = []
    wanted = required_modalities(backbone, model_cfg, data)
    if wanted:
        dims = parse_dims(cfg.synthetic_dims)
        data, warnings = ensure_modalities(data, wanted, dims=dims or None, seed=cfg.feature_seed)
        if dims and warnings:
            notes.append("synthetic content widths " + ", ".join(f"{k}={v}" for k, v in dims.items())
                         + " (not MMRec's 4096/384) to fit the compute budget")
    return GridData(data=data, warnings=warnings, notes=notes)


# ----- running ------------------------------------------------------------------------------------------
@dataclass
class GridRun:
    out: Path
    hash: str
    computed: list[Cell] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0


Echo = Callable[[str], None]


def run_grid(cfg: GridConfig, out: Path, *, extend: bool = False, device: str = "cpu", threads: int = 1,
             show_progress: bool = True, echo: Echo | None = None, report: bool = True) -> GridRun:
    """Run every missing cell of ``cfg`` into ``out`` (resumable), then write the report."""
    from mmunlearn.progress import progress_bar

    cfg = cfg.normalised().validate()
    out = Path(out)
    torch.set_num_threads(max(1, threads))
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but torch.cuda.is_available() is False")
    record = bind_results_dir(out, cfg, extend=extend, device=device, threads=threads)
    say = echo or (lambda _msg: None)
    start = time.perf_counter()
    todo = [c for c in cfg.cells() if not c.path(out).is_file()]
    result = GridRun(out=out, hash=record["hash"], skipped=len(cfg.cells()) - len(todo))
    if result.skipped:
        say(f"resuming {out}: {result.skipped} finished cell(s) kept, {len(todo)} to run")
    runner = _Runner(cfg, out, device=device, echo=say)
    delay = float(os.environ.get(SLOW_CELL_ENV, "0") or 0)
    with progress_bar(total=len(todo), desc="bench", enabled=show_progress) as bar:
        for group in cfg.groups():
            missing = [c for c in todo if (c.dataset, c.backbone, c.seed, c.regime) == group]
            if not missing:
                continue
            for cell in runner.run_group(group, missing, bar):
                result.computed.append(cell)
                bar.update(1, cell=f"{cell.dataset}/{cell.backbone}/{cell.regime}/s{cell.seed}/{cell.method}")
                if delay:
                    time.sleep(delay)
            runner.release(group)
    result.seconds = time.perf_counter() - start
    if report:
        from mmunlearn.bench.report import write_report

        write_report(out)
    return result


@dataclass
class CachedGroup:
    """A finished group's artefacts, loaded from a results folder (see :func:`load_group`)."""

    ctx: Any  # UnlearnContext: original, applied request, the grid's model and training configs
    retrain: Any
    noise: Any
    retrain_seconds: float
    noise_seed: int


def load_group(out: Path, dataset: str, backbone: str, regime: str, seed: int, *,
               device: str = "cpu") -> CachedGroup:
    """The original, request, Retrain and second-seed Retrain of one group, exactly as the grid used them.

    For studies that re-run methods on a finished grid (a new method or setting judged against the very
    same Retrain) without training anything: every artefact must already be in ``out`` (a missing one is
    an error naming it), and nothing is written there.
    """
    from mmunlearn.unlearn.compare import load_retrain, retrain_folder

    out = Path(out)
    cfg = config_from_record(read_grid(out))
    runner = _Runner(cfg, out, device=device, echo=lambda _msg: None)
    where = f"{out}: group {dataset}/{backbone}/{regime}/s{seed}"
    original_meta = runner.original_dir(dataset, backbone, seed) / "meta.json"
    for path in (original_meta, runner.request_path(dataset, regime, seed)):
        if not path.is_file():
            raise InputError(f"{where} is not cached ({path} missing)")
    ctx = runner.context(dataset, backbone, seed, regime, bar=None)  # both saved: loads, never trains
    cache = runner.retrain_cache(dataset, backbone)
    noise_seed = seed + cfg.noise_seed_offset
    models = []
    for s in (seed, noise_seed):
        folder = retrain_folder(ctx, s, cache)
        if folder is None:
            raise InputError(f"{where}: no cached Retrain (seed {s}) under {cache}")
        models.append(load_retrain(folder, ctx))
    (retrain, seconds, _), (noise, _, _) = models
    return CachedGroup(ctx=ctx, retrain=retrain, noise=noise, retrain_seconds=seconds, noise_seed=noise_seed)


class _Runner:
    """Holds what a group needs (data, original, request, references, attacks) and runs its cells."""

    def __init__(self, cfg: GridConfig, out: Path, *, device: str, echo: Echo) -> None:
        self.cfg, self.out, self.device, self.echo = cfg, out, device, echo
        self._data: dict[tuple[str, str], GridData] = {}
        self._originals: dict[tuple[str, str, int], tuple[Any, dict[str, Any]]] = {}
        self._sharded: dict[tuple, tuple[Any, dict[str, Any]]] = {}

    # ----- configs ------------------------------------------------------------------------------------
    def model_config(self, backbone: str) -> Any:
        from mmunlearn.models.registry import model_config

        sets = parse_sets(self.cfg.model_sets, "model_sets").get(backbone, {})
        return model_config(backbone, ("grid model_sets", sets))

    def train_config(self, backbone: str, seed: int) -> Any:
        from mmunlearn.models.registry import MODELS
        from mmunlearn.train.trainer import TrainConfig

        over = self.cfg.train_overrides()
        if "lr" not in over:
            rec = getattr(MODELS[backbone][0], "recommended_lr", None)
            if rec is not None:
                over["lr"] = float(rec)
        if "epochs" in over and "min_epochs" not in over:
            over["min_epochs"] = min(TrainConfig().min_epochs, over["epochs"])
        return build(TrainConfig, ("grid", over),
                     ("run", {"seed": seed, "device": self.device, "threads": torch.get_num_threads()}))

    def data(self, dataset: str, backbone: str) -> GridData:
        key = (dataset, backbone)
        if key not in self._data:
            gd = load_grid_data(self.cfg, dataset, backbone, self.model_config(backbone))
            for w in gd.warnings:
                self.echo(f"WARNING: {w}")
            for n in gd.notes:
                self.echo(f"NOTE: {n}")
            self._data[key] = gd
        return self._data[key]

    # ----- shared artefacts ----------------------------------------------------------------------------
    def models_dir(self, dataset: str, backbone: str) -> Path:
        return self.out / "models" / dataset_key(dataset) / backbone

    def original(self, dataset: str, backbone: str, seed: int, bar: Any) -> tuple[Any, dict[str, Any]]:
        """The original model of (dataset, backbone, seed): loaded if saved, else trained and saved."""
        from mmunlearn.checkpoint import load_checkpoint, read_meta, save_checkpoint
        from mmunlearn.evaluate.ranking import evaluate_split
        from mmunlearn.models.registry import build_model
        from mmunlearn.train.trainer import seed_everything, train

        key = (dataset, backbone, seed)
        if key in self._originals:
            return self._originals[key]
        gd = self.data(dataset, backbone)
        folder = self.original_dir(dataset, backbone, seed)
        if (folder / "meta.json").is_file():
            meta = read_meta(folder)
            model = load_checkpoint(folder, gd.data, device=self.device).model
        else:
            bar.describe(f"{dataset}/{backbone}/s{seed}: training the original")
            mcfg, tcfg = self.model_config(backbone), self.train_config(backbone, seed)
            seed_everything(seed)
            model = build_model(backbone, gd.data, mcfg)
            res = train(model, gd.data, tcfg, show_progress=False)
            valid = evaluate_split(model, gd.data, "valid")
            test = evaluate_split(model, gd.data, "test")
            extra: dict[str, Any] = {"bench": {"grid_hash": self.cfg.hash(), "dataset": gd.record()},
                                     "history": res.history, "content_warnings": gd.warnings}
            if not self.cfg.user_subsample and not self.cfg.synthetic_dims:  # exactly rebuildable
                extra["data_spec"] = {"dataset": dataset, "feature_seed": self.cfg.feature_seed,
                                      "modalities": list(gd.data.modalities)}
            meta = save_checkpoint(folder, model, gd.data, model_config=mcfg, train_config=tcfg,
                                   metrics={"valid": valid, "test": test, "best_epoch": res.best_epoch,
                                            "epochs_run": res.epochs_run, "train_seconds": res.seconds},
                                   extra=extra)
            self.echo(f"trained original {dataset}/{backbone}/s{seed}: best valid epoch {res.best_epoch} of "
                      f"{res.epochs_run}, test R@20 {test['recall@20']:.4f} N@20 {test['ndcg@20']:.4f} "
                      f"({res.seconds:.0f} s)")
        self._originals[key] = (model, meta)
        return model, meta

    def sharded_original(self, ctx: Any, method: str, cfg: Any, tag: str) -> tuple[Any, dict[str, Any]]:
        """The sharded model a sharded exact method unlearns from: trained once per (original data,
        backbone, seed, method, K, partition) on the group's data, saved beside the original."""
        from mmunlearn.checkpoint import load_checkpoint, read_meta, save_checkpoint
        from mmunlearn.evaluate.ranking import evaluate_split
        from mmunlearn.models.registry import build_model
        from mmunlearn.models.sharded import sharded_config
        from mmunlearn.train.launch import fit
        from mmunlearn.train.trainer import seed_everything

        data = ctx.applied.original
        partition = cfg.partition or METHOD_PARTITION.get(method, "random")
        key = ("sharded", data.fingerprint(), ctx.model_name, ctx.seed, method, cfg.shards, partition)
        if key in self._sharded:
            return self._sharded[key]
        folder = (self.models_dir(data.name, ctx.model_name)
                  / f"sharded-{method}-k{cfg.shards}-{partition}-s{ctx.seed}-{data.fingerprint()[:8]}")
        if (folder / "meta.json").is_file():
            model, meta = load_checkpoint(folder, data, device=self.device).model, read_meta(folder)
        else:
            scfg = sharded_config(ctx.model_name, ctx.model_config, cfg.shards, partition, "auto", ctx.seed)
            seed_everything(ctx.seed)
            model = build_model("sharded", data, scfg)
            res = fit(model, data, ctx.train_config, nproc=cfg.nproc, work_dir=folder.parent / f".{folder.name}",
                      show_progress=False)
            test = evaluate_split(model, data, "test")
            meta = save_checkpoint(folder, model, data, model_config=scfg, train_config=ctx.train_config,
                                   metrics={"test": test, "train_seconds": res.seconds},
                                   extra={"history": res.history, "sharded": model.describe()})
            self.echo(f"{tag}: trained the {method} model ({cfg.shards} {partition} shards): test R@20 "
                      f"{test['recall@20']:.4f} N@20 {test['ndcg@20']:.4f} ({res.seconds:.0f} s)")
        info = {"path": str(folder), "train_seconds": meta.get("metrics", {}).get("train_seconds"),
                "test": meta.get("metrics", {}).get("test"), "shards": cfg.shards, "partition": partition}
        self._sharded[key] = (model, info)
        return model, info

    def original_dir(self, dataset: str, backbone: str, seed: int) -> Path:
        return self.models_dir(dataset, backbone) / f"original-s{seed}"

    def request_path(self, dataset: str, regime: str, seed: int) -> Path:
        return self.out / "requests" / dataset_key(dataset) / f"{regime}-s{seed}.json"

    def retrain_cache(self, dataset: str, backbone: str) -> Path:
        return self.models_dir(dataset, backbone) / "retrain"

    def request(self, dataset: str, regime: str, seed: int, data: InteractionData) -> Any:
        from mmunlearn.data.requests import load_request, sample_request, save_request

        path = self.request_path(dataset, regime, seed)
        if path.is_file():
            return load_request(path)
        selection = self.cfg.selection if regime != "interaction" else "random"
        req = sample_request(data, regime, ratio=self.cfg.ratio, seed=seed, selection=selection)
        save_request(path, req)
        return req

    def release(self, group: tuple[str, str, int, str]) -> None:
        """Drop cached originals/data no later group needs (groups are ordered dataset, backbone, seed)."""
        dataset, backbone, seed, _ = group
        later = self.cfg.groups()
        idx = later.index(group)
        rest = later[idx + 1:]
        if not any((d, b, s) == (dataset, backbone, seed) for d, b, s, _ in rest):
            self._originals.pop((dataset, backbone, seed), None)
        if not any((d, b) == (dataset, backbone) for d, b, _, _ in rest):
            self._data.pop((dataset, backbone), None)

    def context(self, dataset: str, backbone: str, seed: int, regime: str, bar: Any) -> Any:
        """The group's UnlearnContext: original (trained if not saved), request (sampled if not saved)."""
        from mmunlearn.data.requests import apply_request
        from mmunlearn.unlearn.base import UnlearnContext

        gd = self.data(dataset, backbone)
        original, _ = self.original(dataset, backbone, seed, bar)
        applied = apply_request(gd.data, self.request(dataset, regime, seed, gd.data))
        return UnlearnContext(original=original, applied=applied, model_name=backbone,
                              model_config=self.model_config(backbone),
                              train_config=self.train_config(backbone, seed), seed=seed, device=self.device,
                              show_progress=False)

    # ----- one group --------------------------------------------------------------------------------------
    def run_group(self, group: tuple[str, str, int, str], missing: list[Cell], bar: Any) -> Iterable[Cell]:
        from mmunlearn.evaluate.forgetting import evaluate_forgetting
        from mmunlearn.unlearn.compare import retrain_cached

        dataset, backbone, seed, regime = group
        tag = f"{dataset}/{backbone}/{regime}/s{seed}"
        gd = self.data(dataset, backbone)
        ctx = self.context(dataset, backbone, seed, regime, bar)
        original, orig_meta = self.original(dataset, backbone, seed, bar)  # cached by context()
        mcfg, tcfg, applied = ctx.model_config, ctx.train_config, ctx.applied
        cache = self.retrain_cache(dataset, backbone)
        noise_seed = seed + self.cfg.noise_seed_offset
        bar.describe(f"{tag}: Retrain (seed {seed})")
        retrain, rt_seconds, rt_log = retrain_cached(ctx, seed, cache)
        bar.describe(f"{tag}: Retrain (seed {noise_seed}, noise floor)")
        noise, noise_seconds, noise_log = retrain_cached(ctx, noise_seed, cache)
        bar.describe(f"{tag}: evaluating references")
        ref_ev = evaluate_forgetting(retrain, applied)
        noise_ev = evaluate_forgetting(noise, applied)
        auditor = _Auditor(self.cfg, ctx, retrain, noise, bar, tag)
        refs = {"retrain": (retrain, ref_ev, rt_seconds, rt_log),
                "retrain-noise": (noise, noise_ev, noise_seconds, noise_log),
                "original": (original, None, 0.0, {"method": "original (no unlearning)",
                                                   "train_seconds": orig_meta.get("metrics", {})
                                                   .get("train_seconds")})}
        common = {"gd": gd, "applied": applied, "ref_ev": ref_ev, "noise_ev": noise_ev, "rt_seconds": rt_seconds,
                  "noise_seed": noise_seed, "mcfg": mcfg, "tcfg": tcfg, "orig_meta": orig_meta}
        shared: dict[str, Any] = {}
        for cell in missing:
            t0 = time.perf_counter()
            bar.describe(f"{tag}: {cell.method}")
            if cell.is_reference:
                name = cell.method[len(REF_PREFIX):]
                model, ev, seconds, log = refs[name]
                if ev is None:
                    ev = evaluate_forgetting(model, applied)
                payload = self._cell_payload(cell, model, ev, seconds, log, {"rule": "reference"}, auditor,
                                             common, reference=name)
            else:
                model, seconds, log, sel = self._run_method(cell.method, ctx, bar, tag, shared)
                ev = evaluate_forgetting(model, applied)
                payload = self._cell_payload(cell, model, ev, seconds, log, sel, auditor, common)
                del model
            payload["cell_seconds"] = time.perf_counter() - t0
            atomic_write_json(cell.path(self.out), _jsonable(payload))
            yield cell

    def _run_method(self, name: str, ctx: Any, bar: Any, tag: str, shared: dict[str, Any]
                    ) -> tuple[Any, float, dict, dict]:
        """Run ``name`` with its fixed (grid), selected or default config; returns model, seconds, log, selection.

        Selection uses ``unlearn.selection.Selector``, built once per group (its proxy target and
        ``V_rebuild`` are shared by every method) and kept in ``shared``; the chosen configuration's own
        run from the selection is the cell's run (its ``seconds`` are the unlearning call alone).
        """
        from mmunlearn.unlearn.base import METHODS, build_method, method_config

        overrides = parse_sets(self.cfg.method_sets, "method_sets").get(name)
        if getattr(METHODS[name].cls, "needs_sharded_original", False):  # sisa, receraser: exact, no selection
            cfg = method_config(name, ("grid method_sets", overrides or {}))
            bar.describe(f"{tag}: {name} (sharded original)")
            sharded, info = self.sharded_original(ctx, name, cfg, tag)
            bar.describe(f"{tag}: {name}")
            res = build_method(name, cfg).run(replace(ctx, original=sharded, model_name="sharded",
                                                      model_config=sharded.config))
            return res.model, res.seconds, {**res.log, "sharded_original": info}, \
                {"rule": "exact method: fixed config (no selection)", "selection_seconds": 0.0}
        if overrides:
            cfg, sel = method_config(name, ("grid method_sets", overrides)), {"rule": "fixed config (grid)"}
        elif self.cfg.select:
            try:
                from mmunlearn.unlearn.selection import Selector
            except ImportError:  # an older tree without the selection module
                Selector = None  # noqa: N806
            if Selector is not None:
                if "selector" not in shared:
                    bar.describe(f"{tag}: selection references (proxy target, rebuild utility)")
                    t0 = time.perf_counter()
                    shared["selector"] = Selector(ctx)
                    shared["selector_seconds"] = time.perf_counter() - t0
                bar.describe(f"{tag}: {name} (selecting hyper-parameters)")
                t0 = time.perf_counter()
                cfg, report, res = shared["selector"].select(name)
                sel = {**report, "selection_seconds": time.perf_counter() - t0,
                       "shared_setup_seconds": shared["selector_seconds"]}
                return res.model, res.seconds, res.log, sel
            cfg, sel = None, {"rule": "defaults (unlearn.selection unavailable)"}
        else:
            cfg, sel = None, {"rule": "defaults"}
        sel.setdefault("selection_seconds", 0.0)
        bar.describe(f"{tag}: {name}")
        res = build_method(name, cfg).run(ctx)
        return res.model, res.seconds, res.log, sel

    def _cell_payload(self, cell: Cell, model: Any, ev: Any, seconds: float, log: dict, selection: dict,
                      auditor: _Auditor, common: dict, reference: str | None = None) -> dict[str, Any]:
        from mmunlearn.evaluate.forgetting import result_row

        applied = common["applied"]
        label = {"retrain": "retrain", "retrain-noise": f"retrain (seed {common['noise_seed']})",
                 "original": "original (no unlearning)"}.get(reference or "", cell.method)
        extra = {"selection_seconds": selection.get("selection_seconds")}
        row = result_row(label, ev, retrain=common["ref_ev"], noise=common["noise_ev"], seconds=seconds,
                         retrain_seconds=common["rt_seconds"], extra=extra)
        audits = auditor.audit(model, reference)
        row.update(audits.pop("_flat"))
        counts, edges = np.histogram(ev.percentiles, bins=self.cfg.hist_bins, range=(0.0, 1.0))
        gd: GridData = common["gd"]
        return {
            "format": CELL_FORMAT,
            "cell": cell.key(),
            "reference": reference,
            "grid_hash": self.cfg.hash(),
            "row": row,
            "audits": audits,
            "histogram": {"bins": self.cfg.hist_bins, "range": [0.0, 1.0], "counts": counts.tolist(),
                          "n": int(len(ev.percentiles))},
            "utility": ev.utility,
            "forget": ev.forget,
            "log": log,
            "selection": selection,
            "request": {"hash": applied.request.hash, "regime": applied.request.regime,
                        "sampling": applied.request.sampling, **applied.counts()},
            "context": {"dataset": gd.record(), "backbone": cell.backbone, "ratio": self.cfg.ratio,
                        "selection": self.cfg.selection if cell.regime != "interaction" else "random",
                        "model_config": asdict(common["mcfg"]), "train_config": asdict(common["tcfg"]),
                        "original": {"test": common["orig_meta"].get("metrics", {}).get("test"),
                                     "best_epoch": common["orig_meta"].get("metrics", {}).get("best_epoch"),
                                     "epochs_run": common["orig_meta"].get("metrics", {}).get("epochs_run")},
                        "noise_seed": common["noise_seed"], "date": now(), "machine": machine(),
                        "device": self.device},
        }


class _Auditor:
    """The audits of one group: attacks fitted once on the original, reference values computed once."""

    def __init__(self, cfg: GridConfig, ctx: Any, retrain: Any, noise: Any, bar: Any, tag: str) -> None:
        self.cfg, self.ctx, self.retrain, self.noise, self.bar, self.tag = cfg, ctx, retrain, noise, bar, tag
        applied = ctx.applied
        from mmunlearn.evaluate.forgetting import utility_users

        self.users = utility_users(applied)
        keep_items = np.ones(applied.retain.n_items, dtype=bool)
        keep_items[applied.request.items] = False
        self.items = np.flatnonzero(keep_items) if len(applied.request.items) else None
        self._mia: Any = None
        self._user_attack: Any = None
        self._refs: dict[str, Any] = {}

    # attacks, lazily (a resumed group whose remaining cells need none fits none)
    def mia(self) -> Any:
        if self._mia is None:
            from mmunlearn.evaluate.mia import fit_membership_attack

            self.bar.describe(f"{self.tag}: fitting the membership-inference attack")
            applied = self.ctx.applied
            self._mia = fit_membership_attack(self.ctx.original, applied.original,
                                              exclude_pairs=applied.forget_pairs, seed=self.ctx.seed,
                                              max_pairs=self.cfg.mia_max_pairs)
        return self._mia

    def user_attack(self) -> Any:
        if self._user_attack is None:
            from mmunlearn.evaluate.user_attack import fit_user_attack

            self.bar.describe(f"{self.tag}: training the user-level attack's shadow model")
            ctx = self.ctx
            self._user_attack = fit_user_attack(
                ctx.applied.original, ctx.model_name, ctx.model_config, ctx.train_config, seed=ctx.seed,
                epochs=self.cfg.user_attack_epochs or None, mf_dim=self.cfg.user_attack_mf_dim,
                k=self.cfg.user_attack_k)
        return self._user_attack

    def _mia_of(self, model: Any) -> dict[str, Any]:
        from mmunlearn.evaluate.mia import audit_forget_set

        applied = self.ctx.applied
        return audit_forget_set(self.mia(), model, applied.retain, applied.forget_pairs)

    def _user_of(self, model: Any) -> dict[str, Any]:
        from mmunlearn.evaluate.user_attack import audit_forget_users

        applied = self.ctx.applied
        return audit_forget_users(self.user_attack(), model, applied.retain, applied.request.users,
                                  applied.original.train, seed=self.ctx.seed)

    def _cka(self, model: Any) -> dict[str, float]:
        from mmunlearn.evaluate.similarity import embedding_cka

        return embedding_cka(model, self.retrain, users=self.users, items=self.items)

    def _overlap(self, model: Any) -> float:
        from mmunlearn.evaluate.ranking import split_mask
        from mmunlearn.evaluate.similarity import topk_overlap

        applied = self.ctx.applied
        users = self.users if self.users is not None else np.arange(applied.retain.n_users)
        k = min(self.cfg.overlap_k, applied.retain.n_items - 1)
        return topk_overlap(model, self.retrain, users, split_mask(applied.retain.train), k=k)

    def _ref(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._refs:
            self._refs[key] = fn()
        return self._refs[key]

    def audit(self, model: Any, reference: str | None) -> dict[str, Any]:
        """Audits of ``model`` plus the reference values beside them; ``_flat`` holds the table columns.

        The values of Retrain and of the second-seed Retrain are computed once per group and reused.
        """
        cfg, out, flat = self.cfg, {}, {}
        user_regime = len(self.ctx.applied.request.users) > 0

        def measure(kind: str, fn: Callable[[Any], Any]) -> tuple[Any, Any, Any]:
            rt = self._ref(f"{kind}:retrain", lambda: fn(self.retrain))
            nz = self._ref(f"{kind}:noise", lambda: fn(self.noise))
            own = {"retrain": rt, "retrain-noise": nz}.get(reference or "")
            return (fn(model) if own is None else own), rt, nz

        if cfg.mia:
            res, rt, nz = measure("mia", self._mia_of)
            out["mia"] = {**res, "retrain": _strip_attack(rt), "noise": _strip_attack(nz)}
            flat.update({"mia_member_rate": res["member_rate_forget"], "mia_auc": res["auc_forget_vs_nonmember"],
                         "mia_member_rate_retrain": rt["member_rate_forget"],
                         "mia_auc_retrain": rt["auc_forget_vs_nonmember"],
                         "mia_member_rate_noise": nz["member_rate_forget"],
                         "mia_attack_auc": res["attack"]["heldout_auc"]})
        if cfg.user_attack and user_regime:
            res, rt, nz = measure("user", self._user_of)
            out["user_attack"] = {**res, "retrain": _strip_attack(rt), "noise": _strip_attack(nz)}
            flat.update({"user_member_rate": res["member_rate_forget"],
                         "user_auc": res["auc_retained_vs_forget"],
                         "user_member_rate_retrain": rt["member_rate_forget"],
                         "user_member_rate_noise": nz["member_rate_forget"],
                         "user_attack_auc": res["attack"]["heldout_auc"]})
        if cfg.cka:
            nz = self._ref("cka:noise", lambda: self._cka(self.noise))
            res = {"retrain": {"user": 1.0, "item": 1.0}, "retrain-noise": nz}.get(reference or "") \
                or self._cka(model)
            out["cka"] = {"vs_retrain": res, "noise": nz,
                          "rows": "users outside the request; items outside the request"}
            flat.update({"cka_user": res["user"], "cka_item": res["item"], "cka_user_noise": nz["user"],
                         "cka_item_noise": nz["item"]})
        if cfg.overlap:
            k = min(cfg.overlap_k, self.ctx.applied.retain.n_items - 1)
            nz = self._ref("overlap:noise", lambda: self._overlap(self.noise))
            res = {"retrain": 1.0, "retrain-noise": nz}.get(reference or "")
            res = self._overlap(model) if res is None else res
            out["overlap"] = {"k": k, "jaccard_vs_retrain": res, "noise": nz, "users": "outside the request"}
            flat.update({"jaccard": res, "jaccard_noise": nz})
        out["_flat"] = flat
        return out


def _strip_attack(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k != "attack"}


def _jsonable(obj: Any) -> Any:
    """Plain JSON: numpy → Python, non-finite floats → None, tuples → lists, anything else → str."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return _jsonable(obj.item())
    return str(obj)


def read_cells(out: Path) -> list[dict[str, Any]]:
    """Every cell JSON under ``out/cells`` (references included), in path order."""
    cells = []
    for path in sorted((Path(out) / "cells").rglob("*.json")):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:  # atomic writes make this a foreign or edited file
            raise InputError(f"{path}: corrupt cell file: {exc}") from None
        if obj.get("format") == CELL_FORMAT:
            cells.append(obj)
    return cells


__all__ = ["GridConfig", "grid_config", "file_layer", "run_grid", "GridRun", "Cell", "read_cells", "read_grid",
           "bind_results_dir", "subsample_users", "load_grid_data", "REFERENCES",
           "REF_PREFIX", "AXES", "config_from_record", "machine", "load_group", "CachedGroup"]
