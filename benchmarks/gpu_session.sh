#!/usr/bin/env bash
# One command for a session with one GPU: the GPU check's speed sections and the scale rehearsal,
# each under its own time limit (together under 9 minutes on one H100), results as markdown.
#
#   benchmarks/gpu_session.sh [RESULTS_DIR]      # default: $OUT where set (the device tool), else gpu-results
#
# Writes RESULTS_DIR/results.md (every table, the GPU named), session.log (all output),
# gpu_check.json and rehearsal.json: 4 files. Packages the GPU machine lacks (PyAV, for decoding
# and writing videos) travel as wheels in .whl/ (`make gpu-wheels` on a machine with a registry)
# and are installed into /tmp/tstam-site here. Parts, in order (limit in seconds):
#   flow      gpu_check --only "gpu flow"        TV-L1 pairs/s eager and compiled, EPE to OpenCV  (85)
#   step      gpu_check --only step,peer         T-STAM training step vs the ResNet-50 TSN peer  (210)
#   protocol  gpu_check --only protocol          25 x 10 test protocol on 200 videos vs its floors (65)
#   rehearsal gpu_rehearsal.py                   videos -> extract -> train -> test -> fuse      (180)
# PARTS="flow step" runs some of them. A part that runs out of time keeps the rows it printed.
# CHECK_ARGS / REHEARSAL_ARGS add arguments (e.g. "--tiny --device cpu" for a dry run on a CPU).
set -u
cd "$(dirname "$0")/.."
DIR="${1:-${OUT:-gpu-results}}"
mkdir -p "$DIR"
PY="${GPU_PYTHON:-python3}"
PARTS="${PARTS:-flow step protocol rehearsal}"
export PYTHONUNBUFFERED=1 PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
LOG="$DIR/session.log" MD="$DIR/results.md"
: >"$LOG"
T0=$(date +%s)

if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/tstam-site .whl/*.whl \
    >>"$LOG" 2>&1 || { echo "installing .whl/*.whl failed (session.log)"; exit 1; }
  export PYTHONPATH="$PYTHONPATH:/tmp/tstam-site"
fi
HAVE_AV=yes
"$PY" -c "import av" 2>>"$LOG" || HAVE_AV=no

{
  echo "# GPU session $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi'); " \
       "$("$PY" -c 'import torch, os; print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores")'); PyAV: $HAVE_AV;" \
       "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$MD"

part() {  # part NAME LIMIT_S FILTER COMMAND...: run it, keep its output's table rows (FILTER rows) or all
  local name=$1 limit=$2 filter=$3 start rc      # of it (FILTER all), note its exit status and time
  shift 3
  start=$(date +%s)
  echo "== $name: $*" | tee -a "$LOG"
  timeout -k 10 "$limit" "$@" >"$DIR/.part.out" 2>>"$LOG"
  rc=$?
  cat "$DIR/.part.out" >>"$LOG"
  {
    echo
    echo "## $name (exit $rc$([ $rc = 124 ] && echo ': stopped at its limit'), $(( $(date +%s) - start )) s of $limit)"
    echo
    if [ "$filter" = rows ]; then grep '^|' "$DIR/.part.out" || echo "(no rows)"; else cat "$DIR/.part.out"; fi
  } >>"$MD"
  rm -f "$DIR/.part.out"
}

check() {  # the GPU check's sections, rows appended to gpu_check.json
  local name=$1 limit=$2 only=$3
  # shellcheck disable=SC2086
  part "$name" "$limit" rows "$PY" benchmarks/gpu_check.py --only "$only" --json "$DIR/gpu_check_$name.json" ${CHECK_ARGS:-}
  "$PY" - "$DIR" "$name" <<'PYEOF' 2>>"$LOG"
import json, sys
from pathlib import Path
d, name = Path(sys.argv[1]), sys.argv[2]
part, whole = d / f"gpu_check_{name}.json", d / "gpu_check.json"
rows = json.loads(whole.read_text()) if whole.exists() else []
if part.exists():
    rows += json.loads(part.read_text())
    part.unlink()
whole.write_text(json.dumps(rows, indent=1))
PYEOF
}

for p in $PARTS; do
  case $p in
    flow) check flow 85 "gpu flow" ;;
    step) check step 210 "step,peer" ;;
    protocol) check protocol 65 protocol ;;
    rehearsal)
      if [ "$HAVE_AV" = yes ]; then
        rm -rf /tmp/tstam-rehearsal
        # shellcheck disable=SC2086
        part rehearsal 180 all "$PY" benchmarks/gpu_rehearsal.py --out /tmp/tstam-rehearsal --json "$DIR/rehearsal.json" \
          ${REHEARSAL_ARGS:-}
      else
        printf '\n## rehearsal\n\nnot run: PyAV is missing (make gpu-wheels here, then carry .whl)\n' >>"$MD"
      fi ;;
    *) echo "unknown part $p (valid: flow step protocol rehearsal)" | tee -a "$LOG"; exit 2 ;;
  esac
done
printf '\nwhole session: %s s\n' "$(( $(date +%s) - T0 ))" >>"$MD"
cat "$MD"
