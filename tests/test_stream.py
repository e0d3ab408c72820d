"""Continual deletion: request sequences, the stream (chain, reconciliation) and its crash safety."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmunlearn.checkpoint import read_meta
from mmunlearn.cli import main
from mmunlearn.data.requests import apply_request, load_request, sample_sequence
from mmunlearn.pipeline import DataSpec, prepare_data, train_and_save
from mmunlearn.stream import STATE_FILE
from mmunlearn.train.trainer import TrainConfig
from mmunlearn.workflow.ledger import read_ledger
from mmunlearn.workflow.runner import PAUSE_ENV, unlearn_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained_base(tmp_path_factory) -> Path:
    from mmunlearn.models.registry import model_config

    out = tmp_path_factory.mktemp("stream") / "base"
    prepared = prepare_data(DataSpec(dataset="synthetic"))
    train_and_save(prepared, "lightgcn", model_config("lightgcn", ("t", {"dim": 16, "n_layers": 2})),
                   TrainConfig(epochs=2, min_epochs=1, threads=1, batch_size=1024), out, show_progress=False)
    return out


@pytest.fixture
def base(trained_base, tmp_path) -> Path:
    """A fresh copy per test: each stream writes a ledger line into its base checkpoint."""
    return Path(shutil.copytree(trained_base, tmp_path / "base"))


def _sequence(base: Path, out: Path, n: int = 3) -> Path:
    res = CliRunner().invoke(main, ["forget", "sequence", "--checkpoint", str(base), "--n", str(n), "--ratio", "0.02",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _state(out: Path) -> dict:
    return json.loads((out / STATE_FILE).read_text())


def test_sequence_requests_are_drawn_on_the_remaining_data():
    data = prepare_data(DataSpec(dataset="synthetic")).data
    reqs = sample_sequence(data, "interaction", 4, ratio=0.05, seed=3)
    seen: set[tuple[int, int]] = set()
    current = data
    for req in reqs:
        pairs = {tuple(p) for p in req.pairs.tolist()}
        assert not pairs & seen  # never a pair an earlier request already deleted
        seen |= pairs
        assert req.dataset["fingerprint"] == current.fingerprint()  # valid on the previous step's data
        current = apply_request(current, req).retain
    assert current.train.nnz == data.train.nnz - len(seen)


def test_forget_sequence_writes_a_folder_or_jsonl(base, tmp_path):
    folder = _sequence(base, tmp_path / "seq")
    assert sorted(p.name for p in folder.iterdir()) == ["000.json", "001.json", "002.json"]
    jsonl = _sequence(base, tmp_path / "seq.jsonl")
    lines = jsonl.read_text().splitlines()
    assert [json.loads(line)["hash"] for line in lines] == [load_request(folder / f"00{k}.json").hash for k in range(3)]


def test_stream_chains_children_and_reconciles_on_schedule(base, tmp_path):
    reqs = _sequence(base, tmp_path / "seq.jsonl")
    out = tmp_path / "stream"
    res = CliRunner().invoke(main, ["stream", "--checkpoint", str(base), "--requests", str(reqs), "--method",
                                    "rebuild-reset", "--reconcile-every", "2", "--out", str(out), "--threads", "1"])
    assert res.exit_code == 0, res.output
    state = _state(out)
    steps = state["steps"]
    assert [s["method"] for s in steps] == ["rebuild-reset", "retrain", "rebuild-reset"]
    assert [s["reconciled"] for s in steps] == [False, True, False]
    parents = [base] + [Path(s["child"]) for s in steps[:-1]]
    for parent, step in zip(parents, steps, strict=True):  # each child is the next parent, with its ledger line
        lineage = read_meta(Path(step["child"]))["lineage"]
        assert lineage["parent_path"] == str(parent)
        assert [e["request"]["hash"] for e in read_ledger(parent)] == [step["request_hash"]]
    assert steps[1]["drift"] == 0.0 and isinstance(steps[2]["drift"], float)
    # the final child holds all three deletions (cumulative request against the base data)
    final = read_meta(Path(state["parent"]))
    assert len(final["request"]["pairs"]) == sum(s["forget_pairs"] for s in steps)
    # rerunning the finished stream does nothing
    again = CliRunner().invoke(main, ["stream", "--checkpoint", str(base), "--requests", str(reqs), "--method",
                                      "rebuild-reset", "--reconcile-every", "2", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "step 1/3" not in again.output and _state(out)["steps"] == steps


def test_stream_reconciles_when_drift_passes_the_budget(base, tmp_path):
    reqs = _sequence(base, tmp_path / "seq", n=2)
    out = tmp_path / "stream"
    res = CliRunner().invoke(main, ["stream", "--checkpoint", str(base), "--requests", str(reqs), "--method",
                                    "rebuild", "--drift-budget", "1e-9", "--out", str(out)])
    assert res.exit_code == 0, res.output
    for s in _state(out)["steps"]:
        assert s["reason"] == "drift" and s["reconciled"]
        assert Path(s["approximate_child"]).name.endswith("-rebuild") and Path(s["child"]).name.endswith("-retrain")
        assert abs(s["approximate_drift"]) > 1e-9


def test_a_sharded_stream_reconciles_by_retraining_only_the_touched_shards(tmp_path):
    """Reconciling a sharded model retrains, from the last exact model, only the shards that the deletions
    since it touched; every other shard is that exact model's, bit-identical (the approximate steps'
    edits dropped). One user per request, so most shards stay untouched."""
    import torch

    from mmunlearn.data.partition import shards_touched
    from mmunlearn.data.requests import ForgetRequest, save_request
    from mmunlearn.models.registry import model_config
    from mmunlearn.models.sharded import sharded_config
    from mmunlearn.pipeline import load_data_and_model

    base = tmp_path / "base"
    backbone = model_config("lightgcn", ("t", {"dim": 8, "n_layers": 2}))
    train_and_save(prepare_data(DataSpec(dataset="synthetic")), "sharded",
                   sharded_config("lightgcn", backbone, 4, "random"),
                   TrainConfig(epochs=2, min_epochs=1, threads=1, batch_size=512, lr=1e-2), base, show_progress=False)
    ckpt = load_data_and_model(base)
    users = [int(u) for u in np.flatnonzero(np.diff(ckpt.data.train.indptr) > 0)[:2]]
    reqs = tmp_path / "seq"
    for k, u in enumerate(users):
        save_request(reqs / f"{k:03d}.json", ForgetRequest.explicit(users=[u]))
    out = tmp_path / "stream"
    res = CliRunner().invoke(main, ["stream", "--checkpoint", str(base), "--requests", str(reqs), "--method",
                                    "rebuild-reset", "--reconcile-every", "2", "--out", str(out), "--threads", "1"])
    assert res.exit_code == 0, res.output
    steps = _state(out)["steps"]
    assert [s["method"] for s in steps] == ["rebuild-reset", "sisa"] and steps[1]["reconciled"]
    child = Path(steps[1]["child"])
    lineage = read_meta(child)["lineage"]
    assert lineage["parent_path"] == str(base)  # from the last exact model, not the approximate parent
    touched = set(shards_touched(apply_request(ckpt.data, ForgetRequest.explicit(users=users)).forget,
                                 ckpt.model.assignment(), ckpt.model.axis))
    log = read_meta(child)["unlearn"]["log"]
    assert set(log["retrained_shards"]) == touched and len(touched) < 4
    exact = load_data_and_model(child).model
    for k in range(4):
        same = all(torch.equal(a, b) for a, b in zip(exact.shards[k].state_dict().values(),
                                                    ckpt.model.shards[k].state_dict().values(), strict=True))
        assert same == (k not in touched), k
    assert steps[1]["reconciled_pairs"] == steps[0]["forget_pairs"] + steps[1]["forget_pairs"]
    assert steps[0]["forget_pairs"] > 0 and steps[1]["forget_pairs"] > 0
    assert len(read_meta(child)["request"]["users"]) == 2  # the exact model lacks both requests' users


def test_stream_refuses_reconciling_an_exact_method(base, tmp_path):
    res = CliRunner().invoke(main, ["stream", "--checkpoint", str(base), "--requests", str(tmp_path), "--method",
                                    "sisa", "--reconcile-every", "2", "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and "exact already" in res.output


def test_stream_refuses_changed_settings_and_bad_input(base, tmp_path):
    reqs = _sequence(base, tmp_path / "seq", n=1)
    out = tmp_path / "stream"
    assert CliRunner().invoke(main, ["stream", "--checkpoint", str(base), "--requests", str(reqs), "--method",
                                     "rebuild", "--out", str(out)]).exit_code == 0
    res = CliRunner().invoke(main, ["stream", "--checkpoint", str(base), "--requests", str(reqs), "--method",
                                    "rebuild-reset", "--out", str(out)])
    assert res.exit_code == 2 and "other settings" in res.output
    res = CliRunner().invoke(main, ["stream", "--checkpoint", str(base), "--requests", str(tmp_path / "none"),
                                    "--method", "rebuild", "--out", str(tmp_path / "s2")])
    assert res.exit_code == 2 and "no such file" in res.output


def test_stream_adopts_a_child_saved_before_the_state_was_written(base, tmp_path):
    """A crash between saving step k's child and recording it: the resumed stream adopts that child."""
    reqs = _sequence(base, tmp_path / "seq", n=2)
    out = tmp_path / "stream"
    first = sorted(reqs.iterdir())[0]
    unlearn_checkpoint(base, first, "rebuild", out / "steps" / "000-rebuild")  # as if the stream died here
    res = CliRunner().invoke(main, ["stream", "--checkpoint", str(base), "--requests", str(reqs), "--method",
                                    "rebuild", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(read_ledger(base)) == 1  # step 0 was not applied a second time
    assert len(_state(out)["steps"]) == 2


def _kill_mid_stream(base: Path, reqs: Path, out: Path) -> None:
    """Start ``stream`` in a subprocess; kill -9 it while the *second* request is being unlearned."""
    env = {**os.environ, PAUSE_ENV: "2", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mmunlearn.cli import main; main()", "stream", "--checkpoint", str(base),
         "--requests", str(reqs), "--method", "rebuild-reset", "--out", str(out), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    seen, deadline, line = 0, time.time() + 120, ""
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("unlearning:"):
            seen += 1
            if seen == 2:
                break
    assert seen == 2, line
    os.kill(proc.pid, signal.SIGKILL)  # paused inside step 2's unlearning call
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_stream_resumes_after_kill_9_with_no_request_lost_or_repeated(base, tmp_path):
    reqs = _sequence(base, tmp_path / "seq", n=3)
    out = tmp_path / "stream"
    _kill_mid_stream(base, reqs, out)
    assert len(_state(out)["steps"]) == 1  # step 1 recorded, step 2 interrupted
    res = CliRunner().invoke(main, ["stream", "--checkpoint", str(base), "--requests", str(reqs), "--method",
                                    "rebuild-reset", "--out", str(out), "--threads", "1"])
    assert res.exit_code == 0, res.output
    state = _state(out)
    hashes = [load_request(p).hash for p in sorted(reqs.iterdir())]
    assert [s["request_hash"] for s in state["steps"]] == hashes  # each request once, in order
    parents = [base] + [Path(s["child"]) for s in state["steps"][:-1]]
    for parent, step in zip(parents, state["steps"], strict=True):
        entries = read_ledger(parent)
        assert [e["request"]["hash"] for e in entries] == [step["request_hash"]]  # applied exactly once
        assert not entries[0].get("forced")
    # and the final model lacks exactly the three requests' pairs
    final = read_meta(Path(state["parent"]))
    pairs = np.asarray(final["request"]["pairs"])
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs) == sum(s["forget_pairs"] for s in state["steps"])
