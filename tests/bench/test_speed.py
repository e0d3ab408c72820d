"""The speed/memory benchmark runs the real trainer and records the machine's state beside its rows."""

from __future__ import annotations

import math

from mmunlearn.bench.speed import SpeedCase, measure, reference_gflops


def test_measure_times_every_epoch_through_the_trainer() -> None:
    row = measure(SpeedCase(dataset="synthetic", model="lightgcn", threads=1, epochs=2, batch_size=512,
                            eval_passes=1))
    assert len(row["epoch_seconds_all"]) == 3  # warm-up + 2 timed epochs, from the trainer's history
    assert row["epoch_seconds_median"] > 0 and row["eval_seconds_median"] > 0
    assert row["peak_rss_mib"] > 0 and set(row["content"].values()) <= {"synthetic"}
    probe = reference_gflops(repeats=1)
    assert math.isfinite(probe) and probe > 0
