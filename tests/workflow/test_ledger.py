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
from mmunlearn.workflow.ledger import read_ledger
from mmunlearn.workflow.runner import PAUSE_ENV

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


def test_select_honours_set_and_runs_the_chosen_config_once(run_dir, tmp_path, monkeypatch):
    from mmunlearn.unlearn import base

    runs: list[tuple[str, object]] = []
    original_run = base.UnlearnMethod.run

    def counting_run(self, ctx):
        runs.append((self.name, self.config))
        return original_run(self, ctx)

    monkeypatch.setattr(base.UnlearnMethod, "run", counting_run)
    req = _request(run_dir, tmp_path, "interaction", 12)
    res = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(run_dir), "--request", str(req), "--method",
                                    "mmrecun", "--select", "--set", "lr=0.002", "--out", str(tmp_path / "sel")])
    assert res.exit_code == 0, res.output
    mmrecun_runs = [cfg for name, cfg in runs if name == "mmrecun"]
    assert len(mmrecun_runs) == 2  # only `epochs` is searched: lr was fixed by --set
    assert {cfg.lr for cfg in mmrecun_runs} == {0.002}
    lineage = read_meta(tmp_path / "sel")["lineage"]
    assert lineage["config"]["lr"] == 0.002 and lineage["selection"]["fixed"] == {"lr": 0.002}
    assert lineage["config"]["epochs"] in (5, 20)


# ----- the tamper-evident chain (issue 13 part 3) and a hostile ledger (issue 14) ----------------------
from mmunlearn.errors import InputError  # noqa: E402
from mmunlearn.workflow import ledger as L  # noqa: E402


def _chained(tmp_path: Path, n: int = 4) -> Path:
    run = tmp_path / "p"
    run.mkdir()
    for i in range(n):
        L.append_entry(run, {"format": L.FORMAT, "i": i, "parent": {"hash": "p" * 64}, "child": {"hash": f"c{i}"}})
    return run


def _rewrite(run: Path, lines: list[str]) -> None:
    (run / L.LEDGER).write_text("\n".join(lines) + "\n")


def test_chain_verifies_and_names_the_line_of_each_kind_of_tampering(tmp_path):
    run = _chained(tmp_path)
    rep = L.verify_ledger(run, parent_hash="p" * 64)
    assert rep.ok and rep.verified == 4 and not rep.problems
    lines = (run / L.LEDGER).read_text().splitlines()
    cases = {
        "edited": (lines[:2] + [lines[2].replace('"i": 2', '"i": 7')] + lines[3:], "line 3"),
        "removed": (lines[:1] + lines[2:], "line 2"),
        "reordered": ([lines[0], lines[2], lines[1], lines[3]], "line 2"),
        "last removed": (lines[:3], "line 4"),
        "inserted copy": (lines[:2] + [lines[1]] + lines[2:], "line 3"),
    }
    for kind, (tampered, where) in cases.items():
        _rewrite(run, tampered)
        rep = L.verify_ledger(run)
        assert not rep.ok, kind
        assert any(p.startswith(where) for p in rep.problems), (kind, rep.problems)
    _rewrite(run, lines)
    assert not L.verify_ledger(run, parent_hash="q" * 64).ok  # an entry of another checkpoint


def test_old_ledgers_without_chain_fields_are_reported_not_crashed_on(tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    _rewrite(run, [json.dumps({"format": L.FORMAT, "i": i}) for i in range(3)])
    rep = L.verify_ledger(run)
    assert not rep.ok and rep.legacy == 3 and not rep.problems and "cannot be verified" in rep.notes[0]
    L.append_entry(run, {"format": L.FORMAT, "i": 3})  # a new entry chains onto the old lines
    rep = L.verify_ledger(run)
    assert rep.ok and rep.verified == 1 and rep.legacy == 3


def test_ledger_verify_cli_exit_codes(tmp_path, run_dir):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("ledger*", ".locks"))
    L.append_entry(run, {"format": L.FORMAT, "parent": {"hash": read_meta(run)["weights_sha256"]}})
    L.append_entry(run, {"format": L.FORMAT, "parent": {"hash": read_meta(run)["weights_sha256"]}})
    ok = CliRunner().invoke(main, ["ledger", "verify", str(run)])
    assert ok.exit_code == 0 and "OK, 2 chained entries verified" in ok.output
    lines = (run / L.LEDGER).read_text().splitlines()
    _rewrite(run, lines[::-1])
    bad = CliRunner().invoke(main, ["ledger", "verify", str(run)])
    assert bad.exit_code == 1 and "line 1:" in bad.output and "Traceback" not in bad.output


