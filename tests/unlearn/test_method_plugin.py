"""A new unlearning method is one registration: the CLI, `--select` and `mmunlearn methods` pick it up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from mmunlearn.cli import main
from mmunlearn.config import option
from mmunlearn.data.requests import sample_request, save_request
from mmunlearn.models.base import Recommender
from mmunlearn.pipeline import DataSpec, prepare_data, train_and_save
from mmunlearn.train.trainer import TrainConfig
from mmunlearn.unlearn.base import (
    METHODS,
    UnlearnContext,
    UnlearnMethod,
    register_method,
    start_from_original,
)


@dataclass(frozen=True)
class ShrinkConfig:
    factor: float = option(0.9, "multiply the deleted users' rows by this")


class Shrink(UnlearnMethod):
    """A toy method: the rebuilt original with the touched users' embedding rows scaled down."""

    config_cls = ShrinkConfig

    def _run(self, ctx: UnlearnContext) -> tuple[Recommender, dict[str, Any]]:
        import torch

        model, log = start_from_original(ctx)
        users = torch.as_tensor(ctx.applied.forget_users)
        with torch.no_grad():
            for pname, kind in model.embedding_tables().items():
                if kind == "user":
                    dict(model.named_parameters())[pname][users] *= self.config.factor
        return model, {**log, "factor": self.config.factor}


@pytest.fixture
def registered():
    register_method("shrink-test", Shrink, ShrinkConfig, "scale the touched users' rows (test plug-in)",
                    search={"factor": [0.5, 0.9]})
    yield "shrink-test"
    METHODS.pop("shrink-test", None)


def test_a_registered_method_runs_from_the_cli_with_selection(registered, tmp_path):
    from mmunlearn.checkpoint import read_meta

    out = tmp_path / "run"
    prepared = prepare_data(DataSpec(dataset="synthetic"))
    train_and_save(prepared, "lightgcn", _lightgcn_cfg(), TrainConfig(epochs=1, min_epochs=1, threads=1),
                   out, show_progress=False)
    req = tmp_path / "req.json"
    save_request(req, sample_request(prepared.data, "interaction", 0.05, 0))
    listed = CliRunner().invoke(main, ["methods"])
    assert listed.exit_code == 0 and "shrink-test: scale the touched users' rows" in listed.output
    assert "factor in [0.5, 0.9]" in listed.output
    res = CliRunner().invoke(main, ["unlearn", "--checkpoint", str(out), "--request", str(req), "--method",
                                    registered, "--select", "--out", str(tmp_path / "child")])
    assert res.exit_code == 0, res.output
    lineage = read_meta(tmp_path / "child")["lineage"]
    assert lineage["method"] == registered and lineage["config"]["factor"] in (0.5, 0.9)
    assert len(lineage["selection"]["grid"]) == 2


def _lightgcn_cfg():
    from mmunlearn.models.registry import model_config

    return model_config("lightgcn", ("test", {"dim": 8, "n_layers": 1}))
