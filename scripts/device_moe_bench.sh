#!/usr/bin/env bash
# The MoE figures and checks on the device machine's Xeon host (16 cores, AMX), CPU only, in one call:
#   1. builds the MoE tests (tests/moe_test.cpp) and a standalone benchmark driver (tests/gpu/moe_bench_main.cpp
#      over bench/moe_bench.cpp) from source with the host's g++ (-O3, 16 jobs; the host lacks the `ark`
#      program's other dependencies, so only the library parts the MoE needs are compiled);
#   2. runs the MoE tests at the host's full ISA (AMX) and with ARK_ISA=amx set explicitly;
#   3. runs the benchmark (Qwen3-30B-A3B MoE layer shape) with --threads 2 and with all 16 threads, then
#      variants at 16 threads for comparison: the step-by-step schedule at small T, experts on the GEMM from
#      16 rows, 4 MiB prefill waves, exact mode. About 5-6 minutes in all.
# GoogleTest comes prebuilt in .device_moe/ (made here by `bash scripts/device_moe_bench.sh --prepare`, which
# also builds fallback binaries used when the host cannot compile).
#
#   here:   bash scripts/device_moe_bench.sh --prepare
#   there:  bash scripts/device_moe_bench.sh            (carry .device_moe; writes logs and CSVs to $OUT)
set -uo pipefail
cd "$(dirname "$0")/.."
DEV=.device_moe

FLAGS_plain=""
FLAGS_avx2="-mavx2 -mfma -mf16c -mavxvnni"
FLAGS_avx512="-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq"
FLAGS_vnni="$FLAGS_avx512 -mavx512vnni"
FLAGS_bf16="$FLAGS_vnni -mavx512bf16"
FLAGS_amx="$FLAGS_bf16 -mamx-tile -mamx-int8 -mamx-bf16"

sources() {  # "<isa> <file>" per line: the library parts the MoE needs, and the benchmark's files
  for f in src/common/*.cpp src/moe/*.cpp src/linear/*.cpp src/kernels/*.cpp src/kernels/ref/*.cpp src/format/*.cpp \
           src/io/dtype.cpp src/runtime/thread_pool.cpp bench/moe_bench.cpp bench/linear_bench.cpp \
           bench/bf16_baseline.cpp bench/memory_bandwidth.cpp; do
    echo "plain $f"
  done
  for isa in avx2 avx512 vnni bf16 amx; do
    for f in src/kernels/x86/$isa/*.cpp; do [ -e "$f" ] && echo "$isa $f"; done
  done
}

build() {  # build <folder>
  local out=$1
  mkdir -p "$out/obj"
  export CXXFLAGS_BASE="-std=c++20 -O3 -DNDEBUG -fPIC -Wall -Wextra -Iinclude -Isrc -Itests -I$DEV/include"
  export OUTOBJ="$out/obj"
  export FLAGS_plain FLAGS_avx2 FLAGS_avx512 FLAGS_vnni FLAGS_bf16 FLAGS_amx
  { sources; echo "plain tests/moe_test.cpp"; echo "plain tests/gpu/moe_bench_main.cpp"; } |
    xargs -P "${JOBS:-16}" -L 1 bash -c 'v=FLAGS_$0; o="$OUTOBJ/$(echo "$1" | tr / _).o";
      g++ $CXXFLAGS_BASE ${!v} -c "$1" -o "$o" || { echo "compile failed: $1"; exit 255; }' || return 1
  local lib=()
  while read -r isa f; do
    case "$f" in bench/*) ;; *) lib+=("$out/obj/$(echo "$f" | tr / _).o") ;; esac
  done < <(sources)
  local bench=("$out"/obj/bench_*.o)
  g++ -static-libstdc++ -static-libgcc -o "$out/moe_tests" "$out/obj/tests_moe_test.cpp.o" "${lib[@]}" \
    $DEV/lib/libgtest_main.a $DEV/lib/libgtest.a -lpthread || return 1
  g++ -static-libstdc++ -static-libgcc -o "$out/moe_bench" "$out/obj/tests_gpu_moe_bench_main.cpp.o" \
    "${bench[@]}" "${lib[@]}" -lpthread
}

if [ "${1:-}" = "--prepare" ]; then
  rm -rf $DEV && mkdir -p $DEV/include $DEV/lib
  cp -r /usr/include/gtest $DEV/include/
  cp /usr/lib/x86_64-linux-gnu/libgtest.a /usr/lib/x86_64-linux-gnu/libgtest_main.a $DEV/lib/
  build $DEV/bin && rm -rf $DEV/bin/obj && echo "prepared $DEV (gtest and fallback binaries)"
  exit $?
fi

OUT_DIR=${1:-${OUT:-/tmp/moe_bench}}
mkdir -p "$OUT_DIR"
{
  echo "== host"; date -u; uname -r
  grep -m1 "model name" /proc/cpuinfo; nproc
  echo "isa flags: $(grep -o -E 'amx[a-z0-9_]*|avx512_vnni|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null) $(git status --short 2>/dev/null | wc -l) changed files"
  echo "== build"
  BIN=/tmp/moe_build
  start=$(date +%s)
  if command -v g++ >/dev/null && g++ --version | head -1 && build $BIN; then
    echo "built from source on this host in $(( $(date +%s) - start )) s"
  else
    echo "no working g++ build here: using the binaries built by --prepare"
    BIN=$DEV/bin
  fi
  echo "== tests (full ISA)"
  "$BIN/moe_tests" --gtest_filter='QuantMoE.*'
  echo "tests exit code: $?"
  echo "== tests (ARK_ISA=amx)"
  ARK_ISA=amx "$BIN/moe_tests" --gtest_filter='QuantMoE.*'
  echo "tests exit code: $?"
  echo "== bench, 2 threads"
  "$BIN/moe_bench" --threads 2 --min-time 0.5 --csv "$OUT_DIR/moe_bench_xeon_t2.csv"
  echo "== bench, 16 threads"
  "$BIN/moe_bench" --threads 16 --min-time 0.5 --csv "$OUT_DIR/moe_bench_xeon_t16.csv"
  echo "== bench, 16 threads, step-by-step schedule for every T (ARK_MOE_DECODE_TOKENS=0), to compare"
  ARK_MOE_DECODE_TOKENS=0 "$BIN/moe_bench" --threads 16 --min-time 0.5 --tokens 1,4,16 \
    --csv "$OUT_DIR/moe_bench_xeon_t16_staged.csv"
  echo "== bench, 16 threads, experts switch to the GEMM (AMX) from 16 rows instead of 128"
  "$BIN/moe_bench" --threads 16 --min-time 0.5 --tokens 64,256,1024 --threshold 16 \
    --csv "$OUT_DIR/moe_bench_xeon_t16_thr16.csv"
  echo "== bench, 16 threads, prefill waves of 4 MiB instead of 16 MiB (ARK_MOE_WAVE_BYTES), to compare"
  ARK_MOE_WAVE_BYTES=4194304 "$BIN/moe_bench" --threads 16 --min-time 0.3 --tokens 64,256,1024 \
    --csv "$OUT_DIR/moe_bench_xeon_t16_wave4m.csv"
  echo "== bench, 16 threads, exact mode"
  "$BIN/moe_bench" --threads 16 --min-time 0.3 --mode exact --tokens 1,16,256 --csv "$OUT_DIR/moe_bench_xeon_t16_exact.csv"
} 2>&1 | tee "$OUT_DIR/moe_bench.log"
