"""The deletion ledger and the unlearn CLI: lineage, duplicate detection, and crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmunlearn.checkpoint import read_meta
from mmunlearn.cli import main
from mmunlearn.data.requests import sample_request, save_request
from mmunlearn.data.synthetic import SyntheticConfig
from mmunlearn.pipeline import DataSpec, load_data_and_model, prepare_data, train_and_save
from mmunlearn.train.trainer import TrainConfig
from mmunlearn.unlearn.ledger import read_ledger
from mmunlearn.unlearn.runner import PAUSE_ENV

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "parent"
    from mmunlearn.models.registry import model_config

    prepared = prepare_data(DataSpec(dataset="synthetic"))
    train_and_save(prepared, "lightgcn", model_config("lightgcn", ("t", {"dim": 16, "n_layers": 2})),
                   TrainConfig(epochs=2, min_epochs=1, threads=1, batch_size=1024), out, show_progress=False)
    assert prepared.data.n_users == SyntheticConfig().n_users
    return out


def _request(run_dir: Path, tmp: Path, regime: str, seed: int) -> Path:
    data = load_data_and_model(run_dir).data
    path = tmp / f"req-{regime}-{seed}.json"
    save_request(path, sample_request(data, regime, 0.05, seed))
    return path


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir()
            if p.name not in ("ledger.jsonl", "ledger.head.json", ".locks")}


def test_unlearn_writes_child_with_lineage_and_a_ledger_line(run_dir, tmp_path):
    req = _request(run_dir, tmp_path, "interaction", 11)
    before = _snapshot(run_dir)
    n0 = len(read_ledger(run_dir))
    res = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(run_dir), "--request", str(req), "--method",
                                    "rebuild-reset", "--out", str(tmp_path / "child")])
    assert res.exit_code == 0, res.output
    assert "forgetting proxy" in res.output and "valid" in res.output
    assert _snapshot(run_dir) == before  # the parent is never modified
    entries = read_ledger(run_dir)
    assert len(entries) == n0 + 1
    e = entries[-1]
    meta = read_meta(tmp_path / "child")
    assert e["child"]["hash"] == meta["weights_sha256"] and e["parent"]["hash"] == read_meta(run_dir)["weights_sha256"]
    lineage = meta["lineage"]
    assert lineage["request_hash"] == json.loads(req.read_text())["hash"]
    assert lineage["parent_hash"] == e["parent"]["hash"] and lineage["method"] == "rebuild-reset"
    # the child reloads on exactly its retain data
    child = load_data_and_model(tmp_path / "child")
    assert child.data.train.nnz == load_data_and_model(run_dir).data.train.nnz - e["request"]["counts"]["forget_pairs"]
    # the same request on the same parent is refused, and says so
    again = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(run_dir), "--request", str(req), "--method",
                                      "tru", "--out", str(tmp_path / "child2")])
    assert again.exit_code == 2
    assert "already processed" in again.output and "--force" in again.output
    assert not (tmp_path / "child2").exists()
    assert len(read_ledger(run_dir)) == n0 + 1
    forced = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(run_dir), "--request", str(req), "--method",
                                       "rebuild", "--out", str(tmp_path / "child2"), "--force"])
    assert forced.exit_code == 0, forced.output
    assert read_ledger(run_dir)[-1]["forced"] is True


def test_bad_request_writes_nothing(run_dir, tmp_path):
    bad = tmp_path / "bad.json"
    data = load_data_and_model(run_dir).data
    from mmunlearn.data.requests import ForgetRequest

    save_request(bad, ForgetRequest.explicit(users=[data.n_users + 5], data=data))
    n0 = len(read_ledger(run_dir))
    res = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(run_dir), "--request", str(bad), "--out",
                                    str(tmp_path / "child")])
    assert res.exit_code == 2 and "unknown user id" in res.output
    assert not (tmp_path / "child").exists() and len(read_ledger(run_dir)) == n0
    res = CliRunner().invoke(main, ["forget", "sample", "--dataset", "synthetic", "--regime", "user", "--ratio",
                                    "1.5", "-o", str(tmp_path / "r.json")])
    assert res.exit_code == 2 and "ratio" in res.output and not (tmp_path / "r.json").exists()


def test_ledger_survives_a_killed_unlearning_process(run_dir, tmp_path):
    ok_req = _request(run_dir, tmp_path, "user", 21)
    assert CliRunner().invoke(main, ["unlearn", "--checkpoint", str(run_dir), "--request", str(ok_req),
                                     "--method", "rebuild", "--out", str(tmp_path / "done")]).exit_code == 0
    before_files = _snapshot(run_dir)
    before_ledger = (run_dir / "ledger.jsonl").read_bytes()
    req = _request(run_dir, tmp_path, "item", 22)
    env = {**os.environ, PAUSE_ENV: "60", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mmunlearn.cli import main; main()", "unlearn", "--checkpoint", str(run_dir),
         "--request", str(req), "--method", "tru", "--out", str(tmp_path / "killed"), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    deadline = time.time() + 60
    line = ""
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("unlearning:") or not line:
            break
    assert line.startswith("unlearning:"), line
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: the method is running (paused inside the call)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert _snapshot(run_dir) == before_files  # parent checkpoint intact
    assert (run_dir / "ledger.jsonl").read_bytes() == before_ledger  # ledger intact ...
    entries = read_ledger(run_dir)  # ... and parseable
    assert entries and all(e["format"] == "mmunlearn.ledger_entry" for e in entries)
    assert not (tmp_path / "killed" / "meta.json").exists()  # no child was recorded or completed
    load_data_and_model(run_dir)  # the parent still loads
    # and the request can be processed afterwards (the kill left nothing behind that blocks it)
    res = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(run_dir), "--request", str(req), "--method",
                                    "rebuild-reset", "--out", str(tmp_path / "killed")])
    assert res.exit_code == 0, res.output
