"""Named datasets: one entry point from a name or a path to a validated :class:`InteractionData`.

``baby`` is embedded in the package (real Amazon Baby interactions, no content files), so
``mmunlearn`` works out of the box with no download; ``synthetic`` is the planted generator;
``movielens-100k`` is the explicitly fetched cache; anything else must be a folder or ``.inter`` file.
"""

from __future__ import annotations

import io
import os
from importlib import resources
from pathlib import Path

import numpy as np

from mmunlearn.data.features import Modality
from mmunlearn.data.interactions import InteractionData, from_arrays, load_folder, read_inter
from mmunlearn.data.movielens import NAME as MOVIELENS
from mmunlearn.data.movielens import default_cache, is_fetched
from mmunlearn.data.synthetic import SyntheticConfig, generate
from mmunlearn.errors import InputError

NAMES = ("baby", "synthetic", MOVIELENS)
BABY_ATTRIBUTION = (
    "Amazon Baby 5-core (McAuley et al. SIGIR 2015; He & McAuley WWW 2016; research use), "
    "LATTICE/MMHCL split, embedded in mmunlearn (see mmunlearn/data/embedded/ATTRIBUTION.md)"
)
#: env var naming a folder that holds shared datasets (``<dir>/amazon-baby`` ...)
SHARED_ENV = "MMUNLEARN_DATASETS"
_REPO_ROOT = Path(__file__).resolve().parents[3]


def load_dataset(name_or_path: str | os.PathLike[str], *, seed: int = 0) -> InteractionData:
    """Resolve a dataset name or path; ``seed`` seeds the synthetic generator.

    Order: the names in :data:`NAMES`; an existing folder (``load_folder``) or ``.inter`` file
    (``read_inter``); a shared dataset folder of that name (``amazon-sports`` / ``sports`` ...).
    """
    key = str(name_or_path)
    if key == "baby":
        return load_embedded_baby()
    if key == "synthetic":
        return generate(SyntheticConfig(seed=seed))
    if key == MOVIELENS:
        folder = default_cache()
        if not is_fetched(folder):
            raise InputError(f"dataset {MOVIELENS!r} is not fetched (looked in {folder}); "
                             f"run: mmunlearn data fetch {MOVIELENS}")
        return load_folder(folder)
    path = Path(key).expanduser()
    if path.is_dir():
        return load_folder(path)
    if path.is_file():
        if path.suffix != ".inter":
            raise InputError(f"{path}: not a dataset: expected a folder or an MMRec .inter file")
        return read_inter(path)
    shared = shared_dataset_path(key) if "/" not in key and os.sep not in key else None
    if shared is not None:
        return load_folder(shared)
    raise InputError(f"unknown dataset {key!r}: expected one of {', '.join(NAMES)}, "
                     f"a dataset folder, or an .inter file")


def load_embedded_baby() -> InteractionData:
    """The real Amazon Baby interactions shipped in the package (19,445 users x 7,050 items)."""
    ref = resources.files("mmunlearn.data") / "embedded" / "baby.npz"
    try:
        payload = ref.read_bytes()
    except (FileNotFoundError, OSError):
        raise InputError("the embedded Baby dataset (mmunlearn/data/embedded/baby.npz) is missing from this "
                         "installation; reinstall mmunlearn or run scripts/embed_baby.py") from None
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    data = from_arrays(arrays["users"], arrays["items"], arrays["labels"], name="baby", source=BABY_ATTRIBUTION,
                       n_users=int(arrays["n_users"]), n_items=int(arrays["n_items"]))
    if "text_feat" in arrays:
        text = Modality("text", arrays["text_feat"].astype(np.float32), provenance="real",
                        source="MMRec text_feat.npy (all-MiniLM-L6-v2), embedded as float16")
        data = data.with_modalities({"text": text})
    return data


def shared_dataset_path(name: str) -> Path | None:
    """``<shared>/datasets/<name>`` if it exists (``baby`` also finds ``amazon-baby``), else ``None``.

    Looked for under ``$MMUNLEARN_DATASETS``, then ``../shared/datasets`` and ``shared/datasets``
    relative to the working directory, then the ``shared`` folder beside the repository.
    """
    roots: list[Path] = []
    if os.environ.get(SHARED_ENV):
        roots.append(Path(os.environ[SHARED_ENV]).expanduser())
    cwd = Path.cwd()
    roots += [cwd / ".." / "shared" / "datasets", cwd / "shared" / "datasets",
              _REPO_ROOT / ".." / "shared" / "datasets"]
    candidates = [name] if name.startswith("amazon-") else [name, f"amazon-{name}"]
    for root in roots:
        for cand in candidates:
            path = root / cand
            if path.is_dir():
                return path.resolve()
    return None
