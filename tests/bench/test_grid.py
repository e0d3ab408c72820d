import json

import pytest

from mmunlearn.bench.grid import GridConfig, grid_config, read_cells, run_grid
from mmunlearn.errors import InputError
from tests.bench.conftest import tiny_config


def _files(root):
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def _stats(out):
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted((out / "cells").rglob("*.json"))}


def test_tiny_grid_writes_cells_csv_md_and_plots(tmp_path):
    out = tmp_path / "res"
    cfg = tiny_config(methods=["rebuild", "tru"], select=True)
    res = run_grid(cfg, out, show_progress=False)
    names = sorted(p.name for p in (out / "cells" / "synthetic" / "lightgcn" / "user" / "s0").iterdir())
    assert names == ["rebuild.json", "ref-original.json", "ref-retrain-noise.json", "ref-retrain.json", "tru.json"]
    assert len(res.computed) == 5 and res.skipped == 0
    cell = json.loads((out / "cells/synthetic/lightgcn/user/s0/tru.json").read_text())
    row = cell["row"]
    for key in ("recall@20", "ndcg@20", "gap", "ks", "forget_recall@20", "seconds", "speedup", "noise_gap",
                "mia_member_rate", "mia_auc", "mia_member_rate_retrain", "user_member_rate",
                "user_member_rate_retrain", "cka_user", "cka_item", "cka_user_noise", "jaccard", "jaccard_noise"):
        assert key in row, key
    assert set(cell["audits"]) == {"mia", "user_attack", "cka", "overlap"}
    assert sum(cell["histogram"]["counts"]) == cell["histogram"]["n"] == cell["request"]["forget_pairs"]
    assert cell["log"]["method"] == "tru"
    # CPU seconds on both sides: a speed-up the machine's other jobs do not move
    retrain_row = json.loads((out / "cells/synthetic/lightgcn/user/s0/ref-retrain.json").read_text())["row"]
    assert row["cpu_seconds"] > 0 and row["speedup_cpu"] == pytest.approx(retrain_row["cpu_seconds"] / row["cpu_seconds"])
    sel = cell["selection"]  # retrain-free selection: the grid, or its first candidate where TRU had nothing to do
    assert "proxy" in sel["rule"] and (len(sel["grid"]) > 1 or (sel["grid"][0]["work"] == 0 and sel["stopped_early"]))
    # the original's valid scores were scored once, outside the timer, and TRU's trigger read them
    assert cell["log"]["repair"]["original_from"] == "context"
    assert cell["context"]["original"]["valid_scoring_seconds"] > 0
    assert cell["context"]["dataset"]["modalities"]["image"]["provenance"] == "synthetic"
    # originals and Retrain are checkpoints, shared by the methods
    assert (out / "models/synthetic/lightgcn/original-s0/meta.json").is_file()
    assert len(list((out / "models/synthetic/lightgcn/retrain").glob("*/meta.json"))) == 2
    grid = json.loads((out / "grid.json").read_text())
    assert grid["hash"] == cfg.hash() and grid["config"]["epochs"] == 2
    csv_lines = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + 5
    md = (out / "results.md").read_text()
    assert "## synthetic · lightgcn · user regime" in md and "| tru | 1 |" in md and "*Retrain*" in md
    assert "SYNTHETIC" in md and "machine:" in md and "date:" in md and "ratio: 5%" in md
    assert "not run (needs both tru and mmrecun" in md
    pngs = sorted((out / "plots").glob("*.png"))
    assert [p.name.split("__")[-1] for p in pngs] == ["percentiles.png", "seconds.png", "tradeoff.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_different_config_is_refused_unless_extend_with_superset(tmp_path):
    out = tmp_path / "res"
    base = dict(mia=False, user_attack=False, cka=False, overlap=False)
    run_grid(tiny_config(**base), out, show_progress=False, report=False)
    before = _stats(out)
    bigger = tiny_config(methods=["rebuild", "rebuild-reset"], **base)
    with pytest.raises(InputError, match="different grid") as err:
        run_grid(bigger, out, show_progress=False, report=False)
    assert "\n" not in str(err.value) and "--extend" in str(err.value)
    changed = tiny_config(epochs=3, methods=["rebuild", "rebuild-reset"], **base)
    with pytest.raises(InputError, match="superset"):
        run_grid(changed, out, extend=True, show_progress=False, report=False)
    res = run_grid(bigger, out, extend=True, show_progress=False, report=False)
    assert [c.method for c in res.computed] == ["rebuild-reset"]
    after = _stats(out)
    assert {p: s for p, s in after.items() if p in before} == before  # finished cells untouched
    grid = json.loads((out / "grid.json").read_text())
    assert grid["hash"] == bigger.hash() and len(grid["history"]) == 1
    # the same grid again: nothing to do, nothing rewritten
    res = run_grid(bigger, out, show_progress=False, report=False)
    assert res.computed == [] and _stats(out) == after


def test_extend_may_change_a_setting_of_a_regime_the_stored_grid_does_not_have(tmp_path):
    """The user-level attack acts in the user regime only: a grid stored without it ran no cell with it."""
    out = tmp_path / "res"
    base = dict(mia=False, cka=False, overlap=False)
    run_grid(tiny_config(regimes=["item"], user_attack=True, **base), out, show_progress=False, report=False)
    res = run_grid(tiny_config(regimes=["item", "user"], user_attack=False, **base), out, extend=True,
                   show_progress=False, report=False)
    assert {c.regime for c in res.computed} == {"user"}
    with pytest.raises(InputError, match="superset.*user_attack"):  # now a stored cell ran without it
        run_grid(tiny_config(regimes=["item", "user"], user_attack=True, **base), out, extend=True,
                 show_progress=False, report=False)


def test_config_layers_and_validation(tmp_path):
    from mmunlearn.bench.grid import file_layer
    from tests.bench.conftest import write_toml

    path = write_toml(tmp_path / "g.toml", epochs=5)
    cfg = grid_config(file_layer(path), ("command line", {"epochs": 3, "model_sets": ["lightgcn.dim=16"]}))
    assert cfg.epochs == 3  # CLI > file
    assert cfg.model_sets == ("lightgcn.dim=16", "lightgcn.n_layers=1")  # merged, canonical
    assert GridConfig().seeds == (0, 1, 2) and GridConfig().ratio == 0.05  # documented defaults
    with pytest.raises(InputError, match="retrain"):
        tiny_config(methods=["retrain"])
    with pytest.raises(InputError, match="unknown regime"):
        tiny_config(regimes=["users"])
    with pytest.raises(InputError, match="unknown GridConfig key"):
        grid_config(("x", {"epoch": 3}))
    # reordering an axis is the same grid
    assert tiny_config(methods=["tru", "rebuild"]).hash() == tiny_config(methods=["rebuild", "tru"]).hash()


def test_a_narrower_method_list_drops_the_file_tables_of_the_methods_it_left_out():
    file = ("g.toml", {"methods": ["sisa", "receraser"], "method_sets": ["sisa.shards=2", "receraser.shards=3"]})
    cfg = grid_config(file, ("command line", {"methods": ["sisa"]}))
    assert cfg.methods == ("sisa",) and cfg.method_sets == ("sisa.shards=2",)
    # a table the narrowing layer itself gives for a method it does not run is still refused
    with pytest.raises(InputError, match="method_sets names method 'receraser'"):
        grid_config(file, ("command line", {"methods": ["sisa"], "method_sets": ["receraser.shards=4"]}))
    # without a narrowing layer a table for a method not run is an error, as before
    with pytest.raises(InputError, match="not in methods"):
        grid_config(("g.toml", {"methods": ["sisa"], "method_sets": ["receraser.shards=3"]}))


def test_read_cells_ignores_nothing_finished(tmp_path):
    out = tmp_path / "res"
    run_grid(tiny_config(mia=False, user_attack=False), out, show_progress=False, report=False)
    assert {c["cell"]["method"] for c in read_cells(out)} == {"rebuild", "ref-retrain", "ref-retrain-noise",
                                                              "ref-original"}


def test_load_group_returns_the_grids_own_models_and_never_trains(tmp_path):
    import torch

    from mmunlearn.bench.grid import load_group

    out = tmp_path / "res"
    run_grid(tiny_config(regimes=["interaction"]), out, show_progress=False)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    group = load_group(out, "synthetic", "lightgcn", "interaction", 0)
    cell = json.loads((out / "cells/synthetic/lightgcn/interaction/s0/ref-retrain.json").read_text())
    assert group.ctx.applied.request.hash == cell["request"]["hash"]
    assert group.retrain_seconds == pytest.approx(cell["row"]["seconds"])
    assert group.noise_seed == 1000 and group.ctx.applied.request.regime == "interaction"
    u_rt, _ = group.retrain.final_embeddings()
    u_nz, _ = group.noise.final_embeddings()
    assert not torch.equal(u_rt, u_nz)  # two different seeds, both loaded
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing written
    with pytest.raises(InputError, match="not cached"):
        load_group(out, "synthetic", "lightgcn", "interaction", 1)
    for folder in (out / "models/synthetic/lightgcn/retrain").iterdir():
        if folder.name.endswith("-s1000"):
            (folder / "meta.json").unlink()
    with pytest.raises(InputError, match="no cached Retrain .seed 1000."):
        load_group(out, "synthetic", "lightgcn", "interaction", 0)


def test_sharded_exact_methods_run_in_the_grid_beside_retrain(tmp_path):
    """sisa / receraser cells: the grid trains one sharded original per method and unlearns from it."""
    out = tmp_path / "res"
    cfg = tiny_config(methods=["sisa", "receraser"], mia=False, user_attack=False,
                      method_sets=["sisa.shards=2", "receraser.shards=2"])
    run_grid(cfg, out, show_progress=False)
    cells = {m: json.loads((out / f"cells/synthetic/lightgcn/user/s0/{m}.json").read_text())
             for m in ("sisa", "receraser")}
    for m, cell in cells.items():
        log = cell["log"]
        assert log["method"] == m and log["shards"] == 2 and log["retrained_shards"]
        assert log["sharded_original"]["partition"] == {"sisa": "random", "receraser": "user"}[m]
        assert cell["row"]["seconds"] > 0 and "gap" in cell["row"] and "exact" in cell["selection"]["rule"]
    assert len(list((out / "models").rglob("sharded-*/meta.json"))) == 2
    assert "sisa" in (out / "results.md").read_text()


def test_a_folder_seeded_with_another_grids_models_reuses_them_and_refuses_other_settings(tmp_path):
    """The documented recipe for a second grid on the same training settings (copy models/ and requests/
    in) reuses the original and both Retrains; a copied original of other settings is refused, not reused."""
    import shutil

    base = dict(mia=False, user_attack=False, cka=False, overlap=False)
    first = tmp_path / "first"
    run_grid(tiny_config(**base), first, show_progress=False, report=False)
    seeded = tmp_path / "seeded"
    for sub in ("models", "requests"):
        shutil.copytree(first / sub, seeded / sub)
    models_before = _files(seeded / "models")
    assert models_before
    echoed: list[str] = []
    res = run_grid(tiny_config(methods=["rebuild-reset"], **base), seeded, show_progress=False, report=False,
                   echo=echoed.append)
    assert [c.method for c in res.computed if not c.method.startswith("ref-")] == ["rebuild-reset"]
    assert not any("trained original" in line for line in echoed)
    assert _files(seeded / "models") == models_before  # nothing retrained, nothing rewritten
    other = tmp_path / "other"
    shutil.copytree(first / "models", other / "models")
    with pytest.raises(InputError, match=r"original-s0: trained with train_config\.epochs = 2, this grid uses 3"):
        run_grid(tiny_config(epochs=3, **base), other, show_progress=False, report=False)
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a results folder.*'notes.txt'"):
        run_grid(tiny_config(**base), stray, show_progress=False, report=False)
    assert (stray / "notes.txt").read_text() == "mine"
