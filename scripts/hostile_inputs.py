"""Replay hostile and careless inputs against the real CLI and count tracebacks and lost or mixed data.

Each case runs ``python -m mmunlearn ...`` as a subprocess on tiny synthetic data in a temp folder and
is judged on three things: no traceback; the exit status expected (2 and one ``error:`` line for bad
input, nothing written); and, for the data-loss cases, an invariant on what is on disk afterwards (the
old run still loads with its own hash, every ledger entry's child holds the weights it records, ...).

    python scripts/hostile_inputs.py            # all cases, prints one line per case and a summary
    python scripts/hostile_inputs.py -k ledger  # only the ledger group of cases

Exit status 1 when any case shows a traceback, lost or mixed data, or a wrong exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PY = sys.executable
HUGE = str(2 ** 70)


@dataclass
class Outcome:
    name: str
    rc: int | None
    traceback: bool
    lost: bool
    wrong: bool
    detail: str = ""


@dataclass
class Env:
    root: Path
    data_dir: Path  # a dataset folder: data.inter + image_feat.npy
    run: Path  # a trained LightGCN run on data_dir
    request: Path  # a valid request for run
    outcomes: list[Outcome] = field(default_factory=list)
    n: int = 0

    def tmp(self, name: str) -> Path:
        self.n += 1
        path = self.root / f"case{self.n:03d}-{name}"
        path.mkdir()
        return path


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None,
        ) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([PY, "-m", "mmunlearn", *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd)


def _tb(proc: subprocess.CompletedProcess | None, stderr: str = "") -> bool:
    text = (proc.stderr + proc.stdout) if proc is not None else stderr
    return "Traceback (most recent call last)" in text


def _one_error_line(proc: subprocess.CompletedProcess) -> bool:
    """Exit 2 with one ``error:`` line, or click's own usage error (a usage hint, then one ``Error:`` line)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    if proc.returncode != 2 or not lines:
        return False
    ours = len(lines) == 1 and lines[0].startswith("error: ")
    clicks = lines[0].startswith("Usage:") and lines[-1].startswith("Error: ") and not _tb(proc)
    return ours or clicks


TRAIN = ("train", "--model", "lightgcn", "--epochs", "1", "--min-epochs", "1", "--threads", "1", "--quiet",
         "--batch-size", "256", "--set", "dim=8", "--set", "n_layers=1")


# ---------------------------------------------------------------------------------------------------
# setup


def setup(root: Path) -> Env:
    from mmunlearn.data.interactions import write_inter
    from mmunlearn.data.requests import sample_request, save_request
    from mmunlearn.data.synthetic import SyntheticConfig, generate

    data = generate(SyntheticConfig(n_users=60, n_items=40, interactions_per_user=8, seed=3))
    folder = root / "data"
    folder.mkdir()
    write_inter(data, folder / "data.inter")
    np.save(folder / "image_feat.npy", data.modalities["image"].values)
    run = root / "run"
    proc = cli(*TRAIN, "--dataset", str(folder), "--out", str(run))
    if proc.returncode != 0:
        raise SystemExit(f"setup: training the base run failed:\n{proc.stdout}\n{proc.stderr}")
    from mmunlearn.pipeline import load_data_and_model

    req = root / "request.json"
    save_request(req, sample_request(load_data_and_model(run).data, "interaction", 0.05, seed=1))
    return Env(root=root, data_dir=folder, run=run, request=req)


def copy_run(env: Env, where: Path, name: str = "run") -> Path:
    dst = where / name
    shutil.copytree(env.run, dst, ignore=shutil.ignore_patterns("ledger*", ".locks"))
    return dst


def run_hash(run: Path) -> str | None:
    """The run's weights hash if it loads consistently (weights match meta), else None."""
    from mmunlearn.errors import InputError
    from mmunlearn.pipeline import load_data_and_model

    try:
        return load_data_and_model(run).hash
    except (InputError, FileNotFoundError):
        return None


# ---------------------------------------------------------------------------------------------------
# case kinds


