#!/usr/bin/env bash
# The GPU checks of docs/performance.md in one run, for a machine whose python3 already has PyTorch with CUDA but
# not metarl's other packages and no network (a lent GPU machine):
#
#   bash scripts/device_check.sh wheels        # here, with network: wheels of what such a machine lacks, in .whl/
#   bash scripts/device_check.sh [OUT_DIR]     # there, from the repository root: install .whl/, then the checks
#
# The checks: the CUDA tests (`pytest -m cuda`), `metarl perf update` (CPU and CUDA side by side) on the
# HalfCheetah-sized and the 2D-navigation-sized update, and `metarl perf iteration` with the learner on the CPU and
# on CUDA. The sampler runs in-process (`--workers 0`): Ray's wheel is too large to carry, and the learner is what
# is measured. Every output also goes to OUT_DIR (default $OUT, else device_out/).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "wheels" ]]; then
    # gymnasium and mujoco with the dependencies the GPU image lacks (gymnasium's MuJoCo envs import glfw; nothing
    # here renders); Python 3.12 unless PYVER says otherwise.
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d .whl gymnasium==1.2.2 farama-notifications mujoco==3.3.0 glfw
    ls -l .whl
    exit
fi

out=${1:-${OUT:-device_out}}
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/metarl-site \
        .whl/*.whl || exit
    export PYTHONPATH=/tmp/metarl-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MUJOCO_GL=disable
status=0
python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))' \
    2>&1 | tee "$out/device.txt" || status=1
python3 -m pytest -m cuda -q -p no:cacheprovider 2>&1 | tee "$out/pytest_cuda.log" || status=1
for family in halfcheetah-vel 2d-navigation; do
    python3 -m metarl perf update --family "$family" --json 2>&1 | tee "$out/perf_update_$family.json" || status=1
done
for device in cpu cuda; do
    python3 -m metarl perf iteration --workers 0 --device "$device" --json 2>&1 \
        | tee "$out/perf_iteration_$device.json" || status=1
done
exit $status
