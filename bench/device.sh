#!/usr/bin/env bash
# The train stage on a GPU machine without network access, in under 5 minutes on one H100/H200:
# random Llama 3.2 1B and Llama 3.1 8B shapes (configs in bench/train.py, no hub), block 2048:
# tokens/s and MFU of our trainer vs the HF Trainer (1B), the 8B with LoRA, peak memory vs the
# memory planner's estimate, log-likelihood evaluation questions/s. One JSON object on the last
# line, also written to $OUT/device-h200.json when $OUT is set.
#
# Needs torch (CUDA), transformers and synthcpt's other dependencies on the machine. Extra wheels
# come from .whl/ (gitignored), filled beforehand on a machine with network access:
#     pip download --no-deps peft liger-kernel -d .whl/
#
#     bash bench/device.sh            # on the GPU machine
#     bash bench/device.sh --tiny     # the same code path on a CPU, with a tiny shape
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

for module in peft liger_kernel; do
    if ! "$PY" -c "import $module" 2>/dev/null; then
        if ls .whl/*.whl >/dev/null 2>&1; then
            "$PY" -m pip install -q --no-index --no-deps --find-links .whl "${module//_/-}" \
                || echo "warning: $module is not in .whl/" >&2
        else
            echo "warning: $module is not installed and .whl/ has no wheels" >&2
        fi
    fi
done
"$PY" -c "import peft" || { echo "error: peft is needed for the LoRA case (see .whl/ above)" >&2; exit 1; }

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" bench/train.py --device "$@"
