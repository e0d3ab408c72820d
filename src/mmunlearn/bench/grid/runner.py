"""Running a grid: group by group — one group is (dataset, backbone, seed, regime) — sharing the
original, the request, both Retrains and the fitted attacks inside a group, writing each cell as soon as
it is finished. Interrupted, it resumes where it stopped; finished cells are never recomputed unless a
method is named to be re-run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmunlearn.bench.grid.audits import GroupAuditor
from mmunlearn.bench.grid.data import GridData, load_grid_data
from mmunlearn.bench.grid.results import (
    CELL_FORMAT,
    bind_results_dir,
    config_from_record,
    jsonable,
    machine,
    now,
    read_grid,
)
from mmunlearn.bench.grid.schema import REF_PREFIX, Cell, GridConfig, dataset_key, parse_sets
from mmunlearn.config import WHERE_IT_RUNS, build
from mmunlearn.data.interactions import InteractionData
from mmunlearn.errors import InputError
from mmunlearn.io import atomic_write_json
from mmunlearn.runtime import resolve_device

#: the partition a sharded exact method's grid model uses unless its ``partition`` is set
METHOD_PARTITION = {"sisa": "random", "receraser": "user"}
#: test hook: seconds to sleep after writing each cell (lets a test kill the grid mid-way)
SLOW_CELL_ENV = "MMUNLEARN_BENCH_SLOW_CELL"


@dataclass
class GridRun:
    out: Path
    hash: str
    computed: list[Cell] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0


Echo = Callable[[str], None]


def run_grid(cfg: GridConfig, out: Path, *, extend: bool = False, device: str = "cpu", threads: int = 1,
             show_progress: bool = True, echo: Echo | None = None, report: bool = True,
             rerun: Sequence[str] = ()) -> GridRun:
    """Run every missing cell of ``cfg`` into ``out`` (resumable), then write the report.

    ``rerun`` names methods whose finished cells are computed again — after a method's default changed,
    its new figures on the very originals, requests and Retrains the old ones used (nothing is retrained).
    An old cell is replaced only when its new one is written, so an interrupted rerun leaves a folder whose
    every cell is complete (each cell records the method config it ran).
    """
    from mmunlearn.progress import progress_bar

    cfg = cfg.normalised().validate()
    rerun = _check_rerun(cfg, rerun)
    out = Path(out)
    torch.set_num_threads(max(1, threads))
    resolve_device(device)
    record = bind_results_dir(out, cfg, extend=extend, device=device, threads=threads, rerun=rerun)
    say = echo or (lambda _msg: None)
    start = time.perf_counter()
    todo = [c for c in cfg.cells() if c.method in rerun or not c.path(out).is_file()]
    result = GridRun(out=out, hash=record["hash"], skipped=len(cfg.cells()) - len(todo))
    if result.skipped:
        say(f"resuming {out}: {result.skipped} finished cell(s) kept, {len(todo)} to run"
            + (f" (re-running {', '.join(rerun)})" if rerun else ""))
    runner = GroupRunner(cfg, out, device=device, echo=say)
    delay = float(os.environ.get(SLOW_CELL_ENV, "0") or 0)
    with progress_bar(total=len(todo), desc="bench", enabled=show_progress) as bar:
        for group in cfg.groups():
            missing = [c for c in todo if (c.dataset, c.backbone, c.seed, c.regime) == group]
            if not missing:
                continue
            for cell in runner.run_group(group, missing, bar):
                result.computed.append(cell)
                bar.update(1, cell=f"{cell.dataset}/{cell.backbone}/{cell.regime}/s{cell.seed}/{cell.method}")
                if delay:
                    time.sleep(delay)
            runner.release(group)
    result.seconds = time.perf_counter() - start
    if report:
        from mmunlearn.bench.report import write_report

        write_report(out)
    return result


def _cpu_speedup(cpu_seconds: float | None, retrain_cpu_seconds: float | None, device: str) -> dict[str, float]:
    """Retrain's CPU seconds ÷ the method's, where both were recorded on a CPU run (Retrains cached before
    CPU time was logged have none): unlike wall time, it does not move with the machine's other jobs."""
    if not str(device).startswith("cpu") or not cpu_seconds or retrain_cpu_seconds is None:
        return {}
    return {"cpu_seconds": float(cpu_seconds), "speedup_cpu": float(retrain_cpu_seconds) / float(cpu_seconds)}