def bad_input(env: Env, name: str, make: Callable[[Path], list[str]], *, no_write: str | None = "out") -> None:
    """A command that must refuse with one ``error:`` line and exit 2, writing nothing at ``<tmp>/out``."""
    tmp = env.tmp(name)
    args = make(tmp)
    proc = cli(*args, cwd=tmp)
    wrote = no_write is not None and (tmp / no_write).exists()
    detail = proc.stderr.strip().splitlines()[-1][:160] if proc.stderr.strip() else proc.stdout[-160:]
    env.outcomes.append(Outcome(name, proc.returncode, _tb(proc), lost=wrote,
                                wrong=not _one_error_line(proc), detail=detail))


def invariant(env: Env, name: str, body: Callable[[Path], tuple[bool, bool, str]]) -> None:
    """``body(tmp) -> (traceback, lost, detail)``; a raised exception counts as a traceback of the script."""
    tmp = env.tmp(name)
    try:
        tb, lost, detail = body(tmp)
        wrong = False
    except AssertionError as exc:
        tb, lost, wrong, detail = False, False, True, f"unexpected: {exc}"[:200]
    env.outcomes.append(Outcome(name, None, tb, lost, wrong, detail))


# ---------------------------------------------------------------------------------------------------
# the cases


def inter_cases(env: Env) -> None:
    header = "userID\titemID\tx_label\n"
    body = (env.data_dir / "data.inter").read_text().split("\n", 1)[1]

    def folder(tmp: Path, inter: bytes | str, sidecar: object = None) -> list[str]:
        d = tmp / "ds"
        d.mkdir()
        (d / "data.inter").write_bytes(inter.encode() if isinstance(inter, str) else inter)
        if sidecar is not None:
            (d / "mmunlearn.json").write_bytes(sidecar if isinstance(sidecar, bytes) else json.dumps(sidecar).encode())
        return [*TRAIN, "--dataset", str(d), "--out", str(tmp / "out")]

    cases = {
        "inter-user-id-past-int64": header + f"{HUGE}\t0\t0\n" + body,
        "inter-item-id-past-int64": header + f"0\t{HUGE}\t0\n" + body,
        "inter-negative-id": header + "-3\t0\t0\n" + body,
        "inter-id-far-beyond": header + f"{2 ** 40}\t0\t0\n" + body,
        "inter-non-utf8": (header + body).encode() + b"\xff\xfe\n",
        "inter-float-id": header + "1.5\t0\t0\n" + body,
        "inter-bad-label": header + "0\t0\t7\n" + body,
        "inter-no-header": body,
        "inter-empty": "",
        "inter-header-only": header,
        "inter-duplicate-pair": header + body.split("\n")[0] + "\n" + body,
    }
    for name, text in cases.items():
        bad_input(env, name, lambda tmp, text=text: folder(tmp, text))
    inter = header + body
    for name, text in (("data-info-id-past-int64", header + f"{HUGE}\t0\t0\n" + body),
                       ("data-info-non-utf8", (header + body).encode() + b"\xff\n")):
        def info(tmp: Path, text=text) -> list[str]:
            path = tmp / "x.inter"
            path.write_bytes(text.encode() if isinstance(text, str) else text)
            return ["data", "info", str(path)]
        bad_input(env, name, info, no_write=None)
    for name, side in {"sidefile-2**40-users": {"n_users": 2 ** 40}, "sidefile-2**40-items": {"n_items": 2 ** 40},
                       "sidefile-users-string": {"n_users": "many"}, "sidefile-users-true": {"n_users": True},
                       "sidefile-list": [1, 2], "sidefile-non-utf8": b"{\"n_users\": \xff}"}.items():
        bad_input(env, name, lambda tmp, side=side: folder(tmp, inter, side))


