"""The calibration fold held out of the graph (data/calibration.py) and `mmunlearn data holdout-items`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmunlearn.cli import main
from mmunlearn.data.calibration import fold_of, hold_out_items, write_calibration_folder
from mmunlearn.data.interactions import load_folder
from mmunlearn.data.synthetic import SyntheticConfig, generate
from mmunlearn.errors import InputError


def _data():
    return generate(SyntheticConfig(n_users=80, n_items=60, interactions_per_user=8, seed=2))


def test_fold_items_lose_every_interaction_and_nothing_else_changes() -> None:
    data = _data()
    held, fold = hold_out_items(data, 0.1, seed=3)
    assert len(fold) == round(0.1 * int((np.bincount(data.train.indices, minlength=60) > 0).sum()))
    in_fold = np.zeros(data.n_items, dtype=bool)
    in_fold[fold] = True
    for s in ("train", "valid", "test"):
        before, after = data.split(s).tocoo(), held.split(s).tocoo()
        assert not in_fold[after.col].any()
        assert after.nnz == int((~in_fold[before.col]).sum())
    assert set(fold) <= set(fold_of(held)) and held.n_items == data.n_items
    assert held.modalities.keys() == data.modalities.keys()
    again, fold2 = hold_out_items(data, 0.1, seed=3)
    np.testing.assert_array_equal(fold, fold2)  # seeded
    with pytest.raises(InputError, match="share"):
        hold_out_items(data, 0.0)


def test_folder_round_trip_keeps_content_provenance_and_records_the_fold(tmp_path: Path) -> None:
    data = _data()
    out, n = write_calibration_folder(data, 0.1, tmp_path / "cal", seed=3)
    back = load_folder(out)
    _, fold = hold_out_items(data, 0.1, seed=3)
    assert n == len(fold) and back.train.nnz == hold_out_items(data, 0.1, seed=3)[0].train.nnz
    assert {m.provenance for m in back.modalities.values()} == {"synthetic"}
    np.testing.assert_allclose(back.modalities["image"].values, data.modalities["image"].values)
    side = json.loads((out / "mmunlearn.json").read_text())
    assert side["calibration_items"]["items"] == fold.tolist()


def test_cli_holdout_items(tmp_path: Path, listing: Callable[[Path], list[str]]) -> None:
    res = CliRunner().invoke(main, ["data", "holdout-items", "synthetic", "--out", str(tmp_path / "c"),
                                    "--share", "0.02"])
    assert res.exit_code == 0, res.output
    assert load_folder(tmp_path / "c").name == "synthetic-cal"
    bad = CliRunner().invoke(main, ["data", "holdout-items", "synthetic", "--out", str(tmp_path / "d"),
                                    "--share", "0.7"])
    assert bad.exit_code == 2 and "share must be in (0, 0.5)" in bad.output
    assert "d" not in listing(tmp_path)


def test_the_folds_training_interactions_are_kept_aside_and_survive_the_folder(tmp_path: Path) -> None:
    data = _data()
    held, fold = hold_out_items(data, 0.1, seed=3)
    users, items = data.pairs("train")
    expected = np.stack([users, items], 1)[np.isin(items, fold)]
    np.testing.assert_array_equal(held.held_out, expected)
    assert held.fingerprint() == held.with_train(held.train).fingerprint()  # not training data: not hashed
    assert held.with_train(held.train).held_out is held.held_out  # the retain data carries them
    out, _ = write_calibration_folder(data, 0.1, tmp_path / "cal", seed=3)
    np.testing.assert_array_equal(load_folder(out).held_out, expected)


@pytest.mark.parametrize("value,message", [
    ("[[0, 1], [2]]", "field held_out_pairs: held-out pairs must be [n, 2] integer"),
    ("[[0.5, 1]]", "field held_out_pairs: held-out pairs must be [n, 2] integer"),
    ("[[0, 999]]", "field held_out_pairs: held-out pair 0 has item id 999 outside 0..59"),
    ('"0,1"', "field held_out_pairs must be a list of [user, item] pairs"),
])
def test_a_bad_held_out_field_is_a_one_line_error_naming_it(tmp_path: Path, value: str, message: str) -> None:
    out, _ = write_calibration_folder(_data(), 0.1, tmp_path / "cal", seed=3)
    side = out / "mmunlearn.json"
    record = json.loads(side.read_text())
    side.write_text(json.dumps({**record, "held_out_pairs": json.loads(value)}))
    with pytest.raises(InputError, match=re.escape(message)) as err:
        load_folder(out)
    assert str(err.value).startswith(str(side)) and "\n" not in str(err.value)