def _check_rerun(cfg: GridConfig, rerun: Sequence[str]) -> tuple[str, ...]:
    """The methods to re-run, each one of the grid's methods (a reference is never re-run: every method
    cell of the folder was judged against it)."""
    names = tuple(dict.fromkeys(rerun))
    for name in names:
        if name not in cfg.methods:
            raise InputError(f"--rerun {name}: not a method of this grid (methods: {', '.join(cfg.methods)})")
    return names


@dataclass
class CachedGroup:
    """A finished group's artefacts, loaded from a results folder (see :func:`load_group`)."""

    ctx: Any  # UnlearnContext: original, applied request, the grid's model and training configs
    retrain: Any
    noise: Any
    retrain_seconds: float
    noise_seed: int


def load_group(out: Path, dataset: str, backbone: str, regime: str, seed: int, *,
               device: str = "cpu") -> CachedGroup:
    """The original, request, Retrain and second-seed Retrain of one group, exactly as the grid used them.

    For studies that re-run methods on a finished grid (a new method or setting judged against the very
    same Retrain) without training anything: every artefact must already be in ``out`` (a missing one is
    an error naming it), and nothing is written there.
    """
    from mmunlearn.workflow.compare import load_retrain, retrain_folder

    out = Path(out)
    cfg = config_from_record(read_grid(out))
    runner = GroupRunner(cfg, out, device=device, echo=lambda _msg: None)
    where = f"{out}: group {dataset}/{backbone}/{regime}/s{seed}"
    original_meta = runner.original_dir(dataset, backbone, seed) / "meta.json"
    for path in (original_meta, runner.request_path(dataset, regime, seed)):
        if not path.is_file():
            raise InputError(f"{where} is not cached ({path} missing)")
    ctx = runner.context(dataset, backbone, seed, regime, bar=None)  # both saved: loads, never trains
    cache = runner.retrain_cache(dataset, backbone)
    noise_seed = seed + cfg.noise_seed_offset
    models = []
    for s in (seed, noise_seed):
        folder = retrain_folder(ctx, s, cache)
        if folder is None:
            raise InputError(f"{where}: no cached Retrain (seed {s}) under {cache}")
        models.append(load_retrain(folder, ctx))
    (retrain, seconds, _), (noise, _, _) = models
    return CachedGroup(ctx=ctx, retrain=retrain, noise=noise, retrain_seconds=seconds, noise_seed=noise_seed)