def setting_cases(env: Env) -> None:
    data = str(env.data_dir)
    flags = {
        "set-dim-negative": ["--set", "dim=-4"], "lr-negative": ["--lr", "-1"], "lr-nan": ["--lr", "nan"],
        "lr-inf": ["--lr", "inf"], "batch-size-0": ["--batch-size", "0"], "epochs-0": ["--epochs", "0"],
        "threads-0": ["--threads", "0"], "set-n_layers-0": ["--set", "n_layers=0"],
        "set-reg_weight-negative": ["--set", "reg_weight=-1"], "set-dim-string": ["--set", "dim=big"],
        "set-unknown-key": ["--set", "nosuch=1"], "device-nosuch": ["--device", "nosuch"],
        "device-cuda-on-cpu": ["--device", "cuda:7"], "device-cuda": ["--device", "cuda"], "patience-0": ["--patience", "0"],
        "seed-negative": ["--seed", "-1"], "feature-seed-negative": ["--feature-seed", "-2"],
    }
    for name, extra in flags.items():
        bad_input(env, f"train-{name}", lambda tmp, extra=extra: [*TRAIN, "--dataset", data, *extra,
                                                                  "--out", str(tmp / "out")])

    def config(tmp: Path, payload: bytes, suffix: str) -> list[str]:
        (tmp / f"cfg{suffix}").write_bytes(payload)
        return [*TRAIN, "--dataset", data, "--config", str(tmp / f"cfg{suffix}"), "--out", str(tmp / "out")]

    for name, payload, suffix in (("config-non-utf8", b"[train]\nepochs = 1 # \xff\n", ".toml"),
                                  ("config-json-list", b"[1, 2]", ".json"),
                                  ("config-bad-toml", b"[train\n", ".toml"),
                                  ("config-section-not-table", b"train = 3\n", ".toml"),
                                  ("config-dim-negative", b"[model]\ndim = -4\n", ".toml"),
                                  ("config-epochs-float", b"[train]\nepochs = 1.5\n", ".toml"),
                                  ("config-lr-nan", b"[train]\nlr = nan\n", ".toml")):
        bad_input(env, name, lambda tmp, p=payload, s=suffix: config(tmp, p, s))
    bad_input(env, "config-is-folder", lambda tmp: [*TRAIN, "--dataset", data, "--config", str(tmp),
                                                    "--out", str(tmp / "out")])
    for name, extra in {"unlearn-set-lr-nan": ["--set", "lr=nan"], "unlearn-set-epochs-negative":
                        ["--set", "epochs=-1"], "unlearn-device-nosuch": ["--device", "nosuch"],
                        "unlearn-threads-negative": ["--threads", "-1"], "unlearn-seed-negative": ["--seed", "-1"],
                        "unlearn-set-lr-inf": ["--set", "lr=inf"], "unlearn-set-unknown": ["--set", "nosuch=1"],
                        "unlearn-method-nosuch": ["--method", "nosuch"]}.items():
        bad_input(env, name, lambda tmp, extra=extra: ["unlearn", "--checkpoint", str(copy_run(env, tmp)),
                                                       "--request", str(env.request), "--method", "finetune",
                                                       "--out", str(tmp / "out"), *extra])
    for name, extra in {"forget-sample-seed-negative": ["--seed", "-1"], "forget-sample-ratio-0": ["--ratio", "0"],
                        "forget-sample-ratio-nan": ["--ratio", "nan"]}.items():
        bad_input(env, name, lambda tmp, extra=extra: ["forget", "sample", "--checkpoint", str(env.run), "--regime",
                                                       "user", *extra, "-o", str(tmp / "out")])
    bad_input(env, "evaluate-device-nosuch", lambda tmp: ["evaluate", str(env.run), "--device", "nosuch"],
              no_write=None)
    bad_input(env, "evaluate-device-cuda", lambda tmp: ["evaluate", str(env.run), "--device", "cuda:7"],
              no_write=None)


def recommend_cases(env: Env) -> None:
    run = str(env.run)
    for name, extra in {"recommend-user-past-int64": ["--user", HUGE], "recommend-user-negative": ["--user", "-1"],
                        "recommend-user-unknown": ["--user", "100000"], "recommend-k-0": ["--user", "1", "--k", "0"],
                        "recommend-k-negative": ["--user", "1", "--k", "-5"]}.items():
        bad_input(env, name, lambda tmp, extra=extra: ["recommend", run, *extra], no_write=None)

    def k_catalogue(tmp: Path) -> tuple[bool, bool, str]:
        from mmunlearn.pipeline import load_data_and_model

        data = load_data_and_model(env.run).data
        proc = cli("recommend", run, "--user", "1", "--user", "2", "--k", str(data.n_items), "--json")
        assert proc.returncode == 0, proc.stderr[-200:]
        out = json.loads(proc.stdout)
        for u in (1, 2):
            items = [r["item"] for r in out[str(u)]]
            seen = set(data.train[u].indices.tolist())
            assert not seen & set(items), f"user {u}: training items recommended"
            assert len(items) == data.n_items - len(seen), f"user {u}: {len(items)} items"
        return _tb(proc), False, f"k={data.n_items} capped to the unseen items"
    invariant(env, "recommend-k-equals-catalogue", k_catalogue)


