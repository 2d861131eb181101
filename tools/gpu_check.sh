#!/usr/bin/env bash
# Check every CUDA path of the toolkit on a GPU machine, in one command:
#
#   bash tools/gpu_check.sh             # on the GPU machine (about 6-8 minutes, 450 s budget)
#   bash tools/gpu_check.sh --dry_run   # the same sequence on the CPU at tiny sizes (CI)
#
# Steps, each under its own timeout (tools/gpu_check.py has the list): the environment; a small
# synthetic dataset; train.py 1 epoch of TAM-ResNet-50 and I3D-ResNet-50 8x224 in fp32, --amp
# and --amp --amp_dtype bf16 --channels_last; the default device selection and --gpu 0;
# train_dist.py --sync-bn and --resume; test.py 10x3 views on CUDA and on the CPU with the
# score difference; tools/benchmark.py model/data and torch.compile. One table at the end; exit
# status 1 if a step failed (skipped ones are not failures).
#
# Before the check:
#   - `pip install -r requirements.txt` only with --install, or when python3 cannot import torch
#     (an offline GPU machine keeps its own torch; the versions used are printed);
#   - the wheels in .whl/ (tools/gpu_wheels.sh downloads them where pip reaches the registry:
#     simplejpeg, lmdb, av), installed with `pip install --no-index --no-deps --target
#     /tmp/site` and put first on PYTHONPATH. None of the steps needs them (JPEGs decode with
#     PIL without simplejpeg, and lmdb/av serve only the lmdb/video storages, not run here).
#
# Output: the table (Markdown), gpu_check.json, gpu_check.md and gpu_check.log (every step's
# command and log tail) in gpu_check_out/ ($GPU_CHECK_DIR) and in $OUT when it is set; each
# step's whole log in gpu_check_out/logs/.
# Options: --dry_run, --install, --budget SECONDS, --peak_tflops T (989, H200 dense bf16 spec),
# --only STEP,STEP. Environment: PYTHON (python3), GPU_CHECK_DIR, GPU_CHECK_WHEELS (.whl),
# GPU_CHECK_SITE (/tmp/site).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python3}
LOCAL=${GPU_CHECK_DIR:-gpu_check_out}
WHEELS=${GPU_CHECK_WHEELS:-.whl}
SITE=${GPU_CHECK_SITE:-/tmp/site}
mkdir -p "$LOCAL"
REPORT="$LOCAL/install.txt"
: >"$REPORT"

install=0
for arg in "$@"; do [ "$arg" = --install ] && install=1; done
if [ "$install" = 1 ] || ! "$PY" -c 'import torch' >/dev/null 2>&1; then
  why=$([ "$install" = 1 ] && echo '--install' || echo 'torch not importable')
  echo "gpu_check: pip install -r requirements.txt ($why)"
  if timeout 900 "$PY" -m pip install -q --retries 1 --timeout 15 -r requirements.txt \
      >"$LOCAL/pip_install.log" 2>&1; then
    echo "requirements.txt: installed ($why)" >>"$REPORT"
  else
    last=$(tail -n 1 "$LOCAL/pip_install.log")
    echo "requirements.txt: install FAILED ($why): $last" >>"$REPORT"
  fi
fi

shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if [ ${#wheels[@]} -gt 0 ]; then
  mkdir -p "$SITE"
  for w in "${wheels[@]}"; do
    name=$(basename "$w")
    if out=$("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" "$w" 2>&1); then
      echo "wheel ${name%%-*}: installed (${name%%-cp*})" >>"$REPORT"
    elif echo "$out" | grep -q 'is not a supported wheel'; then   # e.g. cp312 under 3.11
      echo "wheel ${name%%-*}: not for this python (${name%%-cp*})" >>"$REPORT"
    else
      err=$(echo "$out" | grep -m1 -i error | cut -c1-100)
      echo "wheel ${name%%-*}: install FAILED ($err)" >>"$REPORT"
    fi
  done
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "wheels: none in $WHEELS/ (simplejpeg, lmdb, av stay as installed)" >>"$REPORT"
fi

exec "$PY" tools/gpu_check.py --install_report "$REPORT" "$@"
