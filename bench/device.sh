#!/usr/bin/env bash
# The GPU check, the first thing to run where a GPU machine is lent (one H100/H200, no network, under
# 8 minutes): the train stage on random Llama 3.2 1B and Llama 3.1 8B shapes against the HF Trainer,
# LoRA, compile and the fused loss on and off, the memory planner against the measured peaks, and
# log-likelihood evaluation questions/s (bench/device.py says what each part measures). One JSON
# object on the last line, also written to $OUT/device-h200.json when $OUT is set.
#
# That machine's python3 has torch (CUDA), transformers, peft, numpy, pyyaml, rich and psutil but not
# pydantic, which synthcpt's settings need. Its wheels (about 3 MB) are carried in .whl/ (gitignored),
# filled beforehand on a machine with network access, and installed here into a folder of their own:
#     pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
#         --platform manylinux2014_x86_64 -d .whl/ pydantic==2.14.4 pydantic-core==2.50.5 \
#         annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
# (the device tool: carry [".whl"]). Nothing else is needed: no model or tokenizer file, no hub.
#
#     bash bench/device.sh              # on the GPU machine
#     bash bench/device.sh --dry-run    # every part on a CPU with tiny shapes (tests/test_bench.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! "$PY" -c "import pydantic" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "error: pydantic is not installed and .whl/ has no wheels (see the top of $0)" >&2
        exit 1
    fi
    wheels=$(mktemp -d)
    "$PY" -m pip install -q --no-index --no-deps --target "$wheels" .whl/*.whl
    export PYTHONPATH="$wheels${PYTHONPATH:+:$PYTHONPATH}"
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" bench/device.py "$@"