def request_cases(env: Env) -> None:
    good = json.loads(env.request.read_text())

    def req(tmp: Path, payload: bytes | dict | list) -> list[str]:
        path = tmp / "req.json"
        path.write_bytes(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        return ["unlearn", "--checkpoint", str(copy_run(env, tmp)), "--request", str(path), "--method",
                "finetune", "--out", str(tmp / "out")]

    cases: dict[str, bytes | dict | list] = {
        "request-fingerprint-5": {**good, "dataset": {**good["dataset"], "fingerprint": 5}},
        "request-non-utf8": json.dumps(good).encode()[:-1] + b"\xff}",
        "request-list": [1, 2],
        "request-dataset-list": {**good, "dataset": [1]},
        "request-users-strings": {**good, "users": ["a"], "hash": None},
        "request-users-past-int64": {**good, "users": [2 ** 70], "hash": None},
        "request-pairs-ragged": {**good, "pairs": [[1]], "hash": None},
        "request-pairs-past-int64": {**good, "pairs": [[1, 2 ** 70]], "hash": None},
        "request-hash-mismatch": {**good, "pairs": good["pairs"][1:]},
        "request-empty": {"users": [], "items": [], "pairs": []},
        "request-not-json": b"{not json",
        "request-unknown-key": {**good, "extra": 1},
        "request-regime-int": {**good, "regime": 3},
    }
    for name, payload in cases.items():
        bad_input(env, name, lambda tmp, p=payload: req(tmp, p))
    for name, payload in (("forget-show-non-utf8", b'{"users": [1], "regime": "\xff"}'),
                          ("forget-show-fingerprint-5", json.dumps({**good, "dataset": {"fingerprint": 5}}).encode())):
        def show(tmp: Path, payload=payload) -> list[str]:
            (tmp / "r.json").write_bytes(payload)
            return ["forget", "show", str(tmp / "r.json")]
        bad_input(env, name, show, no_write=None)
    bad_input(env, "unlearn-out-is-a-file", lambda tmp: ((tmp / "out").write_text("x"), [
        "unlearn", "--checkpoint", str(copy_run(env, tmp)), "--request", str(env.request), "--method", "finetune",
        "--out", str(tmp / "out")])[1], no_write=None)
    bad_input(env, "request-is-folder", lambda tmp: ["unlearn", "--checkpoint", str(copy_run(env, tmp)),
                                                     "--request", str(tmp), "--method", "finetune",
                                                     "--out", str(tmp / "out")])


def checkpoint_cases(env: Env) -> None:
    import torch

    def damaged(tmp: Path, damage: Callable[[Path], None], command: str) -> list[str]:
        run = copy_run(env, tmp)
        damage(run)
        if command == "evaluate":
            return ["evaluate", str(run)]
        return ["unlearn", "--checkpoint", str(run), "--request", str(env.request), "--method", "finetune",
                "--out", str(tmp / "out")]

    w = "model.safetensors"

    def pickle(run: Path) -> None:
        (run / w).unlink()
        torch.save({"x": torch.zeros(3)}, run / w)

    def swapped(run: Path) -> None:  # same model and shapes, other weights (another seed)
        other = run.parent / "other"
        proc = cli(*TRAIN, "--dataset", str(env.data_dir), "--seed", "5", "--out", str(other))
        assert proc.returncode == 0, proc.stderr[-200:]
        shutil.copy(other / w, run / w)

    def meta_edit(edit: Callable[[dict], object]) -> Callable[[Path], None]:
        def go(run: Path) -> None:
            meta = json.loads((run / "meta.json").read_text())
            (run / "meta.json").write_text(json.dumps(edit(meta)))
        return go

    damages: dict[str, Callable[[Path], None]] = {
        "weights-pickle": pickle,
        "weights-truncated": lambda run: (run / w).write_bytes((run / w).read_bytes()[:200]),
        "weights-empty": lambda run: (run / w).write_bytes(b""),
        "weights-missing": lambda run: (run / w).unlink(),
        "weights-folder": lambda run: ((run / w).unlink(), (run / w).mkdir()),
        "weights-swapped-same-shape": swapped,
        "meta-no-dataset": meta_edit(lambda m: {k: v for k, v in m.items() if k != "dataset"}),
        "meta-no-data_spec": meta_edit(lambda m: {k: v for k, v in m.items() if k != "data_spec"}),
        "meta-no-dataset-no-data_spec": meta_edit(lambda m: {k: v for k, v in m.items()
                                                             if k not in ("dataset", "data_spec")}),
        "meta-list": meta_edit(lambda m: [m]),
        "meta-non-utf8": lambda run: (run / "meta.json").write_bytes(b'{"format_version": 1, "x": "\xff"}'),
        "meta-model-dim-negative": meta_edit(lambda m: {**m, "model_config": {**m["model_config"], "dim": -4}}),
        "meta-data_spec-seed-string": meta_edit(lambda m: {**m, "data_spec": {**m["data_spec"], "feature_seed": "x"}}),
        "meta-unknown-model": meta_edit(lambda m: {**m, "model": "nosuch"}),
        "meta-folder": lambda run: ((run / "meta.json").unlink(), (run / "meta.json").mkdir()),
        "content-swapped-same-shape": lambda run: None,  # the data folder's image_feat.npy, below
    }
    for name, damage in damages.items():
        if name == "content-swapped-same-shape":
            continue
        for command in ("evaluate", "unlearn"):
            bad_input(env, f"{name}-{command}", lambda tmp, d=damage, c=command: damaged(tmp, d, c),
                      no_write="out")

    def content(tmp: Path) -> tuple[bool, bool, str]:
        data = tmp / "data"
        shutil.copytree(env.data_dir, data)
        run = tmp / "run"
        proc = cli(*TRAIN, "--dataset", str(data), "--out", str(run))
        assert proc.returncode == 0, proc.stderr[-200:]
        feats = np.load(data / "image_feat.npy")
        np.save(data / "image_feat.npy", feats[::-1].copy())  # same shape, other content
        proc = cli("evaluate", str(run))
        assert _one_error_line(proc) and "content" in proc.stderr, proc.stderr[-200:]
        return _tb(proc), False, proc.stderr.strip()[:160]
    invariant(env, "content-swapped-same-shape", content)

    def modes(tmp: Path) -> tuple[bool, bool, str]:
        bad = [p.name for p in env.run.iterdir() if p.is_file() and (p.stat().st_mode & 0o777) == 0o600]
        assert not bad, f"files with mode 0600: {bad}"
        return False, False, "run files readable per umask"
    invariant(env, "checkpoint-file-modes", modes)

    def relative(tmp: Path) -> tuple[bool, bool, str]:
        shutil.copytree(env.data_dir, tmp / "rel-data")
        proc = cli(*TRAIN, "--dataset", "rel-data", "--out", "run", cwd=tmp)
        assert proc.returncode == 0, proc.stderr[-200:]
        stored = json.loads((tmp / "run" / "meta.json").read_text())["data_spec"]["dataset"]
        assert Path(stored).is_absolute(), f"stored {stored!r}"
        proc = cli("evaluate", str(tmp / "run"), cwd=env.root)  # from another directory
        assert proc.returncode == 0, proc.stderr[-200:]
        return _tb(proc), False, f"stored {stored}"
    invariant(env, "relative-dataset-path", relative)


def ledger_cases(env: Env) -> None:
    def unlearn(run: Path, out: Path, *extra: str, env_vars: dict[str, str] | None = None,
                ) -> subprocess.CompletedProcess:
        return cli("unlearn", "--checkpoint", str(run), "--request", str(env.request), "--method", "finetune",
                   "--set", "epochs=0.2", "--out", str(out), *extra, env=env_vars)

    def consistent(run: Path) -> tuple[bool, str]:
        """Every ledger entry's child (unless a later entry overwrote it) holds the weights it records."""
        from mmunlearn.workflow.ledger import read_ledger

        entries = read_ledger(run)
        replaced = {e["overwrote"]["path"] for e in entries if e.get("overwrote")}
        latest: dict[str, str] = {}
        for e in entries:
            latest[e["child"]["path"]] = e["child"]["hash"]
        for path, want in latest.items():
            got = run_hash(Path(path))
            if got != want:
                return True, f"{path}: holds {got and got[:12]}, ledger says {want[:12]}"
        return False, f"{len(entries)} entries, {len(replaced)} forced overwrite(s) recorded"

    def ledger_is(tmp: Path, content: bytes | None, folder: bool = False) -> list[str]:
        run = copy_run(env, tmp)
        if folder:
            (run / "ledger.jsonl").mkdir()
        else:
            (run / "ledger.jsonl").write_bytes(content or b"")
        return ["unlearn", "--checkpoint", str(run), "--request", str(env.request), "--method", "finetune",
                "--out", str(tmp / "out")]

    bad_input(env, "ledger-is-folder", lambda tmp: ledger_is(tmp, None, folder=True))
    bad_input(env, "ledger-line-list", lambda tmp: ledger_is(tmp, b"[1, 2]\n"))
    bad_input(env, "ledger-non-utf8", lambda tmp: ledger_is(tmp, b'{"a": "\xff"}\n'))
    bad_input(env, "ledger-not-json", lambda tmp: ledger_is(tmp, b"{oops\n"))
    bad_input(env, "ledger-verify-folder", lambda tmp: ["ledger", "verify", str(tmp)], no_write=None)

    def tampered(tmp: Path) -> tuple[bool, bool, str]:
        run = copy_run(env, tmp)
        for i, ratio in enumerate(("0.03", "0.04", "0.06")):
            req = tmp / f"r{i}.json"
            proc = cli("forget", "sample", "--checkpoint", str(run), "--regime", "interaction", "--ratio", ratio,
                       "--seed", str(i), "-o", str(req))
            assert proc.returncode == 0, proc.stderr[-200:]
            proc = cli("unlearn", "--checkpoint", str(run), "--request", str(req), "--method", "rebuild",
                       "--out", str(tmp / f"c{i}"))
            assert proc.returncode == 0, proc.stderr[-300:]
        ok = cli("ledger", "verify", str(run))
        assert ok.returncode == 0, ok.stderr[-200:]
        tb = _tb(ok)
        original = (run / "ledger.jsonl").read_text().splitlines()
        edits = {
            "edited": (original[:1] + [original[1].replace('"forced": false', '"forced": true')] + original[2:], 2),
            "removed": (original[:1] + original[2:], 2),
            "reordered": ([original[1], original[0], original[2]], 1),
            "last-removed": (original[:2], 3),
        }
        found = []
        for kind, (lines, line_no) in edits.items():
            (run / "ledger.jsonl").write_text("\n".join(lines) + "\n")
            proc = cli("ledger", "verify", str(run))
            tb |= _tb(proc)
            assert proc.returncode == 1 and f"line {line_no}" in proc.stderr, f"{kind}: {proc.stderr[-300:]}"
            found.append(kind)
        legacy = [json.dumps({k: v for k, v in json.loads(ln).items() if k not in ("chain", "entry_hash")})
                  for ln in original]
        (run / "ledger.jsonl").write_text("\n".join(legacy) + "\n")
        (run / "ledger.head.json").unlink()
        proc = cli("ledger", "verify", str(run))
        tb |= _tb(proc)
        assert proc.returncode == 1 and "predate" in proc.stderr, f"legacy: {proc.stderr[-300:]}"
        return tb, False, "verify names the line of: " + ", ".join(found) + "; legacy ledger reported"
    invariant(env, "ledger-verify-tampering", tampered)

    def failed_append(tmp: Path) -> tuple[bool, bool, str]:
        run = copy_run(env, tmp)
        (run / ".locks" / "ledger.lock").mkdir(parents=True)  # only the append fails, after the child is made
        proc = unlearn(run, tmp / "child")
        assert proc.returncode == 2 and "child was not kept" in proc.stderr, proc.stderr[-200:]
        leftovers = [p.name for p in tmp.iterdir() if p.name.startswith((".child", "child"))
                     and not p.name.endswith(".lock")]
        return _tb(proc), bool(leftovers), f"left: {leftovers or 'nothing'}"
    invariant(env, "unlearn-failed-ledger-append", failed_append)

    def same_out(tmp: Path) -> tuple[bool, bool, str]:
        run = copy_run(env, tmp)
        req2 = tmp / "r2.json"
        proc = cli("forget", "sample", "--checkpoint", str(run), "--regime", "user", "--ratio", "0.05", "-o", str(req2))
        assert proc.returncode == 0, proc.stderr[-200:]
        slow = {"MMUNLEARN_UNLEARN_PAUSE": "6"}
        cmd = ["unlearn", "--checkpoint", str(run), "--method", "finetune", "--out", str(tmp / "child")]
        full = {**os.environ, **slow, "PYTHONUNBUFFERED": "1"}
        a = subprocess.Popen([PY, "-m", "mmunlearn", *cmd, "--request", str(env.request)], env=full,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(a, "unlearning:")
        b = cli(*cmd, "--request", str(req2), "--force")
        out_a, err_a = a.communicate(timeout=300)
        assert a.returncode == 0, err_a[-200:]
        assert b.returncode == 2 and "in use" in b.stderr, b.stderr[-200:]
        lost, detail = consistent(run)
        return _tb(b) or "Traceback" in err_a, lost, detail
    invariant(env, "unlearn-two-processes-same-out", same_out)

    def same_request(tmp: Path) -> tuple[bool, bool, str]:
        run = copy_run(env, tmp)
        full = {**os.environ, "MMUNLEARN_UNLEARN_PAUSE": "6", "PYTHONUNBUFFERED": "1"}
        a = subprocess.Popen([PY, "-m", "mmunlearn", "unlearn", "--checkpoint", str(run), "--request",
                              str(env.request), "--method", "retrain", "--set", "max_epochs=1", "--out",
                              str(tmp / "a")], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(a, "unlearning:")
        b = cli("unlearn", "--checkpoint", str(run), "--request", str(env.request), "--method", "retrain",
                "--set", "max_epochs=1", "--out", str(tmp / "b"))
        _, err_a = a.communicate(timeout=300)
        from mmunlearn.workflow.ledger import read_ledger

        n = len(read_ledger(run))
        assert a.returncode == 0 and b.returncode == 2, (err_a[-200:], b.stderr[-200:])
        return _tb(b) or "Traceback" in err_a, n != 1 or (tmp / "b").exists(), f"{n} ledger entry, b refused"
    invariant(env, "unlearn-same-request-racing", same_request)

    def force_over_child(tmp: Path) -> tuple[bool, bool, str]:
        run = copy_run(env, tmp)
        p1 = unlearn(run, tmp / "child")
        p2 = unlearn(run, tmp / "child")  # same request, same out: refused
        p3 = unlearn(run, tmp / "child", "--force")
        assert p1.returncode == 0 and p2.returncode == 2 and p3.returncode == 0, (p1.stderr[-200:], p2.stderr[-200:],
                                                                                  p3.stderr[-200:])
        from mmunlearn.workflow.ledger import read_ledger

        last = read_ledger(run)[-1]
        assert last.get("overwrote") and last["forced"], "forced overwrite not recorded"
        lost, detail = consistent(run)
        v = cli("ledger", "verify", str(run))
        assert v.returncode == 0, v.stderr[-200:]
        return any(_tb(p) for p in (p1, p2, p3, v)), lost, detail
    invariant(env, "unlearn-force-over-recorded-child", force_over_child)


def _wait_for(proc: subprocess.Popen, marker: str, timeout: float = 120) -> None:
    start = time.time()
    assert proc.stdout is not None
    while time.time() - start < timeout:
        line = proc.stdout.readline()
        if marker in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"process ended before printing {marker!r}: {proc.stderr.read()[-200:]}")
    raise AssertionError(f"no {marker!r} within {timeout} s")


def overwrite_cases(env: Env) -> None:
    data = str(env.data_dir)

    def refuse(tmp: Path) -> tuple[bool, bool, str]:
        run = copy_run(env, tmp)
        before = run_hash(run)
        proc = cli(*TRAIN, "--dataset", data, "--seed", "9", "--out", str(run))
        assert _one_error_line(proc) and "--force" in proc.stderr, proc.stderr[-200:]
        return _tb(proc), run_hash(run) != before, "refused; old run intact"
    invariant(env, "train-out-exists-no-force", refuse)

    def force(tmp: Path) -> tuple[bool, bool, str]:
        run = copy_run(env, tmp)
        before = run_hash(run)
        proc = cli(*TRAIN, "--dataset", data, "--seed", "9", "--out", str(run), "--force")
        assert proc.returncode == 0, proc.stderr[-200:]
        after = run_hash(run)
        leftovers = [p.name for p in tmp.iterdir() if p.name.startswith(".run.")]
        return _tb(proc), after is None or after == before or bool(leftovers), f"replaced; leftovers {leftovers}"
    invariant(env, "train-out-exists-force", force)

    def killed(tmp: Path) -> tuple[bool, bool, str]:
        """kill -9 the forced overwrite at several moments: --out is always one whole run, old or new."""
        run = copy_run(env, tmp)
        t0 = time.time()
        proc = cli(*TRAIN, "--dataset", data, "--seed", "77", "--out", str(run), "--force")
        assert proc.returncode == 0, proc.stderr[-200:]
        full = time.time() - t0  # kill at moments spread over the last half of a whole run, save included
        old = run_hash(run)
        states = []
        for delay in np.linspace(0.5 * full, 1.05 * full, 8):
            p = subprocess.Popen([PY, "-m", "mmunlearn", *TRAIN, "--dataset", data, "--seed", str(int(delay * 100)),
                                  "--out", str(run), "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
            h = run_hash(run)
            if h is None:  # the only acceptable gap: between the two renames, old run kept aside
                aside = [q for q in tmp.iterdir() if q.name.startswith(".run.old-") and run_hash(q)]
                if not aside:
                    return False, True, f"after kill at {delay:.1f}s: no consistent run at --out and none aside"
                os.replace(aside[0], run)
                h = run_hash(run)
            states.append("old" if h == old else "new")
            old = h
        partial = [q.name for q in tmp.iterdir() if q.name.startswith(".run.new-")]
        return False, False, (f"run takes {full:.1f} s; after each kill --out held: " + ",".join(states)
                              + f"; {len(partial)} partial staging folder(s) left beside it")
    invariant(env, "train-force-kill-9", killed)


GROUPS = [inter_cases, setting_cases, recommend_cases, request_cases, checkpoint_cases, ledger_cases, overwrite_cases]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only the case groups whose name contains this (inter, setting, "
                                           "recommend, request, checkpoint, ledger, overwrite)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mmunlearn-hostile-"))
    start = time.time()
    try:
        env = setup(root)
        for group in GROUPS:
            if args.k in group.__name__:
                group(env)
        for o in env.outcomes:
            flag = "TRACEBACK" if o.traceback else "LOST" if o.lost else "WRONG" if o.wrong else "ok"
            print(f"{flag:9s} {o.name:44s} rc={o.rc!s:4s} {o.detail}")
        tb = sum(o.traceback for o in env.outcomes)
        lost = sum(o.lost for o in env.outcomes)
        wrong = sum(o.wrong for o in env.outcomes)
        print(f"hostile inputs: tried {len(env.outcomes)}, tracebacks {tb}, lost-or-mixed {lost}, "
              f"wrong exit {wrong} ({time.time() - start:.0f} s)")
        return 1 if tb or lost or wrong else 0
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")


if __name__ == "__main__":
    sys.exit(main())
