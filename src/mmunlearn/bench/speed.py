"""Speed and memory of the backbones: seconds per training epoch, per full evaluation pass, peak RSS.

Each measurement runs in a fresh subprocess so its peak RSS is its own (``ru_maxrss`` never goes
down within a process). Timings are wall-clock medians over a few epochs after one warm-up epoch;
they are only meaningful on an otherwise idle machine, and the thread count is part of the result.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class SpeedCase:
    dataset: str
    model: str
    threads: int = 1
    epochs: int = 3
    batch_size: int = 2048
    device: str = "cpu"
    eval_passes: int = 3


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reference_gflops(repeats: int = 5) -> float:
    """GFLOP/s of a fixed fp32 product (7,050 × 4,096 × 64, MGCN's projection on Baby), best of ``repeats``.

    The VMs here change speed by up to 1.5× over an hour with nothing else running (the host's load,
    not ours), so every row carries this probe: rows are comparable when their probes are.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(7050, 4096, generator=gen)
    b = torch.randn(4096, 64, generator=gen)
    best = float("inf")
    for _ in range(repeats + 1):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * 7050 * 4096 * 64 / best / 1e9


def measure(case: SpeedCase) -> dict[str, Any]:
    """Run in *this* process: build data and model, train through the real trainer, time evaluations.

    Training goes through :func:`~mmunlearn.train.trainer.train` (fused Adam, a valid evaluation and a
    best-state snapshot every epoch, the best weights restored at the end), so the peak RSS is that of
    an actual training run, not of a bare loop. Epoch seconds are the trainer's own per-epoch training
    time (evaluation excluded); the first epoch is a warm-up and is not in the median.
    """
    from mmunlearn.evaluate.ranking import evaluate_split
    from mmunlearn.models.registry import build_model, model_config
    from mmunlearn.pipeline import prepare_for_model
    from mmunlearn.train.trainer import TrainConfig, configure_runtime, seed_everything, train

    n_epochs = case.epochs + 1
    tcfg = TrainConfig(epochs=n_epochs, batch_size=case.batch_size, lr=1e-3, min_epochs=n_epochs,
                       patience=n_epochs, eval_every=1, seed=0, device=case.device, threads=case.threads)
    device = configure_runtime(tcfg)
    seed_everything(0)
    cfg = model_config(case.model)
    t0 = time.perf_counter()
    prepared = prepare_for_model(case.dataset, 0, case.model, cfg)
    data = prepared.data
    model = build_model(case.model, data, cfg).to(device)
    setup = time.perf_counter() - t0
    result = train(model, data, tcfg, show_progress=False)
    epoch_times = [h["train_seconds"] for h in result.history]
    eval_times = []
    for _ in range(case.eval_passes):
        t = time.perf_counter()
        evaluate_split(model, data, "test")
        if device.type == "cuda":
            torch.cuda.synchronize()
        eval_times.append(time.perf_counter() - t)
    return {
        **asdict(case),
        "n_users": data.n_users, "n_items": data.n_items, "train_pairs": int(data.train.nnz),
        "content": {n: m.provenance for n, m in data.modalities.items()},
        "setup_seconds": setup,
        "epoch_seconds_median": statistics.median(epoch_times[1:]),
        "epoch_seconds_all": epoch_times,
        "eval_seconds_median": statistics.median(eval_times),
        "peak_rss_mib": _peak_rss_mib(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.system()}",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def measure_in_subprocess(case: SpeedCase) -> dict[str, Any]:
    """:func:`measure` in a fresh process, with the machine-speed probe taken here just before (here, so
    the probe's 115 MB operand never counts in the case's peak RSS)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(case.threads)
    try:
        probe = reference_gflops() if case.device == "cpu" else None
    finally:
        torch.set_num_threads(threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(case.threads), MKL_NUM_THREADS=str(case.threads))
    proc = subprocess.run([sys.executable, "-m", "mmunlearn.bench.speed", json.dumps(asdict(case))],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"speed case {case} failed:\n{proc.stderr[-2000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "reference_gflops": probe}


if __name__ == "__main__":
    print(json.dumps(measure(SpeedCase(**json.loads(sys.argv[1])))))
