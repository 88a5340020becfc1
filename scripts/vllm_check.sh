#!/usr/bin/env bash
# The framework-integration tests that CI cannot run (docs/INTEGRATIONS.md), on a CPU-only machine:
#   - the vLLM plugin against a pinned vLLM release from PyPI (layer level: QKV / merged / row / replicated linear
#     layers, tensor-parallel shards, fused-MoE layers (RoutedExperts); model level: vLLM's engine config and model loader on make-model checkpoints);
#   - the custom operator under torch.compile (torch 2.x) and the transformers loader (transformers 5.x).
# vLLM pins its own torch (a CUDA build, ~10 GB with its dependencies): it lives in a venv of its own, made on the
# first run from a Python 3.11 (pyenv's, or python3.11 on the PATH); the ark extension is built for that Python.
#
#   bash scripts/vllm_check.sh            # VENV=/work/vllm-venv BUILD=build-vllm by default; ~2 min once installed
set -euo pipefail
cd "$(dirname "$0")/.."
VLLM_VERSION=0.33.0
VENV=${VENV:-/work/vllm-venv}
BUILD=${BUILD:-build-vllm}
PY311=${PY311:-$(command -v python3.11 || echo "$HOME/.pyenv/versions/3.11.7/bin/python3.11")}

if [ ! -x "$VENV/bin/python" ]; then
  df -h "$(dirname "$VENV")"
  "$PY311" -m venv "$VENV"
  "$VENV/bin/pip" install -q "vllm==$VLLM_VERSION" pytest==8.3.3
fi
"$VENV/bin/python" -c 'import vllm, torch, transformers; print("vllm", vllm.__version__, "torch", torch.__version__,
      "transformers", transformers.__version__)'

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DARK_BUILD_PYTHON=ON -DPython3_EXECUTABLE="$VENV/bin/python" \
  >/dev/null
cmake --build "$BUILD" -j2 --target ark ark_python >/dev/null

# vLLM's CUDA wheel finds no platform on a machine without a GPU; its CPU platform is chosen by name (the tests
# set it too). Serving itself cannot run: the wheel has no CPU kernels (docs/INTEGRATIONS.md).
export VLLM_TARGET_DEVICE=${VLLM_TARGET_DEVICE:-cpu}
ARK_BIN="$BUILD/ark" ARK_BUILD_DIR="$BUILD" PYTHONPATH="python:$BUILD/python" "$VENV/bin/python" -m pytest -q -rs \
  tests/python/test_vllm_claim.py tests/python/test_vllm_layers.py tests/python/test_vllm_moe.py \
  tests/python/test_vllm_model.py \
  tests/python/test_custom_op.py tests/python/test_hf_schemes.py tests/python/test_hf_loading.py "$@"
