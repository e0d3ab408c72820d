#!/usr/bin/env bash
# GPU check and GPU-side benchmarks, run on a machine with CUDA (e.g. the lent H200):
#   OUT=/some/dir bash scripts/device_check.sh
# 1. smoke: train + evaluate + recommend with --device "$DEVICE" on synthetic data;
# 2. backbone quality on Baby (scripts/bench_quality.py, --device "$DEVICE");
# 3. the unlearning grid on Baby for MGCN (and MIG-GT if time remains), --device "$DEVICE".
# Each step has its own time limit so one slow step cannot starve the rest; results land in $OUT.
#
# A slice of issue #11's grid (e.g. MIG-GT × Sports, one regime, one seed) instead of the Baby grid:
#   STEPS=grid GRID_CONFIG=configs/grid-sports-clothing-miggt.toml GRID_DATASET=sports GRID_BACKBONES=miggt \
#     GRID_REGIMES=interaction GRID_SEEDS=0 GRID_S=480 OUT=... bash scripts/device_check.sh
# The device machine gets the checkout only, not ../shared: copy the Amazon folders into an ignored folder of the
# checkout first (`mkdir -p .devdata && cp -r ../shared/datasets/amazon-sports .devdata/`; .gitignore has
# .devdata/), name it in the run's carry, and the script points MMUNLEARN_DATASETS at it. The grid is resumable, and its
# tarball keeps models/ when KEEP_MODELS=1, so a slice that ran out of time can go on from there (here or there).
set -u
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-smoke quality grid}
[ -d .devdata ] && export MMUNLEARN_DATASETS=${MMUNLEARN_DATASETS:-$PWD/.devdata}
has() { case " $STEPS " in *" $1 "*) return 0;; esac; return 1; }
log() { echo "[$(date +%H:%M:%S)] $*"; }
log "env"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), platform.python_version())"

if has smoke; then
log "smoke"
$PY -m mmunlearn train --dataset synthetic --model mgcn --epochs 3 --min-epochs 1 --device "$DEVICE" --quiet --out /tmp/smoke-mgcn \
  && $PY -m mmunlearn evaluate /tmp/smoke-mgcn --device "$DEVICE" --json > "$OUT/smoke_eval.json" \
  && $PY -m mmunlearn train --dataset baby --model lightgcn --epochs 2 --min-epochs 1 --device "$DEVICE" --quiet --out /tmp/gpu-lightgcn \
  && tar czf "$OUT/gpu_lightgcn_run.tgz" -C /tmp gpu-lightgcn \
  || log "SMOKE FAILED"
fi

if has quality; then
log "quality"
timeout "${QUALITY_S:-200}" $PY scripts/bench_quality.py --dataset baby --device "$DEVICE" --threads 4 \
  --out /tmp/quality --models ${QUALITY_MODELS:-lightgcn mgcn miggt} || log "QUALITY STOPPED rc=$?"
cp /tmp/quality/quality.md /tmp/quality/quality.json "$OUT/" 2>/dev/null
fi

if has grid; then
log "grid"
timeout "${GRID_S:-280}" $PY -m mmunlearn bench run ${GRID_CONFIG:+--config "$GRID_CONFIG"} \
  --datasets ${GRID_DATASET:-baby} --backbones ${GRID_BACKBONES:-mgcn} --seeds ${GRID_SEEDS:-0} \
  ${GRID_REGIMES:+--regimes "$GRID_REGIMES"} ${GRID_METHODS:+--methods "$GRID_METHODS"} \
  --device "$DEVICE" --threads 4 --quiet --out /tmp/grid || log "GRID STOPPED rc=$?"
$PY -m mmunlearn bench report /tmp/grid > /tmp/grid/report.log 2>&1 || log "REPORT FAILED"
if [ "${KEEP_MODELS:-0}" = 1 ]; then tar czf "$OUT/grid.tgz" -C /tmp grid
else tar czf "$OUT/grid.tgz" --exclude=models -C /tmp grid; fi
fi
log "done"
