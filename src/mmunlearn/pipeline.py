"""One-call entry points that tie data, models, training and checkpoints together.

``prepare_data`` resolves a dataset name and supplies the content a backbone needs (synthetic only
where no real content exists, and then loudly); ``train_and_save`` is what ``mmunlearn train`` runs;
``load_data_and_model`` (RecBole's one-call loader) rebuilds a run's exact dataset from its
metadata — including an applied forget request — and loads the model on any device.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmunlearn.checkpoint import Checkpoint, load_checkpoint, read_meta, save_checkpoint
from mmunlearn.config import option
from mmunlearn.data.interactions import InteractionData
from mmunlearn.evaluate.ranking import evaluate_split
from mmunlearn.io import check_target_dir, staged_dir
from mmunlearn.models.base import Recommender
from mmunlearn.models.registry import MODELS, build_model
from mmunlearn.train.trainer import TrainConfig, TrainResult, seed_everything


@dataclass(frozen=True)
class DataSpec:
    """How to rebuild a dataset exactly: stored in every checkpoint's metadata."""

    dataset: str = option("baby", "named dataset (baby, synthetic, movielens-100k) or a folder/.inter path")
    feature_seed: int = option(0, "seed of synthetic content, used only where real content is missing", ge=0)
    modalities: tuple[str, ...] = option((), "modalities the model needs; missing ones are synthesised")


@dataclass
class PreparedData:
    data: InteractionData
    spec: DataSpec
    warnings: list[str] = field(default_factory=list)


#: what a content-aware backbone gets on a dataset without any content (synthetic, said loudly)
DEFAULT_CONTENT = ("image", "text")


def required_modalities(model_name: str, model_cfg: Any, data: InteractionData) -> tuple[str, ...]:
    """The modalities ``model_name`` will read from ``data``.

    Graph-only backbones need none. A content-aware backbone takes its config's ``modalities``, or —
    when that is empty, meaning "whatever the data has" — the data's own modalities, or
    :data:`DEFAULT_CONTENT` where the data has none (those are then synthesised).
    """
    if not MODELS[model_name][0].modality_aware:
        return ()
    configured = tuple(getattr(model_cfg, "modalities", ()) or ())
    return configured or tuple(data.modalities) or DEFAULT_CONTENT


def prepare_data(spec: DataSpec) -> PreparedData:
    """Load ``spec.dataset`` and make sure ``spec.modalities`` exist (synthetic only where missing)."""
    from mmunlearn.data.registry import load_dataset

    return _with_content(load_dataset(spec.dataset), spec)


def prepare_for_model(dataset: str, feature_seed: int, model_name: str, model_cfg: Any) -> PreparedData:
    """Load a dataset with the content ``model_name`` needs; the returned spec rebuilds it exactly."""
    from mmunlearn.data.registry import load_dataset

    data = load_dataset(dataset)
    spec = DataSpec(dataset=stored_dataset_name(dataset), feature_seed=feature_seed,
                    modalities=required_modalities(model_name, model_cfg, data))
    return _with_content(data, spec)


def stored_dataset_name(dataset: str) -> str:
    """What a run records as its dataset: a name as given, a path made absolute.

    A relative path would only resolve from the directory the run was trained in.
    """
    from mmunlearn.data.registry import NAMES

    if dataset in NAMES:
        return dataset
    path = Path(dataset).expanduser()
    return str(path.resolve()) if path.exists() else dataset


def _with_content(data: InteractionData, spec: DataSpec) -> PreparedData:
    from mmunlearn.data.features import ensure_modalities

    warnings: list[str] = []
    if spec.modalities:
        data, warnings = ensure_modalities(data, spec.modalities, seed=spec.feature_seed)
    return PreparedData(data=data, spec=spec, warnings=warnings)


def provenance_lines(data: InteractionData) -> list[str]:
    if not data.modalities:
        return ["content: none (graph only)"]
    return [f"content {m.describe()}" for m in data.modalities.values()]


@dataclass
class TrainedRun:
    model: Recommender
    meta: dict[str, Any]
    result: TrainResult
    test: dict[str, float]
    valid: dict[str, float]


