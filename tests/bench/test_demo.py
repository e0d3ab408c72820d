import json

from mmunlearn.bench.demo import DEMO_CONFIG, run_demo
from tests.bench.conftest import tiny_config


def test_demo_default_config_is_the_real_one():
    cfg = DEMO_CONFIG.validate()
    assert cfg.datasets == ("baby",) and cfg.backbones == ("mgcn",) and cfg.regimes == ("user",)
    assert cfg.methods == ("mmrecun", "tru") and cfg.ratio == 0.05
    assert cfg.mia and cfg.user_attack and cfg.cka and cfg.overlap


def test_demo_runs_end_to_end_and_reuses_its_cells(tmp_path):
    out = tmp_path / "demo"
    cfg = tiny_config(methods=["mmrecun", "tru"], user_attack=False)  # the grid test covers it
    lines: list[str] = []
    res = run_demo(out, config=cfg, show_progress=False, echo=lines.append)
    printed = "\n".join(lines)
    assert "SYNTHETIC" in printed and "EPOCH BUDGET" in printed and "USER SUBSAMPLE" in printed
    for name in ("mmrecun", "tru", "Retrain", "Original"):
        assert name in res.table
    assert "MIA member rate (RT)" in res.table and "CKA user/item (RT 2nd seed)" in res.table
    assert res.table in printed
    md = (out / "demo.md").read_text()
    assert res.table in md and "SYNTHETIC" in md and "machine:" in md
    demo = json.loads((out / "demo.json").read_text())
    assert demo["content_provenance"]["image"].startswith("synthetic") and len(demo["rows"]) == 5
    assert (out / "results.md").is_file() and len(list((out / "plots").glob("*.png"))) == 3
    again = run_demo(out, config=cfg, show_progress=False, echo=lambda _m: None)
    assert again.computed == 0 and again.reused == 5
