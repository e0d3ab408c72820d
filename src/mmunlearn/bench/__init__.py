"""Benchmarks: the unlearning experiment grid, its report, and speed/memory measurements."""