def train_and_save(prepared: PreparedData, model_name: str, model_cfg: Any, train_cfg: TrainConfig,
                   out: Path, *, show_progress: bool = True, force: bool = False, nproc: int = 1,
                   extra: dict[str, Any] | None = None, rebuildable: bool = True) -> TrainedRun:
    """Train on ``prepared.data`` with early stopping on valid, evaluate test once, save the run.

    An existing run at ``out`` is refused (before training) unless ``force``; the new run is written
    beside it and swapped in (:func:`mmunlearn.io.staged_dir`), so a kill never mixes the two.
    ``nproc > 1`` trains data-parallel (a sharded model: its shards in parallel); under ``torchrun``
    only rank 0 evaluates and saves. ``extra`` adds metadata (the grid records its hash and dataset
    there). ``rebuildable=False`` leaves the data spec out of the metadata: data the spec cannot reproduce
    (a grid's user subsample, narrowed synthetic content) must then be passed to ``load_checkpoint``
    explicitly, never silently rebuilt wrong.
    """
    from mmunlearn.train.distributed import is_main_process
    from mmunlearn.train.launch import fit

    out = Path(out)
    check_target_dir(out, force=force)
    seed_everything(train_cfg.seed)
    data = prepared.data
    model = build_model(model_name, data, model_cfg)
    progress = out.parent / f".{out.name}.progress"  # shards or a snapshot, beside the run: never inside it
    result = fit(model, data, train_cfg, nproc=nproc, work_dir=progress, show_progress=show_progress)
    if not is_main_process():
        return TrainedRun(model=model, meta={}, result=result, test={}, valid={})
    valid = evaluate_split(model, data, "valid")
    test = evaluate_split(model, data, "test")
    record: dict[str, Any] = {"data_spec": _spec_record(prepared.spec)} if rebuildable else {}
    with staged_dir(out, force=force) as stage:
        meta = save_checkpoint(
            stage, model, data, model_config=model_cfg, train_config=train_cfg,
            metrics={"valid": valid, "test": test, "best_epoch": result.best_epoch,
                     "epochs_run": result.epochs_run, "train_seconds": result.seconds},
            extra={**(extra or {}), **record, "history": result.history, "content_warnings": prepared.warnings,
                   **({"resumed": result.resumed} if result.resumed else {}),
                   **_parallel_record(model, result, nproc)})
    shutil.rmtree(progress, ignore_errors=True)  # the checkpoint holds the model now
    return TrainedRun(model=model, meta=meta, result=result, test=test, valid=valid)


def _parallel_record(model: Any, result: TrainResult, nproc: int) -> dict[str, Any]:
    """How the run was trained when not by one plain process (sharded, data-parallel)."""
    out: dict[str, Any] = {}
    if hasattr(model, "describe") and getattr(model, "name", "") == "sharded":
        out["sharded"] = model.describe()
    world = getattr(result, "world", 1)
    if world > 1 or nproc > 1:
        out["distributed"] = {"nproc": nproc, "world": world, "backend": getattr(result, "backend", None),
                              "batch_mode": getattr(result, "batch_mode", None),
                              "rank_hashes_equal": len(set(getattr(result, "rank_hashes", []) or [""])) == 1}
    return out


def _spec_record(spec: DataSpec) -> dict[str, Any]:
    return {"dataset": spec.dataset, "feature_seed": spec.feature_seed, "modalities": list(spec.modalities)}


def data_for_run(meta: dict[str, Any], where: str = "meta.json") -> InteractionData:
    """The exact dataset a run was made on: its base dataset, content, and any applied request."""
    from mmunlearn.config import build
    from mmunlearn.errors import InputError

    rec = meta.get("data_spec")
    if not isinstance(rec, dict) or "dataset" not in rec:
        raise InputError(f"{where}: corrupt metadata: field 'data_spec' missing or without 'dataset'")
    spec = build(DataSpec, (f"{where}:data_spec", rec))
    data = prepare_data(spec).data
    request = meta.get("request")
    if request is not None:
        from mmunlearn.data.requests import ForgetRequest, apply_request

        data = apply_request(data, ForgetRequest.from_dict(request, where=f"{where}:request")).retain
    return data


def load_data_and_model(run_dir: Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a run folder's dataset and model in one call (weights mapped to ``device``)."""
    from mmunlearn.runtime import resolve_device

    resolve_device(device)  # refuse a bad --device before rebuilding any data
    meta = read_meta(Path(run_dir))
    return load_checkpoint(Path(run_dir), data_for_run(meta, str(Path(run_dir) / "meta.json")), device=device)