def _writer(run: str, who: int, n: int) -> None:
    for i in range(n):
        L.append_entry(Path(run), {"format": L.FORMAT, "who": who, "i": i})


def test_two_processes_appending_at_once_lose_no_entry_and_keep_one_chain(tmp_path):
    import multiprocessing

    run = tmp_path / "shared"
    run.mkdir()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(run), w, 40)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    entries = read_ledger(run)
    assert sorted((e["who"], e["i"]) for e in entries) == [(w, i) for w in (0, 1) for i in range(40)]
    rep = L.verify_ledger(run)
    assert rep.ok and rep.verified == 80, rep.problems


@pytest.mark.parametrize("content, message", [
    (None, "not a regular file"), (b"[1, 2]\n", "expected a JSON object"), (b'{"a": "\xff"}\n', "not UTF-8"),
])
def test_hostile_ledger_files_are_one_line_errors(tmp_path, content, message):
    run = tmp_path / "r"
    run.mkdir()
    if content is None:
        (run / L.LEDGER).mkdir()
    else:
        (run / L.LEDGER).write_bytes(content)
    with pytest.raises(InputError, match=message) as exc:
        L.find_entry(run, "h", "p")
    assert "\n" not in str(exc.value)


def _copy_parent(run_dir: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, dst, ignore=shutil.ignore_patterns("ledger*", ".locks"))
    return dst


def test_failed_ledger_append_leaves_no_unrecorded_child(run_dir, tmp_path):
    parent = _copy_parent(run_dir, tmp_path / "parent")
    req = _request(parent, tmp_path, "interaction", 31)
    res = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(parent), "--request", str(req), "--method",
                                    "rebuild", "--out", str(tmp_path / "child")])
    assert res.exit_code == 0
    from mmunlearn.workflow import runner

    def broken(*_a, **_k):
        raise OSError(28, "No space left on device")

    old_hash = read_meta(tmp_path / "child")["weights_sha256"]
    orig = runner.ledger.append_entry
    runner.ledger.append_entry = broken
    try:
        res = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(parent), "--request", str(req), "--method",
                                        "rebuild-reset", "--out", str(tmp_path / "child"), "--force"])
        res2 = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(parent), "--request", str(req), "--method",
                                         "rebuild", "--out", str(tmp_path / "child3")])
    finally:
        runner.ledger.append_entry = orig
    assert res.exit_code == 2 and "child was not kept" in res.output
    assert read_meta(tmp_path / "child")["weights_sha256"] == old_hash  # the recorded child is back
    assert res2.exit_code == 2 and not (tmp_path / "child3").exists()
    assert [p.name for p in tmp_path.iterdir() if ".new-" in p.name or ".old-" in p.name] == []
    assert len(read_ledger(parent)) == 1


def test_forced_overwrite_of_a_recorded_child_is_recorded(run_dir, tmp_path):
    parent = _copy_parent(run_dir, tmp_path / "parent")
    req = _request(parent, tmp_path, "interaction", 32)
    args = ["unlearn", "--checkpoint", str(parent), "--request", str(req), "--out", str(tmp_path / "child")]
    assert CliRunner().invoke(main, [*args, "--method", "rebuild"]).exit_code == 0
    first = read_ledger(parent)[-1]
    assert CliRunner().invoke(main, [*args, "--method", "rebuild-reset", "--force"]).exit_code == 0
    last = read_ledger(parent)[-1]
    assert last["forced"] and last["overwrote"]["hash"] == first["child"]["hash"]
    assert last["child"]["hash"] == read_meta(tmp_path / "child")["weights_sha256"]
    assert L.verify_ledger(parent).ok


def test_duplicate_check_is_race_free_under_the_request_lock(run_dir, tmp_path):
    """A second process with the same request is refused while the first holds the request lock."""
    import multiprocessing

    from tests.test_io import _hold

    parent = _copy_parent(run_dir, tmp_path / "parent")
    req = _request(parent, tmp_path, "interaction", 33)
    h = json.loads(req.read_text())["hash"]
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(parent / L.LOCKS / f"request-{h[:32]}.lock"), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        res = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(parent), "--request", str(req),
                                        "--method", "rebuild", "--out", str(tmp_path / "b")])
    finally:
        release.set()
        holder.join(30)
    assert res.exit_code == 2 and "in use by another process" in res.output
    assert not (tmp_path / "b").exists() and read_ledger(parent) == []
