#!/usr/bin/env bash
# MoE models in the runtime, on the device machine's Xeon host (16 cores, AMX), CPU only, in one call:
#   1. the `ark` program and the unit tests built here by --prepare (linked with libstdc++, PCRE2, utf8proc,
#      GoogleTest and libgomp statically and without oneDNN, so they need only glibc there: the host lacks ark's
#      build dependencies): `ark info`, the Runtime* gtests (MoE ones included) at the host's ISA (AMX), and the
#      float64-reference pytest when the host's python has pytest;
#   2. ark against Hugging Face transformers (the host's torch / transformers) on every case of
#      scripts/reference_transformers.py, dense and MoE: max logit difference and greedy tokens;
#   3. `ark bench model` on slices of Qwen3-30B-A3B's layer shape (hidden 2048, 32 heads, 4 KV heads, head_dim
#      128, 128 experts, top-8, expert intermediate 768, int4 g128 sym) with LAYERS decoder layers (default 8)
#      and vocab 32000 (the real 151936 would make the bf16 lm_head most of the bytes a token reads), against a dense Qwen3 of the same attention whose MLP (intermediate 6144 = 8 x 768)
#      reads the same bytes per token as the 8 routed experts; 16 threads (two rounds) and 2 threads, alternating.
#
#   here:   bash scripts/device_moe_runtime.sh --prepare        (builds build-moert-dev/ark from ARK_BUILD,
#                                                                default build-moert; ~2 min after a build)
#   there:  bash scripts/device_moe_runtime.sh                  (carry ["build-moert-dev"]; about 5-8 min;
#                                                                logs in $OUT; LAYERS=n for other slices)
set -uo pipefail
cd "$(dirname "$0")/.."
DEV=build-moert-dev

if [ "${1:-}" = "--prepare" ]; then
  B=${ARK_BUILD:-build-moert}
  cmake --build "$B" --target ark -j2 >/dev/null || { echo "build of $B failed"; exit 1; }
  mkdir -p $DEV/obj
  # The oneDNN bf16 baseline of `ark bench linear` is left out (libdnnl is 40 MB and absent there).
  c++ -O3 -DNDEBUG -std=c++20 -Isrc -Iinclude -DARK_BENCH_DIR=\"bench\" \
    -DARK_BUILD_INFO="\"Release, prepared by device_moe_runtime.sh\"" -c bench/bf16_baseline.cpp \
    -o $DEV/obj/bf16_baseline.o || exit 1
  objs=$(ls "$B"/CMakeFiles/ark.dir/tools/ark/*.o "$B"/CMakeFiles/ark.dir/bench/*.o | grep -v bf16_baseline)
  # shellcheck disable=SC2086
  c++ -O3 -fopenmp -static-libstdc++ -static-libgcc -o $DEV/ark $objs $DEV/obj/bf16_baseline.o "$B/libark_core.a" \
    /usr/lib/x86_64-linux-gnu/libpcre2-8.a /usr/lib/x86_64-linux-gnu/libutf8proc.a \
    -Wl,-Bstatic -lgomp -Wl,-Bdynamic -lpthread -ldl || exit 1
  # The unit tests too (the runtime suites are run there: AMX / AVX-512 paths this machine may lack).
  cmake --build "$B" --target ark_tests -j2 >/dev/null || { echo "build of $B/ark_tests failed"; exit 1; }
  # shellcheck disable=SC2086
  c++ -O3 -static-libstdc++ -static-libgcc -o $DEV/ark_tests "$B"/CMakeFiles/ark_tests.dir/tests/*.o \
    "$B/libark_core.a" /usr/lib/x86_64-linux-gnu/libgtest_main.a /usr/lib/x86_64-linux-gnu/libgtest.a \
    /usr/lib/x86_64-linux-gnu/libpcre2-8.a /usr/lib/x86_64-linux-gnu/libutf8proc.a -lpthread || exit 1
  rm -rf $DEV/obj
  for b in ark ark_tests; do
    echo "prepared $DEV/$b ($(du -h $DEV/$b | cut -f1)); needs: $(ldd $DEV/$b | awk '{print $1}' | tr '\n' ' ')"
  done
  exit 0
fi

OUT_DIR=${OUT:-/tmp/moe_runtime}
mkdir -p "$OUT_DIR"
ARK=$PWD/$DEV/ark
LAYERS=${LAYERS:-8}
WORK=$(mktemp -d /tmp/moe_runtime.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
{
  echo "== host"
  date -u
  grep -m1 "model name" /proc/cpuinfo
  nproc
  free -g | head -2
  "$ARK" info 2>&1 | head -5 || { echo "ark does not run here"; exit 1; }
} 2>&1 | tee "$OUT_DIR/host.log"

echo "== runtime tests (gtest Runtime*, then the float64-reference pytest when pytest is there)" |
  tee "$OUT_DIR/tests.log"
"$PWD/$DEV/ark_tests" --gtest_filter='Runtime*' 2>&1 | tail -25 | tee -a "$OUT_DIR/tests.log"
if python3 -c "import pytest, numpy, safetensors" 2>/dev/null; then
  ARK_BIN=$ARK timeout 120 python3 -m pytest -q tests/python/test_runtime_reference.py 2>&1 | tail -5 |
    tee -a "$OUT_DIR/tests.log"
else
  echo "pytest / numpy / safetensors missing: reference pytest skipped" | tee -a "$OUT_DIR/tests.log"
fi

echo "== transformers" | tee "$OUT_DIR/transformers.log"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  2>&1 | tee -a "$OUT_DIR/transformers.log"
timeout 240 python3 scripts/reference_transformers.py --ark "$ARK" --workdir "$WORK/hf" 2>&1 | grep '^{' |
  tee -a "$OUT_DIR/transformers.log"
echo "transformers comparison exit ${PIPESTATUS[0]}" | tee -a "$OUT_DIR/transformers.log"

echo "== bench ($LAYERS layers of Qwen3-30B-A3B's shape)" | tee "$OUT_DIR/bench.log"
SHAPE=(--hidden 2048 --heads 32 --kv-heads 4 --head-dim 128 --layers "$LAYERS" --vocab 32000 --group-size 128
       --max-position-embeddings 4096)
"$ARK" make-model --preset tiny-qwen3-moe "${SHAPE[@]}" --intermediate 6144 --moe-intermediate 768 --experts 128 \
  --experts-per-tok 8 --out "$WORK/moe" 2>&1 | tee -a "$OUT_DIR/bench.log"
"$ARK" make-model --preset tiny --arch qwen3 "${SHAPE[@]}" --intermediate 6144 --out "$WORK/dense" 2>&1 |
  tee -a "$OUT_DIR/bench.log"
"$ARK" inspect --model "$WORK/moe" 2>&1 | head -16 >>"$OUT_DIR/bench.log"
# 16 threads twice, 2 threads once (alternating dense / MoE), each run capped at 2 minutes: the whole script
# stays inside the device's 10-minute limit, and what ran is in bench.log even if it does not.
for threads in 16 16 2; do
  for m in dense moe; do
    echo "-- $m, $threads threads" | tee -a "$OUT_DIR/bench.log"
    timeout 120 "$ARK" bench model --model "$WORK/$m" --threads "$threads" --prompt-tokens 512 \
      --decode-tokens 128 2>&1 | tee -a "$OUT_DIR/bench.log"
  done
done
