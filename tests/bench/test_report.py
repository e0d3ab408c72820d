"""The report from hand-made cells: best-per-column marking and the Wilcoxon threshold."""

import json

import pytest
from click.testing import CliRunner

from mmunlearn.bench.grid import Cell
from mmunlearn.bench.report import (
    MIN_WILCOXON_PAIRS,
    best_rows,
    group_rows,
    pooled_test,
    wilcoxon_abs_gap,
    write_report,
)
from mmunlearn.cli import main
from mmunlearn.errors import InputError
from mmunlearn.io import atomic_write_json


def _cell(regime, seed, method, **row):
    base = {"method": method, "recall@20": 0.05, "ndcg@20": 0.02, "ndcg@20_vs_retrain": 1.0,
            "forget_pct_mean": 0.5, "retrain_pct_mean": 0.5, "gap": 0.0, "ks": 0.0, "forget_recall@20": 0.1,
            "seconds": 1.0, "speedup": 10.0, "within_noise": True, "mia_member_rate": 0.3,
            "mia_member_rate_retrain": 0.3}
    base.update(row)
    return {"format": "mmunlearn.grid_cell",
            "cell": {"dataset": "synthetic", "backbone": "lightgcn", "regime": regime, "seed": seed,
                     "method": method},
            "reference": method[4:] if method.startswith("ref-") else None, "row": base,
            "histogram": {"bins": 4, "range": [0, 1], "counts": [1, 2, 3, 4], "n": 10},
            "selection": {"rule": "defaults"},
            "context": {"dataset": {"name": "synthetic", "n_users": 10, "n_items": 8, "train_pairs": 40,
                                    "modalities": {"image": {"provenance": "synthetic", "synthetic": True}}},
                        "ratio": 0.05, "selection": "random", "date": "2026-01-01 00:00:00 UTC",
                        "machine": "test-box", "train_config": {"epochs": 2}}}


def _folder(tmp_path, regimes, seeds, gaps, name="res"):
    out = tmp_path / name
    cfg = {"datasets": ["synthetic"], "backbones": ["lightgcn"], "regimes": regimes, "seeds": seeds,
           "methods": list(gaps), "ratio": 0.05}
    atomic_write_json(out / "grid.json", {"format": "mmunlearn.grid", "config": cfg, "hash": "f" * 64})
    for regime in regimes:
        for seed in seeds:
            for method in gaps:
                g = gaps[method](regime, seed)
                row = {"gap": g, "forget_pct_mean": 0.5 + g, "ndcg@20": 0.03 if method == "tru" else 0.02,
                       "seconds": 2.0 if method == "tru" else 1.0,
                       "mia_member_rate": 0.32 if method == "tru" else 0.5}
                atomic_write_json(Cell("synthetic", "lightgcn", regime, seed, method).path(out),
                                  _cell(regime, seed, method, **row))
            for ref in ("ref-retrain", "ref-retrain-noise", "ref-original"):
                atomic_write_json(Cell("synthetic", "lightgcn", regime, seed, ref).path(out),
                                  _cell(regime, seed, ref, gap=0.01 if ref != "ref-retrain" else 0.0,
                                        ndcg=0.9, seconds=100.0))
    return out


def test_report_marks_best_per_column_and_runs_wilcoxon_with_enough_pairs(tmp_path):
    regimes, seeds = ["user", "item", "interaction"], [0, 1]
    assert len(regimes) * len(seeds) >= MIN_WILCOXON_PAIRS
    out = _folder(tmp_path, regimes, seeds, {"tru": lambda r, s: 0.01 + 0.001 * s,
                                             "mmrecun": lambda r, s: -0.2 - 0.01 * s})
    rep = write_report(out, plots=False)
    md = rep.markdown.read_text()
    line = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| ")}
    tru, mmrecun = line["tru"].split("|"), line["mmrecun"].split("|")
    header = [h.strip() for h in next(ln for ln in md.splitlines() if ln.startswith("| method")).split("|")]
    col = {h: i for i, h in enumerate(header)}
    assert tru[col["gap"]].strip().startswith("**+0.01")  # closest to Retrain
    assert tru[col["N@20"]].strip().startswith("**0.0300")  # highest utility
    assert mmrecun[col["s"]].strip().startswith("**1")  # lowest seconds
    assert tru[col["MIA"]].strip().startswith("**0.320")  # closest to Retrain's 0.3
    assert not mmrecun[col["gap"]].strip().startswith("**")
    assert "±" in tru[col["gap"]]  # mean ± std over seeds
    assert "**" not in line["*Retrain*"]  # references are never marked
    res = rep.wilcoxon["mmrecun"]["synthetic/lightgcn"]
    assert res["status"] == "ok" and res["n"] == 6 and res["p_value"] < 0.05 and res["a_better"] == 6
    assert "W = " in md and "p = " in md
    csv = rep.csv.read_text().splitlines()
    assert len(csv) == 1 + 3 * 2 * 5


