"""The unlearning experiment grid: datasets × backbones × regimes × methods × seeds, resumable.

A grid is a :class:`GridConfig` (typed, documented defaults; a TOML/JSON file; CLI flags override the
file). :func:`run_grid` works through it group by group — one group is (dataset, backbone, seed, regime)
— and shares everything expensive inside a group:

- the **original** model of (dataset, backbone, seed) is trained once and saved under
  ``models/<dataset>/<backbone>/original-s<seed>/``; the **Retrain** of every request (and its
  **second-seed** Retrain, the noise floor) once under ``models/<dataset>/<backbone>/retrain/``
  (:func:`~mmunlearn.workflow.compare.retrain_cached`); both are reused whenever they are present;
- the forget request of (dataset, regime, seed) is sampled once and saved under ``requests/``, so
  every backbone forgets the same data;
- the membership-inference attack is fitted once per (original model, request) — the deleted pairs
  are excluded from its training members, so it must differ per request — and the user-level attack
  (user regime) once per (original, request); both are shared by every method of the group.

Every **cell** (dataset, backbone, regime, seed, method) is written atomically as one JSON file as soon
as it is finished: the result row (:func:`~mmunlearn.evaluate.forgetting.result_row`), the audits, the
method's log and a histogram of the deleted pairs' rank percentiles (so plots need no model). Retrain,
the second-seed Retrain and the untouched original are written as *reference cells* (``ref-*.json``)
beside them. A grid that is interrupted resumes where it stopped: finished cells are never recomputed
or rewritten, and a group whose cells are all present is skipped without loading anything.

A results folder is bound to its grid: ``grid.json`` stores the config and its hash, and a run with a
different config is refused unless ``extend=True`` and the new grid is a superset of the stored one
(same settings, more datasets/backbones/regimes/methods/seeds); then only the missing cells run.

The package's parts: ``schema`` (the config and its cells), ``results`` (the results folder), ``data``
(datasets and content), ``runner`` (running groups and cells), ``audits`` (the per-group audits).
"""

from mmunlearn.bench.grid.data import GridData, load_grid_data, subsample_users
from mmunlearn.bench.grid.results import (
    CELL_FORMAT,
    GRID_FILE,
    GRID_FORMAT,
    bind_results_dir,
    config_from_record,
    machine,
    now,
    read_cells,
    read_grid,
)
from mmunlearn.bench.grid.runner import SLOW_CELL_ENV, CachedGroup, GridRun, load_group, run_grid
from mmunlearn.bench.grid.schema import (
    AXES,
    REF_PREFIX,
    REFERENCES,
    Cell,
    GridConfig,
    dataset_key,
    file_layer,
    grid_config,
    parse_dims,
    parse_sets,
)

__all__ = ["GridConfig", "grid_config", "file_layer", "parse_dims", "parse_sets", "run_grid", "GridRun", "Cell",
           "read_cells", "read_grid", "bind_results_dir", "subsample_users", "load_grid_data", "GridData",
           "REFERENCES", "REF_PREFIX", "AXES", "config_from_record", "machine", "now", "dataset_key",
           "load_group", "CachedGroup", "SLOW_CELL_ENV", "GRID_FILE", "GRID_FORMAT", "CELL_FORMAT"]
