#!/usr/bin/env bash
# Framework-integration checks on the GPU machine (docs/INTEGRATIONS.md), in one call:
#   1. builds the ark CLI and the extension ark._C for the machine's python3 (torch 2.x with CUDA, transformers);
#   2. runs the custom-operator tests (torch.compile fullgraph with aot_eager and inductor; ark::quant_linear on
#      CUDA tensors captured in a CUDA graph and replayed, through ark's CUDA backend), the transformers
#      loader tests (ark.hf.from_pretrained against `ark generate` and dequantized transformers), and the
#      claim / layer-scheme tests;
#   3. writes the pytest logs and a summary to $OUT.
# Invoke (repository root): bash scripts/device_vllm.sh, with carry ["build-vllm-pybind11", "build-vllm-pyinclude"]
# (pybind11 2.13.6's CMake package unpacked from its PyPI wheel, and CPython 3.12's headers, for a machine whose
# python3 has neither; used only when missing); ~5 min (build ~3 min on 16 cores, tests ~2 min).
set -uo pipefail
OUT=${OUT:-/tmp/ark_device_vllm}
mkdir -p "$OUT"
BUILD=${BUILD:-build-device-vllm}
PY=${PYTHON:-python3}
{
  date -u
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())'
  "$PY" -c 'import transformers; print("transformers", transformers.__version__)' 2>&1 | tail -1
} | tee "$OUT/summary.txt"

pybind=()
if ! "$PY" -c 'import pybind11' 2>/dev/null && [ -d build-vllm-pybind11/pybind11/share/cmake/pybind11 ]; then
  pybind=(-Dpybind11_DIR="$PWD/build-vllm-pybind11/pybind11/share/cmake/pybind11")
fi
pyver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if ! "$PY" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' &&
   [ -f "build-vllm-pyinclude/python$pyver/Python.h" ]; then
  pybind+=(-DPython3_INCLUDE_DIR="$PWD/build-vllm-pyinclude/python$pyver")
fi
generator=()
[ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null && generator=(-G Ninja)
if ! cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DARK_BUILD_PYTHON=ON "${pybind[@]}" \
      -DPython3_EXECUTABLE="$(command -v "$PY")" >"$OUT/configure.log" 2>&1 ||
   ! cmake --build "$BUILD" -j "$(nproc)" --target ark ark_python >"$OUT/build.log" 2>&1; then
  echo "BUILD FAILED (see build.log / configure.log)" | tee -a "$OUT/summary.txt"
  tail -30 "$OUT/build.log" "$OUT/configure.log"
  exit 1
fi

status=0
for f in test_custom_op.py test_hf_loading.py test_hf_schemes.py test_vllm_claim.py; do
  ARK_BUILD_DIR=$BUILD ARK_BIN=$BUILD/ark PYTHONPATH=python:tests/python \
    "$PY" -m pytest -q -rs -s tests/python/$f >"$OUT/${f%.py}.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && status=1
  echo "$f: rc=$rc $(tail -1 "$OUT/${f%.py}.log")" | tee -a "$OUT/summary.txt"
done
grep -h "max |ark.hf" "$OUT/test_hf_loading.log" >>"$OUT/summary.txt" 2>/dev/null
grep -h "SKIPPED" "$OUT"/test_*.log >>"$OUT/summary.txt" 2>/dev/null
exit $status
