#!/usr/bin/env bash
# The AMX check, for a machine whose CPU has AMX (the device machine's Intel Xeon host): builds the large-M GEMM
# tests (tests/gemm_large_m_test.cpp) and the timing driver (tests/gpu/amx_gemm_timing.cpp) from source with the
# host's g++, runs the tests (the AMX ones skip on CPUs without AMX) and times the kernels. GoogleTest comes
# prebuilt in .device_amx/ (made here by `bash scripts/device_amx_check.sh --prepare`), since nothing can be
# installed there; when the host has no g++, binaries built by --prepare are run instead.
#
#   here:   bash scripts/device_amx_check.sh --prepare
#   there:  bash scripts/device_amx_check.sh [output folder]      (carry .device_amx)
set -uo pipefail
cd "$(dirname "$0")/.."
DEV=.device_amx

SOURCES_avx512="src/kernels/x86/avx512/gemm_f32_qw_6x64__avx512f.cpp"
SOURCES_vnni="src/kernels/x86/vnni/gemm_qd8_f32_qu8w_6x64c4__avx512vnni.cpp"
SOURCES_bf16="src/kernels/x86/bf16/gemm_bf16_f32_qw_8x48c2__avx512bf16.cpp"
SOURCES_amx="src/kernels/x86/amx/gemm_bf16_f32_qw_32x32__amx.cpp src/kernels/x86/amx/gemm_qd8_f32_qu8w_32x32__amx.cpp"
# The AVX2 int8 gemv too: GemmLargeM.Qd8Avx2DecodeAtTheInt16Bound runs its AVX-VNNI variant on the host.
SOURCES_avx2="$(ls src/kernels/x86/avx2/gemm_*.cpp src/kernels/x86/avx2/gemv_qd8_*.cpp 2>/dev/null | tr '\n' ' ')"
SOURCES_plain="src/kernels/cpu_features.cpp src/linear/packed_weight.cpp src/format/quantized_weight.cpp src/common/aligned_bytes.cpp"
FLAGS_avx2="-mavx2 -mfma -mf16c"
FLAGS_avx512="$FLAGS_avx2 -mavx512f -mavx512bw -mavx512vl -mavx512dq"
FLAGS_vnni="$FLAGS_avx512 -mavx512vnni"
FLAGS_bf16="$FLAGS_vnni -mavx512bf16"
FLAGS_amx="$FLAGS_bf16 -mamx-tile -mamx-int8 -mamx-bf16"
# The AVX2 units also hold the AVX-VNNI (VEX vpdpbusd) variants, as in CMakeLists.txt; the host's Sapphire
# Rapids has AVX-VNNI, so GemmLargeM.Qd8AvxVnni runs there (it skips on CPUs without it).
FLAGS_avx2="$FLAGS_avx2 -mavxvnni"

build() {  # build <folder>
  local out=$1 objs=() pids=()
  mkdir -p "$out/obj"
  local cxx=(g++ -std=c++20 -O3 -Wall -Wextra -Iinclude -Isrc -Itests -I$DEV/include)
  for isa in plain avx2 avx512 vnni bf16 amx; do
    local src_var=SOURCES_$isa flag_var=FLAGS_$isa
    for s in ${!src_var}; do
      local o="$out/obj/$(basename "$s" .cpp).o"
      "${cxx[@]}" ${!flag_var:-} -c "$s" -o "$o" & pids+=($!)
      objs+=("$o")
    done
  done
  "${cxx[@]}" -c tests/gemm_large_m_test.cpp -o "$out/obj/test.o" & pids+=($!)
  "${cxx[@]}" -c tests/gpu/amx_gemm_timing.cpp -o "$out/obj/timing.o" & pids+=($!)
  for p in "${pids[@]}"; do wait "$p" || return 1; done
  g++ -static-libstdc++ -static-libgcc -o "$out/gemm_tests" "$out/obj/test.o" "${objs[@]}" \
    $DEV/lib/libgtest_main.a $DEV/lib/libgtest.a -lpthread || return 1
  g++ -static-libstdc++ -static-libgcc -o "$out/amx_gemm_timing" "$out/obj/timing.o" "${objs[@]}" -lpthread
}

if [ "${1:-}" = "--prepare" ]; then
  rm -rf $DEV && mkdir -p $DEV/include $DEV/lib
  cp -r /usr/include/gtest $DEV/include/
  cp /usr/lib/x86_64-linux-gnu/libgtest.a /usr/lib/x86_64-linux-gnu/libgtest_main.a $DEV/lib/
  build $DEV/bin && echo "prepared $DEV (gtest and fallback binaries)"
  exit $?
fi

OUT_DIR=${1:-${OUT:-/tmp/amx_check}}
mkdir -p "$OUT_DIR"
{
  echo "== host"; date -u; uname -r
  grep -m1 "model name" /proc/cpuinfo; nproc
  echo "amx flags: $(grep -o 'amx[a-z0-9_]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "== build"
  BIN=/tmp/amx_build
  if command -v g++ >/dev/null && g++ --version | head -1 && build $BIN; then
    echo "built from source on this host"
  else
    echo "no working g++ here: using the binaries built by --prepare"
    BIN=$DEV/bin
  fi
  echo "== tests"
  "$BIN/gemm_tests" --gtest_filter='GemmLargeM.*'
  echo "tests exit code: $?"
  echo "== timing"
  "$BIN/amx_gemm_timing"
  "$BIN/amx_gemm_timing" 4096 4096 128
} 2>&1 | tee "$OUT_DIR/amx_check.log"