def test_wilcoxon_needs_enough_pairs(tmp_path):
    out = _folder(tmp_path, ["user"], [0, 1], {"tru": lambda r, s: 0.01, "mmrecun": lambda r, s: 0.2})
    rep = write_report(out, plots=False)
    assert rep.wilcoxon["mmrecun"]["synthetic/lightgcn"] == {"n": 2, "a": "tru", "b": "mmrecun", "status": "n too small"}
    assert "n too small (n = 2" in rep.markdown.read_text()
    rows = [{"method": "tru", "dataset": "d", "backbone": "b", "regime": "user", "seed": 0, "gap": 0.1}]
    assert wilcoxon_abs_gap(rows)["status"] == "not run"


def test_report_tests_tru_against_every_baseline_it_ran(tmp_path):
    gaps = {"tru": lambda r, s: 0.01, "ifru": lambda r, s: -0.15 - 0.01 * s, "mmrecun": lambda r, s: -0.2}
    out = _folder(tmp_path, ["user", "item", "interaction"], [0, 1], gaps)
    rep = write_report(out, plots=False)
    assert set(rep.wilcoxon) == {"mmrecun", "ifru"}  # scif was not run: no section for it
    res = rep.wilcoxon["ifru"]["synthetic/lightgcn"]
    assert (res["b"], res["status"], res["n"], res["a_better"]) == ("ifru", "ok", 6, 6)
    assert "|gap| of TRU vs ifru" in rep.markdown.read_text()


def test_pooled_test_joins_folders_and_refuses_a_cell_twice(tmp_path):
    gaps = {"tru": lambda r, s: 0.01, "ifru": lambda r, s: -0.15 - 0.01 * s}
    regimes = ["user", "item", "interaction"]
    a = _folder(tmp_path, regimes, [0], gaps, name="a")
    b = _folder(tmp_path, regimes, [1], gaps, name="b")
    assert write_report(a, plots=False).wilcoxon["ifru"]["synthetic/lightgcn"]["status"] == "n too small"
    res = pooled_test([a, b], "tru", "ifru")
    assert (res["status"], res["n"], res["a_better"]) == ("ok", 6, 6)
    with pytest.raises(InputError, match="is also in"):
        pooled_test([a, a], "tru", "ifru")
    cli = CliRunner().invoke(main, ["bench", "paired", str(a), str(b), "--b", "ifru"])
    assert cli.exit_code == 0 and "n = 6" in cli.output and "tru closer in 6" in cli.output


def test_best_rows_ties_and_rules():
    table = group_rows([
        {"dataset": "d", "backbone": "b", "regime": "user", "method": m, "seconds": s, "gap": g}
        for m, s, g in (("a", 1.0, -0.1), ("b", 1.0, 0.05), ("ref-retrain", 0.1, 0.0))])[("d", "b", "user")]
    from mmunlearn.bench.report import COLUMNS

    cols = {c.key: c for c in COLUMNS}
    assert best_rows(table, cols["seconds"]) == {"a", "b"}  # a tie marks both, never the reference
    assert best_rows(table, cols["gap"]) == {"b"}


def test_report_plots_from_histograms(tmp_path):
    out = _folder(tmp_path, ["user"], [0], {"tru": lambda r, s: 0.01, "mmrecun": lambda r, s: 0.2})
    rep = write_report(out)
    assert len(rep.plots) == 3 and all(p.is_file() for p in rep.plots)
    assert json.loads((out / "grid.json").read_text())["hash"] == "f" * 64
