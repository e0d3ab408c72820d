"""Regenerate ``src/mmunlearn/data/embedded/baby.npz`` from the shared Amazon Baby folder.

Usage: ``python scripts/embed_baby.py [../shared/datasets/amazon-baby]``

The embedded copy is the default dataset (``mmunlearn data info baby``), so it must be exactly the
shared ``baby.inter``: the script reads it through the same validating reader, stores int32
users/items/labels in file order with the source's md5, and checks that the round trip gives the
same fingerprint. If a ``text_feat.npy`` is present it is embedded too, as float16 (half the bytes;
MiniLM embeddings lose nothing that matters at 1e-3). The shared folder has none today.
"""

from __future__ import annotations

import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from mmunlearn.data.features import load_npy_modality
from mmunlearn.data.interactions import read_inter
from mmunlearn.data.registry import load_embedded_baby
from mmunlearn.io import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "mmunlearn" / "data" / "embedded" / "baby.npz"


def deterministic_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """``np.savez_compressed`` with fixed zip timestamps: the same data always gives the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def main(folder: Path) -> None:
    inter = folder / "baby.inter"
    data = read_inter(inter, name="baby")
    table = np.loadtxt(inter, dtype=np.int64, delimiter="\t", skiprows=1, ndmin=2)
    arrays: dict[str, np.ndarray] = {
        "users": table[:, 0].astype(np.int32),
        "items": table[:, 1].astype(np.int32),
        "labels": table[:, 2].astype(np.int32),
        "n_users": np.int64(data.n_users),
        "n_items": np.int64(data.n_items),
        "source_md5": np.array(hashlib.md5(inter.read_bytes()).hexdigest()),
    }
    text = folder / "text_feat.npy"
    if text.is_file():
        mod = load_npy_modality(text, "text", n_items=data.n_items)
        arrays["text_feat"] = np.asarray(mod.values, dtype=np.float16)
    atomic_write_bytes(OUT, deterministic_npz(arrays))
    again = load_embedded_baby()
    assert again.fingerprint() == data.fingerprint(), "embedded copy does not round-trip"
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {again.describe()['interactions']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "datasets" / "amazon-baby")
