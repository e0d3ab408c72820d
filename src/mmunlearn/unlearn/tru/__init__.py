"""TRU — Targeted Reverse Update: the exact part, then gated (gate.py), branch-scaled (scaling.py) and
isolated (isolation.py) reverse updates towards retrain-free targets (../targets.py)."""

from mmunlearn.unlearn.tru.method import TRU, TRUConfig

__all__ = ["TRU", "TRUConfig"]
