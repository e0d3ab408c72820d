"""Continual deletion: a stream of forget requests applied one after another, with drift tracking and
reconciliation by exact retraining. What ``mmunlearn stream`` does.

Each step is a real unlearning call (:func:`~mmunlearn.workflow.runner.unlearn_checkpoint`): the
child checkpoint of step ``k`` (its own folder, its ledger line in its parent) becomes the parent of
step ``k + 1``. After every step the stream measures

- ``proxy_gap``: the retrain-free forgetting proxy of that step's own request (``runner.summarise``:
  mean rank percentile of the step's deleted pairs minus their retrain-free target);
- ``drift``: the same proxy over **all deletions since the last exact model** (the base checkpoint or
  the last reconciliation), measured against that exact model. Approximate steps start from an
  approximate parent, so their errors compound; a step's own proxy cannot see what later steps do to
  earlier deleted pairs, the drift does.

Reconciliation makes the model exact again for all deletions so far. For a single model it is a
Retrain (the ``retrain`` method applied to the step's request on its parent: the parent's data already
lacks the earlier deletions). For a sharded model (``mmunlearn train --shards K``) it is the sharded exact
method of its aggregator (``sisa`` for mean, ``receraser`` for attention) applied to *every deletion since
the last exact model* on that exact model: only the shards those deletions touched retrain, the others are
the exact model's, bit-identical — the approximate steps' edits to them are dropped with the rest.
``reconcile_every = N`` retrains at steps N, 2N, … instead of running the approximate method;
``drift_budget = X`` runs the method and, when ``|drift| > X``, retrains that step as well (the
approximate child stays on disk with its ledger line; the Retrain child becomes the next parent).

Crash safety: ``stream.json`` in the output folder (written atomically after every step and sub-step)
records the request hashes in order and every finished step. A restarted stream verifies the request
list is unchanged, skips finished steps, and *adopts* a child whose folder is complete (``meta.json``
written last) but was not yet recorded — so after ``kill -9`` no request is applied twice or lost. A
child that was saved but whose ledger line was not yet appended gets the line on adoption.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmunlearn.data.requests import ForgetRequest, apply_request, load_request, save_request
from mmunlearn.errors import InputError
from mmunlearn.io import atomic_write_json

STATE_FILE = "stream.json"
STATE_FORMAT = "mmunlearn.stream"
#: test hook: seconds to sleep after each recorded step (lets a test kill the stream between steps)
STEP_PAUSE_ENV = "MMUNLEARN_STREAM_STEP_PAUSE"


@dataclass(frozen=True)
class StreamConfig:
    method: str
    reconcile_every: int = 0  # 0 = never on a schedule
    drift_budget: float = 0.0  # 0 = never on drift
    seed: int = 0
    device: str = "cpu"
    select: bool = False
    overrides: tuple[tuple[str, Any], ...] = ()

    def validate(self) -> StreamConfig:
        if self.reconcile_every < 0:
            raise InputError(f"--reconcile-every must be >= 0, got {self.reconcile_every}")
        if self.drift_budget < 0:
            raise InputError(f"--drift-budget must be >= 0, got {self.drift_budget}")
        if is_exact(self.method) and (self.reconcile_every or self.drift_budget):
            raise InputError(f"--method {self.method} is exact already: it needs no reconciliation")
        return self


def is_exact(method: str) -> bool:
    """Exact by construction (Retrain, the sharded methods): a stream of it never drifts, so is never reconciled."""
    from mmunlearn.unlearn.base import method_names, method_spec

    return method == "retrain" or (method in method_names()
                                   and getattr(method_spec(method).cls, "needs_sharded_original", False))


def load_requests(source: Path, out: Path) -> list[Path]:
    """Request files in arrival order: a folder's ``*.json`` sorted by name, or a JSONL file's lines
    (written one per file under ``out/requests/`` so each step's request has a path and a hash)."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix == ".json" and p.is_file())
        if not files:
            raise InputError(f"--requests {source}: the folder holds no *.json request")
        return files
    if not source.is_file():
        raise InputError(f"--requests {source}: no such file or folder")
    paths = []
    lines = [(n, line) for n, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    if not lines:
        raise InputError(f"--requests {source}: no request in the file")
    for k, (n, line) in enumerate(lines):
        req = ForgetRequest.from_json(line, where=f"{source}:{n}")
        path = out / "requests" / f"{k:03d}.json"
        if not path.is_file() or load_request(path).hash != req.hash:
            save_request(path, req)
        paths.append(path)
    return paths


def _read_state(out: Path) -> dict[str, Any] | None:
    path = out / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); it is written atomically, so it was edited") from None
    if state.get("format") != STATE_FORMAT:
        raise InputError(f"{path}: not a stream state file (format {state.get('format')!r})")
    return state


def _write_state(out: Path, state: dict[str, Any]) -> None:
    atomic_write_json(out / STATE_FILE, state)


def _adopt_or_run(parent: Path, request_path: Path, method: str, child: Path, cfg: StreamConfig, *,
                  force: bool) -> dict[str, Any]:
    """The child's metrics: adopted when the folder already holds this step's finished child, else run."""
    from mmunlearn.checkpoint import read_meta
    from mmunlearn.workflow import ledger
    from mmunlearn.workflow.runner import unlearn_checkpoint

    request = load_request(request_path)
    if (child / "meta.json").is_file():
        meta = read_meta(child)
        lin = meta.get("lineage", {})
        parent_meta = read_meta(parent)
        if lin.get("request_hash") != request.hash or lin.get("parent_hash") != parent_meta.get("weights_sha256") \
                or lin.get("method") != method:
            raise InputError(f"{child}: holds a checkpoint of another request/parent/method; "
                             "the stream folder was modified — use a fresh --out")
        if ledger.find_entry(parent, request.hash, lin["parent_hash"]) is None:  # died before the ledger line
            unl = meta.get("unlearn", {})
            entry = ledger.make_entry(request=request, counts=unl.get("counts", {}), method=method,
                                      config=lin.get("config", {}), seed=int(lin.get("seed", 0)),
                                      parent_path=parent, parent_hash=lin["parent_hash"], child_path=child,
                                      child_hash=meta["weights_sha256"], seconds=float(unl.get("seconds", 0.0)),
                                      metrics=meta.get("metrics", {}), forced=force)
            ledger.append_entry(parent, entry)
        return {**meta.get("metrics", {}), "adopted": True}
    rep = unlearn_checkpoint(parent, request_path, method, child, device=cfg.device, seed=cfg.seed,
                             overrides=dict(cfg.overrides), force=force, select=cfg.select and method != "retrain")
    return dict(rep.metrics)


def merged_request(paths: list[Path]) -> ForgetRequest:
    """The union of the requests at ``paths`` (keeps the first one's dataset record: the data it was drawn on)."""
    merged = load_request(paths[0])
    for p in paths[1:]:
        merged = merged.merged_with(load_request(p))
    return merged


def exact_method(checkpoint: Path) -> str:
    """The method that reconciles a stream on ``checkpoint``: the sharded exact one for a sharded model."""
    from mmunlearn.checkpoint import read_meta
    from mmunlearn.unlearn.sharded import method_for_aggregator

    meta = read_meta(checkpoint)
    if meta.get("model") != "sharded":
        return "retrain"
    return method_for_aggregator(meta["model_config"]["aggregator"])


def _reconcile(state: dict[str, Any], k: int, req_path: Path, out: Path, cfg: StreamConfig, exact: str, *,
               force: bool) -> tuple[Path, dict[str, Any]]:
    """The exact child of step ``k`` and its metrics (see the module doc: Retrain, or the touched shards)."""
    if exact == "retrain":
        child = out / "steps" / f"{k:03d}-retrain"
        return child, _adopt_or_run(Path(state["parent"]), req_path, "retrain", child, cfg, force=force)
    merged = merged_request([*(Path(p) for p in state["since_anchor"]), req_path])
    merged_path = out / "requests" / f"reconcile-{k:03d}.json"
    if not merged_path.is_file() or load_request(merged_path).hash != merged.hash:
        save_request(merged_path, merged)
    child = out / "steps" / f"{k:03d}-{exact}"
    metrics = _adopt_or_run(Path(state["anchor"]), merged_path, exact, child, cfg, force=force)
    earlier = state["steps"][len(state["steps"]) - len(state["since_anchor"]):]
    if metrics.get("forget_pairs") is not None:  # the step's own pairs, as for every other step
        metrics["reconciled_pairs"] = metrics["forget_pairs"]
        metrics["forget_pairs"] -= sum(int(s["forget_pairs"]) for s in earlier)
    return child, metrics


def measure_drift(model_dir: Path, anchor: Path, since_anchor: list[Path], seed: int,
                  device: str = "cpu") -> float:
    """Proxy gap of ``model_dir`` on every deletion since the exact model ``anchor`` (see module doc)."""
    from mmunlearn.checkpoint import read_meta
    from mmunlearn.train.trainer import TrainConfig
    from mmunlearn.unlearn.base import UnlearnContext
    from mmunlearn.workflow.runner import load_run, summarise

    if not since_anchor:
        return 0.0
    exact = load_run(anchor, device=device)
    merged = merged_request(since_anchor)
    merged = ForgetRequest(users=merged.users, items=merged.items, pairs=merged.pairs, regime="merged",
                           dataset={})  # the parts were drawn from successive data; validated together here
    applied = apply_request(exact.data, merged)
    current = load_run(model_dir, device=device)
    meta = read_meta(anchor)
    ctx = UnlearnContext(original=exact.model, applied=applied, model_name=meta["model"],
                         model_config=exact.model.config, train_config=TrainConfig(), seed=seed, device=device)
    # judged against the reference the step's method aimed at (an exact step's config names none)
    reference = ((current.meta.get("lineage") or {}).get("config") or {}).get("item_reference")
    return float(summarise(current.model, ctx, reference)["proxy_gap"])


def run_stream(checkpoint: Path, requests: Path, out: Path, cfg: StreamConfig,
               echo: Any = print) -> dict[str, Any]:
    """Apply every request in order (resuming a stopped stream in ``out``); returns the final state."""
    import os

    from mmunlearn.checkpoint import read_meta
    from mmunlearn.unlearn.base import method_names

    cfg.validate()
    if cfg.method not in method_names():
        raise InputError(f"--method {cfg.method!r}: unknown; available: {', '.join(method_names())}")
    checkpoint, out = Path(checkpoint), Path(out)
    read_meta(checkpoint)  # a clear error for a folder that is not a checkpoint
    out.mkdir(parents=True, exist_ok=True)
    paths = load_requests(requests, out)
    exact = exact_method(checkpoint)
    hashes = [load_request(p).hash for p in paths]
    settings = {"checkpoint": str(checkpoint), "method": cfg.method, "reconcile_every": cfg.reconcile_every,
                "drift_budget": cfg.drift_budget, "seed": cfg.seed, "select": cfg.select,
                "overrides": [list(kv) for kv in cfg.overrides]}
    state = _read_state(out)
    if state is None:
        state = {"format": STATE_FORMAT, "settings": settings, "requests": hashes, "steps": [],
                 "parent": str(checkpoint), "anchor": str(checkpoint), "since_anchor": [], "pending": None}
        _write_state(out, state)
    else:
        if state["settings"] != settings:
            raise InputError(f"{out / STATE_FILE}: this folder holds a stream with other settings "
                             f"({state['settings']}); use a fresh --out")
        if state["requests"][:len(state["steps"])] != hashes[:len(state["steps"])] or len(hashes) < len(state["steps"]):
            raise InputError(f"{out / STATE_FILE}: the request list changed under a running stream "
                             "(finished requests differ); use a fresh --out")
        state["requests"] = hashes
    pause = float(os.environ.get(STEP_PAUSE_ENV, "0") or 0)
    for k in range(len(state["steps"]), len(paths)):
        parent, req_path = Path(state["parent"]), paths[k]
        scheduled = cfg.reconcile_every > 0 and (k + 1) % cfg.reconcile_every == 0
        method = exact if scheduled else cfg.method
        t0 = time.perf_counter()
        if scheduled:
            child, metrics = _reconcile(state, k, req_path, out, cfg, exact, force=False)
        else:
            child = out / "steps" / f"{k:03d}-{method}"
            metrics = _adopt_or_run(parent, req_path, method, child, cfg, force=False)
        since = [*state["since_anchor"], str(req_path)]
        step: dict[str, Any] = {"index": k, "request": str(req_path), "request_hash": hashes[k], "method": method,
                                "child": str(child), "proxy_gap": metrics.get("proxy_gap"),
                                "valid_ndcg@20": metrics.get("valid_ndcg@20"), "seconds": metrics.get("seconds"),
                                "forget_pairs": metrics.get("forget_pairs"), "reconciled": scheduled,
                                "reason": "schedule" if scheduled else None}
        if "reconciled_pairs" in metrics:  # a sharded reconciliation: all pairs since the last exact model
            step["reconciled_pairs"] = metrics["reconciled_pairs"]
        if scheduled:
            step["drift"] = 0.0
        else:
            step["drift"] = measure_drift(child, Path(state["anchor"]), [Path(p) for p in since], cfg.seed, cfg.device)
            if cfg.drift_budget > 0 and abs(step["drift"]) > cfg.drift_budget:
                state["pending"] = step  # the approximate child is done: a crash resumes at the Retrain
                _write_state(out, state)
                exact_child, rmetrics = _reconcile(state, k, req_path, out, cfg, exact, force=True)
                step.update({"approximate_child": str(child), "approximate_drift": step["drift"],
                             "child": str(exact_child), "drift": 0.0, "reconciled": True, "reason": "drift",
                             "reconcile_seconds": rmetrics.get("seconds"),
                             "valid_ndcg@20": rmetrics.get("valid_ndcg@20")})
        step["wall_seconds"] = time.perf_counter() - t0
        state["steps"].append(step)
        state["parent"] = step["child"]
        if step["reconciled"]:
            state["anchor"], state["since_anchor"] = step["child"], []
        else:
            state["since_anchor"] = since
        state["pending"] = None
        _write_state(out, state)
        echo(f"step {k + 1}/{len(paths)}: {step['method'] if not step.get('approximate_child') else cfg.method + ' + retrain'}"
             f" on {step['forget_pairs']} pairs, proxy gap {_fmt(step['proxy_gap'])}, drift "
             f"{_fmt(step.get('approximate_drift', step['drift']))}"
             f"{' -> reconciled (' + step['reason'] + ')' if step['reconciled'] else ''}")
        if pause > 0:
            time.sleep(pause)
    return state


def _fmt(x: Any) -> str:
    return "–" if x is None else f"{float(x):+.3f}"


__all__ = ["run_stream", "StreamConfig", "load_requests", "measure_drift", "merged_request", "exact_method",
           "is_exact", "STATE_FILE", "STEP_PAUSE_ENV"]
