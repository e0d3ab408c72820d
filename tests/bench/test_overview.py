"""The cross-folder overview: cells assembled from a manifest, the bars, and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmunlearn.bench.grid import Cell
from mmunlearn.bench.overview import collect_rows, load_manifest, off_default, overview_markdown, summarise
from mmunlearn.cli import main
from mmunlearn.errors import InputError
from mmunlearn.io import atomic_write_json

from .test_report import _cell

GOOD = {"gap": -0.01, "ndcg@20_vs_retrain": 0.99, "speedup": 50.0, "mia_member_rate": 0.31,
        "mia_member_rate_retrain": 0.30}


#: what each regime's request holds (a user request that empties two items' histories deletes them too)
REQUESTS = {"interaction": {"request_pairs": 50, "deleted_items": 0},
            "user": {"request_users": 5, "deleted_items": 0},
            "user-emptying-items": {"request_users": 5, "deleted_items": 2},
            "item": {"request_items": 5, "deleted_items": 5}}


def _write(folder: Path, regime: str, seed: int, method: str, request: str = "r", **row) -> None:
    cell = _cell(regime, seed, method, **row)
    cell["request"] = {"hash": f"{request}{regime}{seed}", **REQUESTS[regime]}
    atomic_write_json(Cell("synthetic", "lightgcn", regime, seed, method).path(folder), cell)


def _manifest(path: Path, *sections: str) -> Path:
    path.write_text("\n".join(sections) + "\n")
    return path


def test_overview_joins_folders_on_one_request_and_applies_the_bars(tmp_path):
    for seed in (0, 1, 2):  # item: every bar met over three seeds
        _write(tmp_path / "a", "item", seed, "tru", **GOOD)
        _write(tmp_path / "a", "item", seed, "ref-retrain-noise", gap=0.002)
    _write(tmp_path / "a", "user", 0, "tru", **{**GOOD, "gap": 0.05, "speedup": 10.0})  # gap, speed, 1 seed
    _write(tmp_path / "a", "item", 0, "rebuild-reset", gap=-0.1)  # a comparator on fewer seeds says so
    for seed in (0, 1, 2):
        _write(tmp_path / "b", "item", seed, "mmrecun", gap=-0.2)
        _write(tmp_path / "b", "item", seed, "tru", gap=0.5)  # left out by the manifest's methods
    manifest = _manifest(tmp_path / "m.toml", '[a]\nfolder = "a"\ndataset = "Toy (synthetic)"',
                         '[b]\nfolder = "b"\ndataset = "Toy (synthetic)"\nmethods = ["mmrecun"]\n'
                         'note = "MMRecUn from the older grid"')
    cells = {c.regime: c for c in summarise(collect_rows(load_manifest(manifest)))}
    assert cells["item"].seeds == [0, 1, 2] and cells["item"].misses() == []
    assert cells["item"].mean("tru", "gap") == pytest.approx(-0.01)
    assert cells["item"].mean("mmrecun", "gap") == pytest.approx(-0.2)
    assert cells["user"].misses() == ["gap", "speed", "seeds (1)"]
    text = overview_markdown(load_manifest(manifest), manifest)
    assert "## lightgcn: 1 of 2 cells meet every bar" in text
    assert "| Toy (synthetic) | item | 3 | -0.010 ± 0.000 |" in text and "MMRecUn from the older grid" in text
    assert "| -0.200 | -0.100 (n = 1) | +0.002 | none |" in text
    assert "n too small (n = 3" in text  # three paired cells: no p-value is claimed


def test_a_gap_miss_the_second_seed_retrain_shares_is_named_so_and_still_counted(tmp_path):
    for seed in (0, 1, 2):
        _write(tmp_path / "a", "user", seed, "tru", **{**GOOD, "gap": 0.05})
        _write(tmp_path / "a", "user", seed, "ref-retrain-noise", gap=0.04 + 0.01 * seed)  # mean +0.05: misses too
        _write(tmp_path / "a", "item", seed, "tru", **{**GOOD, "gap": 0.05})
        _write(tmp_path / "a", "item", seed, "ref-retrain-noise", gap=0.01)
    manifest = _manifest(tmp_path / "m.toml", '[a]\nfolder = "a"\ndataset = "T"')
    cells = {c.regime: c for c in summarise(collect_rows(load_manifest(manifest)))}
    assert cells["user"].retrain_misses_gap() and not cells["item"].retrain_misses_gap()
    text = overview_markdown(load_manifest(manifest), manifest)
    assert "## lightgcn: 0 of 2 cells meet every bar" in text
    assert "| +0.050 | gap (2nd-seed Retrain too) |" in text and "| +0.010 | gap |" in text


def test_overview_refuses_two_requests_or_one_method_twice_for_a_cell(tmp_path):
    _write(tmp_path / "a", "item", 0, "tru", **GOOD)
    _write(tmp_path / "b", "item", 0, "mmrecun", request="other", gap=-0.2)
    _write(tmp_path / "c", "item", 0, "tru", **GOOD)
    two_requests = _manifest(tmp_path / "m1.toml", '[a]\nfolder = "a"\ndataset = "T"', '[b]\nfolder = "b"\ndataset = "T"')
    with pytest.raises(InputError, match="only one request per cell"):
        collect_rows(load_manifest(two_requests))
    twice = _manifest(tmp_path / "m2.toml", '[a]\nfolder = "a"\ndataset = "T"', '[c]\nfolder = "c"\ndataset = "T"')
    with pytest.raises(InputError, match="is also taken from"):
        collect_rows(load_manifest(twice))
    apart = _manifest(tmp_path / "m3.toml", '[a]\nfolder = "a"\ndataset = "T"', '[c]\nfolder = "c"\ndataset = "U"')
    assert len(collect_rows(load_manifest(apart))) == 2  # another dataset name: another cell


@pytest.mark.parametrize("section, message", [
    ('[a]\nfolder = "nowhere"\ndataset = "T"', "holds no cells/"),
    ('[a]\nfolder = "a"', "'folder' and 'dataset' are required"),
    ('[a]\nfolder = "a"\ndataset = "T"\nregime = ["item"]', "unknown Source key 'regime'"),
])
def test_bad_manifest_is_one_line_and_writes_nothing(tmp_path, section, message):
    _write(tmp_path / "a", "item", 0, "tru", **GOOD)
    manifest = _manifest(tmp_path / "m.toml", section)
    out = tmp_path / "overview.md"
    res = CliRunner().invoke(main, ["bench", "overview", str(manifest), "--out", str(out)])
    assert res.exit_code != 0 and message in res.output and not out.exists()


def test_cli_writes_the_overview(tmp_path):
    _write(tmp_path / "a", "item", 0, "tru", **GOOD)
    manifest = _manifest(tmp_path / "m.toml", '[a]\nfolder = "a"\ndataset = "T"')
    out = tmp_path / "overview.md"
    res = CliRunner().invoke(main, ["bench", "overview", str(manifest), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| T | item | 1 |" in out.read_text() and "Machines" in out.read_text()


def test_committed_overview_is_what_its_manifest_gives(tmp_path, monkeypatch):
    """docs/results/overview.md must be the command's output on the committed folders, never hand-edited."""
    root = Path(__file__).resolve().parents[2]
    manifest = Path("docs/results/overview.toml")
    if not (root / manifest).is_file():
        pytest.skip("no committed overview in this checkout")
    monkeypatch.chdir(root)  # the command names the manifest as it was given: the committed file says it so
    res = CliRunner().invoke(main, ["bench", "overview", str(manifest), "--out", str(tmp_path / "o.md")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "o.md").read_text(encoding="utf-8")
    assert text == (root / "docs/results/overview.md").read_text(encoding="utf-8"), (
        "regenerate: mmunlearn bench overview docs/results/overview.toml --out docs/results/overview.md")


def _tru_cell(regime: str, config: dict, searched: tuple[str, ...] = ()) -> dict:
    return {"cell": {"regime": regime.split("-")[0]}, "log": {"config": config}, "request": REQUESTS[regime],
            "selection": {"grid": [{"config": {k: 0 for k in searched}}]}}


def test_off_default_names_what_a_cell_ran_differently_where_it_acts():
    defaults = {"pair_rows": "user", "lr": 100.0, "repair_close": True, "item_reference": "never-positive"}
    old = {"pair_rows": "both", "lr": 50.0}
    # the changed default acts on deleted interactions; the searched lr never counts; a setting added later
    # is named as absent where it acts (item_reference: only where the request deletes a whole item)
    assert off_default(_tru_cell("interaction", old, searched=("lr",)), defaults) == (
        "pair_rows=both", "repair_close absent")
    assert off_default(_tru_cell("user", old, searched=("lr",)), defaults) == ("repair_close absent",)
    assert off_default(_tru_cell("user-emptying-items", old, searched=("lr",)), defaults) == (
        "item_reference absent", "repair_close absent")
    assert off_default(_tru_cell("item", {**defaults, "lr": 50.0}), defaults) == ("lr=50.0",)  # not searched here


def test_the_scopes_are_declared_on_trus_options():
    from mmunlearn.config import acts_in, describe_config
    from mmunlearn.unlearn.tru import TRUConfig

    assert acts_in(TRUConfig) == {"pair_rows": frozenset({"request_pairs"}),
                                  "item_reference": frozenset({"deleted_items"})}
    helps = {name: text for name, _, _, text in describe_config(TRUConfig)}
    assert helps["item_reference"].endswith("(acts only where: deleted_items)")


def test_overview_flags_seeds_that_ran_an_older_default(tmp_path):
    for seed, pair_rows in ((0, "both"), (1, "user"), (2, "user")):
        _write(tmp_path / "a", "interaction", seed, "tru", **GOOD)
        path = Cell("synthetic", "lightgcn", "interaction", seed, "tru").path(tmp_path / "a")
        cell = json.loads(path.read_text())
        cell["log"] = {"config": {"pair_rows": pair_rows}}
        atomic_write_json(path, cell)
    manifest = _manifest(tmp_path / "m.toml", '[a]\nfolder = "a"\ndataset = "Synthetic"')
    text = overview_markdown(load_manifest(manifest), manifest)
    row = next(line for line in text.splitlines() if line.startswith("| Synthetic | interaction"))
    assert "pair_rows=both (1/3)" in row


def test_speed_bar_reads_cpu_seconds_where_every_seed_logged_them(tmp_path):
    for seed in (0, 1, 2):  # wall clock says 50x (a loaded Retrain), CPU seconds say 15x
        _write(tmp_path / "a", "item", seed, "tru", **{**GOOD, "speedup_cpu": 15.0})
        _write(tmp_path / "a", "user", seed, "tru", **GOOD, **({"speedup_cpu": 15.0} if seed else {}))
    manifest = _manifest(tmp_path / "m.toml", '[a]\nfolder = "a"\ndataset = "Synthetic"')
    cells = {c.regime: c for c in summarise(collect_rows(load_manifest(manifest)))}
    assert cells["item"].misses() == ["speed"] and cells["item"].speed_column() == "speedup_cpu"
    assert cells["user"].misses() == [] and cells["user"].speed_column() == "speedup"  # one seed lacks CPU seconds
    text = overview_markdown(load_manifest(manifest), manifest)
    assert "| 15 (CPU) |" in text and "| 50 |" in text