class GroupRunner:
    """Holds what a group needs (data, original, request, references, attacks) and runs its cells."""

    def __init__(self, cfg: GridConfig, out: Path, *, device: str, echo: Echo) -> None:
        self.cfg, self.out, self.device, self.echo = cfg, out, device, echo
        self._data: dict[tuple[str, str], GridData] = {}
        self._originals: dict[tuple[str, str, int], tuple[Any, dict[str, Any]]] = {}
        self._sharded: dict[tuple, tuple[Any, dict[str, Any]]] = {}
        self._original_valid: dict[tuple[str, str, int], tuple[Any, float]] = {}

    # ----- configs ------------------------------------------------------------------------------------
    def model_config(self, backbone: str) -> Any:
        from mmunlearn.models.registry import model_config

        sets = parse_sets(self.cfg.model_sets, "model_sets").get(backbone, {})
        return model_config(backbone, ("grid model_sets", sets))

    def train_config(self, backbone: str, seed: int) -> Any:
        from mmunlearn.models.registry import MODELS
        from mmunlearn.train.trainer import TrainConfig

        over = self.cfg.train_overrides()
        if "lr" not in over:
            rec = getattr(MODELS[backbone][0], "recommended_lr", None)
            if rec is not None:
                over["lr"] = float(rec)
        if "epochs" in over and "min_epochs" not in over:
            over["min_epochs"] = min(TrainConfig().min_epochs, over["epochs"])
        return build(TrainConfig, ("grid", over),
                     ("run", {"seed": seed, "device": self.device, "threads": torch.get_num_threads()}))

    def data(self, dataset: str, backbone: str) -> GridData:
        key = (dataset, backbone)
        if key not in self._data:
            gd = load_grid_data(self.cfg, dataset, backbone, self.model_config(backbone))
            for w in gd.warnings:
                self.echo(f"WARNING: {w}")
            for n in gd.notes:
                self.echo(f"NOTE: {n}")
            self._data[key] = gd
        return self._data[key]

    # ----- shared artefacts ----------------------------------------------------------------------------
    def models_dir(self, dataset: str, backbone: str) -> Path:
        return self.out / "models" / dataset_key(dataset) / backbone

    def original(self, dataset: str, backbone: str, seed: int, bar: Any) -> tuple[Any, dict[str, Any]]:
        """The original model of (dataset, backbone, seed): loaded if saved, else trained and saved."""
        from mmunlearn.checkpoint import load_checkpoint, read_meta
        from mmunlearn.pipeline import DataSpec, PreparedData, train_and_save

        key = (dataset, backbone, seed)
        if key in self._originals:
            return self._originals[key]
        gd = self.data(dataset, backbone)
        folder = self.original_dir(dataset, backbone, seed)
        if (folder / "meta.json").is_file():
            meta = read_meta(folder)
            self._check_reusable(folder, meta, backbone, seed)
            model = load_checkpoint(folder, gd.data, device=self.device).model
        else:
            bar.describe(f"{dataset}/{backbone}/s{seed}: training the original")
            prepared = PreparedData(data=gd.data, warnings=gd.warnings,
                                    spec=DataSpec(dataset=dataset, feature_seed=self.cfg.feature_seed,
                                                  modalities=tuple(gd.data.modalities)))
            run = train_and_save(prepared, backbone, self.model_config(backbone), self.train_config(backbone, seed),
                                 folder, show_progress=False,
                                 extra={"bench": {"grid_hash": self.cfg.hash(), "dataset": gd.record()}},
                                 rebuildable=not self.cfg.user_subsample and not self.cfg.synthetic_dims)
            model, meta, res = run.model, run.meta, run.result
            self.echo(f"trained original {dataset}/{backbone}/s{seed}: best valid epoch {res.best_epoch} of "
                      f"{res.epochs_run}, test R@20 {run.test['recall@20']:.4f} N@20 {run.test['ndcg@20']:.4f} "
                      f"({res.seconds:.0f} s)")
        self._originals[key] = (model, meta)
        return model, meta

    def _check_reusable(self, folder: Path, meta: dict[str, Any], backbone: str, seed: int) -> None:
        """Refuse a saved original trained with other settings than this grid's (a ``models/`` folder
        copied from another grid): its path is keyed by the seed only, so reusing it silently would put
        another training config's model under this grid's name. (load_checkpoint checks the data.)"""
        wanted = jsonable({"train_config": asdict(self.train_config(backbone, seed)),
                           "model_config": asdict(self.model_config(backbone))})  # as saved: JSON
        for section, want in wanted.items():
            saved = meta.get(section, {})
            for key in sorted(set(want) & set(saved) - WHERE_IT_RUNS):
                if saved[key] != want[key]:
                    raise InputError(f"{folder}: trained with {section}.{key} = {saved[key]!r}, this grid uses "
                                     f"{want[key]!r}; remove that folder or use another --out")

    def sharded_original(self, ctx: Any, method: str, cfg: Any, tag: str) -> tuple[Any, dict[str, Any]]:
        """The sharded model a sharded exact method unlearns from: trained once per (original data,
        backbone, seed, method, K, partition) on the group's data, saved beside the original."""
        from mmunlearn.checkpoint import load_checkpoint, read_meta, save_checkpoint
        from mmunlearn.evaluate.ranking import evaluate_split
        from mmunlearn.models.registry import build_model
        from mmunlearn.models.sharded import sharded_config
        from mmunlearn.train.launch import fit
        from mmunlearn.train.trainer import seed_everything

        data = ctx.applied.original
        partition = cfg.partition or METHOD_PARTITION.get(method, "random")
        key = ("sharded", data.fingerprint(), ctx.model_name, ctx.seed, method, cfg.shards, partition)
        if key in self._sharded:
            return self._sharded[key]
        folder = (self.models_dir(data.name, ctx.model_name)
                  / f"sharded-{method}-k{cfg.shards}-{partition}-s{ctx.seed}-{data.fingerprint()[:8]}")
        if (folder / "meta.json").is_file():
            model, meta = load_checkpoint(folder, data, device=self.device).model, read_meta(folder)
        else:
            scfg = sharded_config(ctx.model_name, ctx.model_config, cfg.shards, partition, "auto", ctx.seed)
            seed_everything(ctx.seed)
            model = build_model("sharded", data, scfg)
            res = fit(model, data, ctx.train_config, nproc=cfg.nproc, work_dir=folder.parent / f".{folder.name}",
                      show_progress=False)
            test = evaluate_split(model, data, "test")
            meta = save_checkpoint(folder, model, data, model_config=scfg, train_config=ctx.train_config,
                                   metrics={"test": test, "train_seconds": res.seconds},
                                   extra={"history": res.history, "sharded": model.describe()})
            self.echo(f"{tag}: trained the {method} model ({cfg.shards} {partition} shards): test R@20 "
                      f"{test['recall@20']:.4f} N@20 {test['ndcg@20']:.4f} ({res.seconds:.0f} s)")
        info = {"path": str(folder), "train_seconds": meta.get("metrics", {}).get("train_seconds"),
                "test": meta.get("metrics", {}).get("test"), "shards": cfg.shards, "partition": partition}
        self._sharded[key] = (model, info)
        return model, info

    def original_dir(self, dataset: str, backbone: str, seed: int) -> Path:
        return self.models_dir(dataset, backbone) / f"original-s{seed}"

    def request_path(self, dataset: str, regime: str, seed: int) -> Path:
        return self.out / "requests" / dataset_key(dataset) / f"{regime}-s{seed}.json"

    def retrain_cache(self, dataset: str, backbone: str) -> Path:
        return self.models_dir(dataset, backbone) / "retrain"

    def request(self, dataset: str, regime: str, seed: int, data: InteractionData) -> Any:
        from mmunlearn.data.requests import load_request, sample_request, save_request

        path = self.request_path(dataset, regime, seed)
        if path.is_file():
            return load_request(path)
        selection = self.cfg.selection if regime != "interaction" else "random"
        req = sample_request(data, regime, ratio=self.cfg.ratio, seed=seed, selection=selection)
        save_request(path, req)
        return req

    def release(self, group: tuple[str, str, int, str]) -> None:
        """Drop cached originals/data no later group needs (groups are ordered dataset, backbone, seed)."""
        dataset, backbone, seed, _ = group
        later = self.cfg.groups()
        idx = later.index(group)
        rest = later[idx + 1:]
        if not any((d, b, s) == (dataset, backbone, seed) for d, b, s, _ in rest):
            self._originals.pop((dataset, backbone, seed), None)
            self._original_valid.pop((dataset, backbone, seed), None)
        if not any((d, b) == (dataset, backbone) for d, b, _, _ in rest):
            self._data.pop((dataset, backbone), None)

    def original_valid(self, dataset: str, backbone: str, seed: int, bar: Any) -> tuple[Any, float]:
        """The original's per-user valid NDCG@20 and the seconds it took: scored once per original, outside
        every method's timer (a deployment knows its model's validation scores; TRU's repair trigger reads
        them), and shared by every regime's group."""
        from mmunlearn.evaluate.forgetting import user_valid_ndcg

        key = (dataset, backbone, seed)
        if key not in self._original_valid:
            original, _ = self.original(dataset, backbone, seed, bar)
            t0 = time.perf_counter()
            scores = user_valid_ndcg(original, self.data(dataset, backbone).data)
            self._original_valid[key] = (scores, time.perf_counter() - t0)
        return self._original_valid[key]

    def context(self, dataset: str, backbone: str, seed: int, regime: str, bar: Any) -> Any:
        """The group's UnlearnContext: original (trained if not saved) with its valid scores, request
        (sampled if not saved)."""
        from mmunlearn.data.requests import apply_request
        from mmunlearn.unlearn.base import UnlearnContext

        gd = self.data(dataset, backbone)
        original, _ = self.original(dataset, backbone, seed, bar)
        applied = apply_request(gd.data, self.request(dataset, regime, seed, gd.data))
        return UnlearnContext(original=original, applied=applied, model_name=backbone,
                              model_config=self.model_config(backbone),
                              train_config=self.train_config(backbone, seed), seed=seed, device=self.device,
                              show_progress=False,
                              original_valid=self.original_valid(dataset, backbone, seed, bar)[0])

    # ----- one group --------------------------------------------------------------------------------------
    def run_group(self, group: tuple[str, str, int, str], missing: list[Cell], bar: Any) -> Iterable[Cell]:
        from mmunlearn.evaluate.forgetting import evaluate_forgetting
        from mmunlearn.workflow.compare import retrain_cached

        dataset, backbone, seed, regime = group
        tag = f"{dataset}/{backbone}/{regime}/s{seed}"
        gd = self.data(dataset, backbone)
        ctx = self.context(dataset, backbone, seed, regime, bar)
        original, orig_meta = self.original(dataset, backbone, seed, bar)  # cached by context()
        mcfg, tcfg, applied = ctx.model_config, ctx.train_config, ctx.applied
        cache = self.retrain_cache(dataset, backbone)
        noise_seed = seed + self.cfg.noise_seed_offset
        bar.describe(f"{tag}: Retrain (seed {seed})")
        retrain, rt_seconds, rt_log = retrain_cached(ctx, seed, cache)
        bar.describe(f"{tag}: Retrain (seed {noise_seed}, noise floor)")
        noise, noise_seconds, noise_log = retrain_cached(ctx, noise_seed, cache)
        bar.describe(f"{tag}: evaluating references")
        ref_ev = evaluate_forgetting(retrain, applied)
        noise_ev = evaluate_forgetting(noise, applied)
        auditor = GroupAuditor(self.cfg, ctx, retrain, noise, bar, tag,
                               shadow_dir=self.models_dir(dataset, backbone))
        refs = {"retrain": (retrain, ref_ev, rt_seconds, rt_log),
                "retrain-noise": (noise, noise_ev, noise_seconds, noise_log),
                "original": (original, None, 0.0, {"method": "original (no unlearning)",
                                                   "train_seconds": orig_meta.get("metrics", {})
                                                   .get("train_seconds")})}
        common = {"gd": gd, "applied": applied, "ref_ev": ref_ev, "noise_ev": noise_ev, "rt_seconds": rt_seconds,
                  "rt_cpu_seconds": rt_log.get("cpu_seconds"), "noise_seed": noise_seed, "mcfg": mcfg,
                  "tcfg": tcfg, "orig_meta": orig_meta,
                  "orig_valid_seconds": self.original_valid(dataset, backbone, seed, bar)[1]}
        shared: dict[str, Any] = {}
        for cell in missing:
            t0 = time.perf_counter()
            bar.describe(f"{tag}: {cell.method}")
            if cell.is_reference:
                name = cell.method[len(REF_PREFIX):]
                model, ev, seconds, log = refs[name]
                if ev is None:
                    ev = evaluate_forgetting(model, applied)
                payload = self._cell_payload(cell, model, ev, seconds, log, {"rule": "reference"}, auditor,
                                             common, reference=name)
            else:
                model, seconds, log, sel = self._run_method(cell.method, ctx, bar, tag, shared)
                ev = evaluate_forgetting(model, applied)
                payload = self._cell_payload(cell, model, ev, seconds, log, sel, auditor, common)
                del model
            payload["cell_seconds"] = time.perf_counter() - t0
            atomic_write_json(cell.path(self.out), jsonable(payload))
            yield cell

    def _run_method(self, name: str, ctx: Any, bar: Any, tag: str, shared: dict[str, Any]
                    ) -> tuple[Any, float, dict, dict]:
        """Run ``name`` through :func:`~mmunlearn.workflow.request.run_method`: the grid's ``method_sets``
        are fixed settings, and with ``select`` the rest of the method's search space is searched; returns
        model, seconds, log, selection.

        The :class:`~mmunlearn.workflow.selection.Selector` (proxy target and ``V_rebuild``) is built once
        per group and shared by every method (kept in ``shared``); the chosen configuration's own run from
        the selection is the cell's run (its ``seconds`` are the unlearning call alone).
        """
        from mmunlearn.unlearn.base import METHODS, build_method, method_config
        from mmunlearn.workflow.request import run_method
        from mmunlearn.workflow.selection import Selector

        fixed = parse_sets(self.cfg.method_sets, "method_sets").get(name)
        if getattr(METHODS[name].cls, "needs_sharded_original", False):  # sisa, receraser: exact, no selection
            cfg = method_config(name, ("grid method_sets", fixed or {}))
            bar.describe(f"{tag}: {name} (sharded original)")
            sharded, info = self.sharded_original(ctx, name, cfg, tag)
            bar.describe(f"{tag}: {name}")
            res = build_method(name, cfg).run(replace(ctx, original=sharded, model_name="sharded",
                                                      model_config=sharded.config))
            return res.model, res.seconds, {**res.log, "sharded_original": info}, \
                {"rule": "exact method: fixed config (no selection)", "selection_seconds": 0.0}
        selector = None
        if self.cfg.select:
            if "selector" not in shared:
                bar.describe(f"{tag}: selection references (proxy target, rebuild utility)")
                t0 = time.perf_counter()
                shared["selector"] = Selector(ctx)
                shared["selector_seconds"] = time.perf_counter() - t0
            selector = shared["selector"]
        bar.describe(f"{tag}: {name}" + (" (selecting hyper-parameters)" if selector is not None else ""))
        run = run_method(name, ctx, fixed=fixed, select=self.cfg.select, selector=selector)
        sel = run.selection
        if selector is not None:
            sel["shared_setup_seconds"] = shared["selector_seconds"]
        res = run.result
        return res.model, res.seconds, res.log, sel

    def _cell_payload(self, cell: Cell, model: Any, ev: Any, seconds: float, log: dict, selection: dict,
                      auditor: GroupAuditor, common: dict, reference: str | None = None) -> dict[str, Any]:
        from mmunlearn.evaluate.forgetting import result_row

        applied = common["applied"]
        label = {"retrain": "retrain", "retrain-noise": f"retrain (seed {common['noise_seed']})",
                 "original": "original (no unlearning)"}.get(reference or "", cell.method)
        extra = {"selection_seconds": selection.get("selection_seconds")}
        row = result_row(label, ev, retrain=common["ref_ev"], noise=common["noise_ev"], seconds=seconds,
                         retrain_seconds=common["rt_seconds"], extra=extra)
        row.update(_cpu_speedup(log.get("cpu_seconds"), common["rt_cpu_seconds"], self.device))
        audits = auditor.audit(model, reference)
        row.update(audits.pop("_flat"))
        counts, edges = np.histogram(ev.percentiles, bins=self.cfg.hist_bins, range=(0.0, 1.0))
        gd: GridData = common["gd"]
        return {
            "format": CELL_FORMAT,
            "cell": cell.key(),
            "reference": reference,
            "grid_hash": self.cfg.hash(),
            "row": row,
            "audits": audits,
            "histogram": {"bins": self.cfg.hist_bins, "range": [0.0, 1.0], "counts": counts.tolist(),
                          "n": int(len(ev.percentiles))},
            "utility": ev.utility,
            "forget": ev.forget,
            "log": log,
            "selection": selection,
            "request": {"hash": applied.request.hash, "regime": applied.request.regime,
                        "sampling": applied.request.sampling, **applied.counts()},
            "context": {"dataset": gd.record(), "backbone": cell.backbone, "ratio": self.cfg.ratio,
                        "selection": self.cfg.selection if cell.regime != "interaction" else "random",
                        "model_config": asdict(common["mcfg"]), "train_config": asdict(common["tcfg"]),
                        "original": {"test": common["orig_meta"].get("metrics", {}).get("test"),
                                     "best_epoch": common["orig_meta"].get("metrics", {}).get("best_epoch"),
                                     "epochs_run": common["orig_meta"].get("metrics", {}).get("epochs_run"),
                                     "valid_scoring_seconds": common["orig_valid_seconds"]},
                        "noise_seed": common["noise_seed"], "date": now(), "machine": machine(),
                        "device": self.device},
        }


__all__ = ["run_grid", "GridRun", "load_group", "CachedGroup", "GroupRunner", "SLOW_CELL_ENV"]
