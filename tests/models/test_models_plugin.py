"""The "plug in your own backbone" example of docs/MODELS.md runs as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import torch

from mmunlearn.data.interactions import InteractionData
from mmunlearn.models.registry import MODELS, build_model

from .conftest import train_steps

DOC = Path(__file__).resolve().parents[2] / "docs" / "MODELS.md"


def test_documented_custom_backbone_plugs_in(planted: InteractionData) -> None:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S).group(1)
    module = types.ModuleType("docs_models_example")  # dataclasses look their module up
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, str(DOC), "exec"), module.__dict__)
        model = build_model("tiny", planted)
        model.check_groups()
        losses = train_steps(model, planted, epochs=5, lr=1e-2)
        assert np.mean(losses[-3:]) < np.mean(losses[:3])
        model.rebuild_graphs(planted.train[:, :])
        model.reset_rows(np.array([0]), np.array([1]))
        model.to("cpu")
        assert model.r.device == torch.device("cpu")
    finally:
        MODELS.pop("tiny", None)
        sys.modules.pop(module.__name__, None)
