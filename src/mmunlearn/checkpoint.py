"""Checkpoints: safetensors weights + JSON metadata, with the data fingerprint and lineage.

A run folder holds ``model.safetensors`` (weights), ``state.pt`` (optimizer and RNG state, loaded
with ``weights_only=True`` — never full pickle) and ``meta.json`` (model name and config, training
config, dataset name + fingerprint + modality provenance, metrics, versions, lineage). ``meta.json``
is written last: a folder without it is an incomplete run and is refused.

Loading checks the dataset fingerprint, so a model is never evaluated or unlearned on data it was
not trained on; tensors are mapped to the requested device, so GPU checkpoints load on CPU.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mmunlearn import __version__
from mmunlearn.data.interactions import InteractionData
from mmunlearn.errors import InputError
from mmunlearn.io import atomic_write, atomic_write_json
from mmunlearn.models.base import Recommender

WEIGHTS = "model.safetensors"
STATE = "state.pt"
META = "meta.json"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded run: the model (on the requested device), its metadata and the dataset it belongs to."""

    model: Recommender
    meta: dict[str, Any]
    data: InteractionData
    path: Path

    @property
    def hash(self) -> str:
        return str(self.meta["weights_sha256"])


def weights_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def dataset_record(data: InteractionData) -> dict[str, Any]:
    return {
        "name": data.name,
        "source": data.source,
        "fingerprint": data.fingerprint(),
        "content_fingerprint": data.content_fingerprint(),
        "n_users": data.n_users,
        "n_items": data.n_items,
        "modalities": {n: {"provenance": m.provenance, "dim": m.dim, "source": m.source}
                       for n, m in data.modalities.items()},
    }


def save_checkpoint(path: Path, model: Recommender, data: InteractionData, *, model_config: Any,
                    train_config: Any = None, metrics: dict[str, Any] | None = None,
                    optimizer: torch.optim.Optimizer | None = None, extra: dict[str, Any] | None = None,
                    ) -> dict[str, Any]:
    """Write a run folder atomically file by file, ``meta.json`` last; returns the metadata."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path / WEIGHTS, lambda p: save_file(state, str(p)))
    aux = {"torch_rng": torch.get_rng_state()}
    if optimizer is not None:
        aux["optimizer"] = optimizer.state_dict()
    atomic_write(path / STATE, lambda p: torch.save(aux, p))
    meta = {
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "model_config": asdict(model_config),
        "train_config": asdict(train_config) if train_config is not None else None,
        "dataset": dataset_record(data),
        "metrics": metrics or {},
        "weights_sha256": weights_hash(model),
        "versions": {"mmunlearn": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        **(extra or {}),
    }
    atomic_write_json(path / META, meta)
    return meta


#: what every run's meta.json must hold, and the JSON type of each (checked before anything uses it)
_META_FIELDS: dict[str, type | tuple[type, ...]] = {"model": str, "model_config": dict, "dataset": dict,
                                                    "weights_sha256": str}


def read_meta(path: Path) -> dict[str, Any]:
    """A run folder's metadata, checked to be a JSON object with the fields loading relies on."""
    path = Path(path)
    meta_path = path / META
    if not meta_path.is_file():
        raise InputError(f"{path}: not a run folder (no {META}; an interrupted save leaves none)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{meta_path}: corrupt metadata: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{meta_path}: corrupt metadata: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{meta_path}: cannot read: {exc.strerror}") from None
    if not isinstance(meta, dict):
        raise InputError(f"{meta_path}: corrupt metadata: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{meta_path}: unsupported format_version {meta.get('format_version')!r}")
    for key, typ in _META_FIELDS.items():
        if not isinstance(meta.get(key), typ):
            raise InputError(f"{meta_path}: corrupt metadata: field {key!r} missing or not a "
                             f"{getattr(typ, '__name__', typ)}")
    if not isinstance(meta["dataset"].get("fingerprint"), str):
        raise InputError(f"{meta_path}: corrupt metadata: field 'dataset.fingerprint' missing or not a string")
    return meta


def check_dataset(meta: dict[str, Any], data: InteractionData, path: Path) -> None:
    """Refuse ``data`` unless it is the run's dataset: interactions and (where recorded) content.

    Runs saved before ``content_fingerprint`` was recorded are checked on interactions only.
    """
    want = meta["dataset"]["fingerprint"]
    got = data.fingerprint()
    if want != got:
        raise InputError(
            f"{path}: checkpoint was trained on dataset {meta['dataset'].get('name')!r} "
            f"(fingerprint {want[:12]}), refusing dataset {data.name!r} (fingerprint {got[:12]})"
        )
    want_content = meta["dataset"].get("content_fingerprint")
    if want_content is not None and want_content != data.content_fingerprint():
        raise InputError(
            f"{path}: the content features of dataset {data.name!r} differ from those the checkpoint was "
            f"trained on (content fingerprint {str(want_content)[:12]}, now "
            f"{data.content_fingerprint()[:12]}): a *_feat.npy file was replaced, changed or is missing"
        )


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; anything else (a pickle, a truncated file) is an InputError."""
    from safetensors import SafetensorError

    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "is missing"
        raise InputError(f"{path}: weights file {what}; the run folder is incomplete or damaged")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable safetensors file ({first}); the weights are damaged or "
                         f"were replaced") from None


def load_checkpoint(path: Path, data: InteractionData, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from ``meta.json`` on ``data`` (which must match the fingerprint), load weights.

    The loaded weights must hash to the metadata's ``weights_sha256``: a swapped weights file is never
    evaluated or unlearned under another model's hash.
    """
    from mmunlearn.models.registry import build_model, model_config
    from mmunlearn.runtime import resolve_device

    path = Path(path)
    target = resolve_device(device)
    meta = read_meta(path)
    check_dataset(meta, data, path)
    cfg = model_config(meta["model"], (f"{path / META}:model_config", meta["model_config"]))
    model = build_model(meta["model"], data, cfg)
    state = read_weights(path / WEIGHTS)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise InputError(f"{path / WEIGHTS}: weights do not match model {meta['model']!r}: "
                         f"{str(exc).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise InputError(f"{path / WEIGHTS}: weights do not match model {meta['model']!r}: "
                         f"missing {missing}, unexpected {unexpected}")
    got = weights_hash(model)
    if got != meta["weights_sha256"]:
        raise InputError(f"{path / WEIGHTS}: weights hash {got[:12]} differs from weights_sha256 "
                         f"{meta['weights_sha256'][:12]} in {META}: the weights file was replaced or modified")
    model.to(target)
    return Checkpoint(model=model, meta=meta, data=data, path=path)


def load_state(path: Path) -> dict[str, Any]:
    """Optimizer and RNG state, loaded without full pickle."""
    file = Path(path) / STATE
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{file}: cannot load training state ({first})") from None
