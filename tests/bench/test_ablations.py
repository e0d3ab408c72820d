"""TRU's ablations beside the TRU of their own folder: which cells pair, what the table and the tests say."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmunlearn.bench.ablations import ablation_markdown, ablation_pairs, settings_apart
from mmunlearn.bench.grid import Cell
from mmunlearn.bench.overview import load_manifest
from mmunlearn.io import atomic_write_json

from .test_report import _cell

TRU_SETTINGS = {"gate": True, "scaling": True, "epochs": 10, "lr": 50.0, "precondition": 100.0, "pair_rows": "user"}


def _write(folder: Path, regime: str, seed: int, method: str, settings: dict, searched=("lr", "precondition"),
           request: str = "r", **row) -> None:
    cell = _cell(regime, seed, method, **row)
    cell["request"] = {"hash": f"{request}{regime}{seed}", "request_pairs": 50}
    cell["log"] = {"config": settings}
    cell["selection"] = {"rule": "min |proxy gap|", "grid": [{"config": {k: 0 for k in searched}}]}
    atomic_write_json(Cell("synthetic", "lightgcn", regime, seed, method).path(folder), cell)


def _manifest(tmp_path: Path, *sections: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text("\n".join(sections) + "\n")
    return path


def test_settings_apart_ignores_the_ablated_switch_and_the_searched_settings():
    tru = {"log": {"config": TRU_SETTINGS}, "selection": {"grid": [{"config": {"lr": 1, "precondition": 1}}]}}
    no_gate = {"log": {"config": {**TRU_SETTINGS, "gate": False, "epochs": 3, "lr": 10.0}},
               "selection": {"grid": [{"config": {"lr": 1, "epochs": 1}}]}}
    assert settings_apart(tru, no_gate, "tru-no-gate") == []
    older = {"log": {"config": {k: v for k, v in TRU_SETTINGS.items() if k != "pair_rows"} | {"scaling": False}}}
    assert settings_apart(tru, older, "tru-no-scaling") == ["pair_rows"]  # a setting one of them predates


def test_ablations_pair_within_a_folder_and_say_what_was_left_out(tmp_path):
    folder = tmp_path / "grid"
    for seed in (0, 1, 2):
        _write(folder, "interaction", seed, "tru", TRU_SETTINGS, gap=-0.01)
        _write(folder, "interaction", seed, "tru-no-gate", {**TRU_SETTINGS, "gate": False, "epochs": 3, "lr": 10.0},
               searched=("lr", "epochs"), gap=-0.15 - 0.01 * seed, **{"ndcg@20_vs_retrain": 0.99})
    # run under older defaults than the folder's TRU: not a pair
    _write(folder, "interaction", 0, "tru-no-scaling", {**TRU_SETTINGS, "scaling": False, "pair_rows": "both"})
    _write(folder, "item", 0, "tru-no-isolation", TRU_SETTINGS)  # no TRU beside it
    manifest = _manifest(tmp_path, '[a]\nfolder = "grid"\ndataset = "Toy (synthetic)"\nmethods = ["tru"]',
                         '[b]\nfolder = "grid"\ndataset = "Toy (synthetic)"\nregimes = ["interaction"]')
    pairs, left_out = ablation_pairs(load_manifest(manifest))
    assert sorted((p.ablation, int(p.tru["seed"])) for p in pairs) == [("tru-no-gate", s) for s in (0, 1, 2)]
    assert [p.abs_gap_change() for p in sorted(pairs, key=lambda p: p.tru["seed"])] == \
        pytest.approx([0.14, 0.15, 0.16])  # the gate brought the deleted pairs nearer Retrain's ranks
    assert left_out == {"tru-no-scaling: settings apart from its folder's TRU (pair_rows)": 1,
                        "tru-no-isolation: no TRU cell beside it": 1}

    text = ablation_markdown(load_manifest(manifest))
    assert ("| lightgcn | Toy (synthetic) | interaction | tru-no-gate | 3 | -0.010 | -0.160 ± 0.010 | +0.150 | "
            "1.000 | 0.990 | 10 | speed | gap, speed |") in text
    assert "- tru-no-gate: 3 pairs, |gap| within 0.0001 of TRU's in 0; too few pairs for a test (n = 3)" in text
    assert "- tru-no-scaling: settings apart from its folder's TRU (pair_rows): 1 cell(s)" in text


def test_ablation_pairs_are_tested_once_enough_of_them_exist(tmp_path):
    folder = tmp_path / "grid"
    for seed in range(6):
        _write(folder, "interaction", seed, "tru", TRU_SETTINGS, gap=-0.01)
        _write(folder, "interaction", seed, "tru-no-scaling", {**TRU_SETTINGS, "scaling": False},
               gap=-0.01 - 0.001 * (seed + 1))
    text = ablation_markdown(load_manifest(_manifest(tmp_path, '[a]\nfolder = "grid"\ndataset = "T"')))
    assert "TRU closer to Retrain in 6, the ablation in 0" in text and "Wilcoxon p = 0.0312" in text


def test_a_source_can_keep_its_superseded_ablations_out(tmp_path):
    for name in ("old", "new"):  # the same request at two codes: only the newer folder's pairs count
        _write(tmp_path / name, "interaction", 0, "tru", TRU_SETTINGS, gap=-0.05)
        _write(tmp_path / name, "interaction", 0, "tru-no-gate", {**TRU_SETTINGS, "gate": False}, gap=-0.2)
    manifest = _manifest(tmp_path, '[old]\nfolder = "old"\ndataset = "T"\nmethods = ["rebuild-reset"]\nablations = false',
                         '[new]\nfolder = "new"\ndataset = "T"\nmethods = ["tru"]')
    pairs, left_out = ablation_pairs(load_manifest(manifest))
    assert [p.folder for p in pairs] == ["new"] and not left_out


def test_no_ablation_no_section(tmp_path):
    _write(tmp_path / "grid", "interaction", 0, "tru", TRU_SETTINGS)
    assert ablation_markdown(load_manifest(_manifest(tmp_path, '[a]\nfolder = "grid"\ndataset = "T"'))) == ""


def test_per_seed_folders_make_one_row_and_a_repeated_seed_another(tmp_path):
    for name, seed in (("s0", 0), ("s1", 1), ("again", 0)):
        _write(tmp_path / name, "interaction", seed, "tru", TRU_SETTINGS, gap=-0.01)
        _write(tmp_path / name, "interaction", seed, "tru-no-scaling", {**TRU_SETTINGS, "scaling": False}, gap=-0.02)
    manifest = _manifest(tmp_path, *(f'[{n}]\nfolder = "{n}"\ndataset = "T"' for n in ("s0", "s1", "again")))
    text = ablation_markdown(load_manifest(manifest))
    assert "| tru-no-scaling | 2 | -0.010 | -0.020 ± 0.000 | +0.010 |" in text and "`s0`, `s1` |" in text
    assert "| tru-no-scaling | 1 | -0.010 | -0.020 | +0.010 |" in text and "| `again` |" in text
