#!/usr/bin/env bash
# GPU check and GPU-side benchmarks, run on a machine with CUDA (e.g. the lent H200):
#   OUT=/some/dir bash scripts/device_check.sh
# 1. smoke: train + evaluate + recommend with --device "$DEVICE" on synthetic data;
# 2. backbone quality on Baby (scripts/bench_quality.py, --device "$DEVICE");
# 3. the unlearning grid on Baby for MGCN (and MIG-GT if time remains), --device "$DEVICE".
# Each step has its own time limit so one slow step cannot starve the rest; results land in $OUT.
set -u
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
log() { echo "[$(date +%H:%M:%S)] $*"; }
log "env"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), platform.python_version())"

log "smoke"
$PY -m mmunlearn train --dataset synthetic --model mgcn --epochs 3 --min-epochs 1 --device "$DEVICE" --quiet --out /tmp/smoke-mgcn \
  && $PY -m mmunlearn evaluate /tmp/smoke-mgcn --device "$DEVICE" --json > "$OUT/smoke_eval.json" \
  && $PY -m mmunlearn train --dataset baby --model lightgcn --epochs 2 --min-epochs 1 --device "$DEVICE" --quiet --out /tmp/gpu-lightgcn \
  && tar czf "$OUT/gpu_lightgcn_run.tgz" -C /tmp gpu-lightgcn \
  || log "SMOKE FAILED"

log "quality"
timeout "${QUALITY_S:-200}" $PY scripts/bench_quality.py --dataset baby --device "$DEVICE" --threads 4 \
  --out /tmp/quality --models ${QUALITY_MODELS:-lightgcn mgcn miggt} || log "QUALITY STOPPED rc=$?"
cp /tmp/quality/quality.md /tmp/quality/quality.json "$OUT/" 2>/dev/null

log "grid"
timeout "${GRID_S:-280}" $PY -m mmunlearn bench run --datasets ${GRID_DATASET:-baby} --backbones ${GRID_BACKBONES:-mgcn} --seeds 0 \
  --device "$DEVICE" --threads 4 --quiet --out /tmp/grid || log "GRID STOPPED rc=$?"
$PY -m mmunlearn bench report /tmp/grid > /tmp/grid/report.log 2>&1 || log "REPORT FAILED"
tar czf "$OUT/grid.tgz" --exclude=models -C /tmp grid
log "done"
