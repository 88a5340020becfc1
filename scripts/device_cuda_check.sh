#!/usr/bin/env bash
# The CUDA check, for the GPU device machine (one H100 or H200): builds the CUDA backend, its GPU tests and
# its benchmark straight from source with nvcc and g++ (the project's CMake needs libraries that machine
# lacks), looks at the tensor-core kernel's SASS, runs the GPU tests, a compute-sanitizer memcheck on a
# subset, the benchmark and torch's baselines, and prints a summary table last. Full logs go to the output
# folder ($OUT there). GoogleTest comes prebuilt in .device_cuda/ (made here by --prepare; nothing can be
# installed there), with fallback binaries for a host whose compiler fails.
#
#   here:   bash scripts/device_cuda_check.sh --prepare
#   there:  bash scripts/device_cuda_check.sh [all|test|python|bench|quick|sweep|gemv|gemvtest|gemvquick|profile|stalls|build]
#           [output folder]
#           (gemv: the streaming decode kernel against mma at M = 1..32, every block shape and split, and the
#           planner's choice also with the 4 x 2 x-ring blocks and with the cluster split-K reduction;
#           gemvtest: the GPU tests of the gemv family and the planner, then a memcheck of the cluster
#           reduction, ~1 minute; gemvquick: a build variant's headline gemv cases, ~40 s;
#           gemv5: ptxas of the int4 gemv kernels, the variant tests (CudaLinear.GemvVariants*) and the gemv
#           sweep with the x-ring lookahead and two-block 17..32-row variants, ~4.5 minutes with the build;
#           gemv7: the planner's gemv choices against its previous fit and the two-block 17..32-row kernel
#           (ark_cuda_bench --sweep-gemv-auto), then the gemv tests and a memcheck, ~4.5 minutes with the build;
#           gemv8: the gemv tests with kAuto, with stream-K and with one block per SM forced, a memcheck, the
#           sweep of kAuto against the previous kAuto and stream-K (--sweep-gemv-sk), within GEMV8_END_S (default 290) s;
#           gemv9: the GPU tests (GEMV9_TESTS, default all) with kAuto, the gemv tests with one block per SM
#           forced, a memcheck of the dependent-launch chain test and the subset, then kAuto against the
#           decode kernel launched plainly or as a dependent, with and without one block per SM
#           (--sweep-gemv-pdl, or the ark_cuda_bench sweeps GEMV9_SWEEPS names), ~6 minutes without the build
#           (ARK_PREBUILT=1 BIN_DIR=...: binaries built here);
#           stalls: ncu's warp-state samples per SASS instruction of the gemv kernel at M = 1 / 16 / 32 and the
#           wgmma kernel at M = 64 / 256 (8192x28672; STALL_CASES=family:K:N:M ...), all in $OUT/stalls.tgz;
#           profile: ncu of one call of gemv and mma at M = 1 (28672x8192), gemv at M = 16 / 32 and wgmma at
#           M = 64 / 256 / 1024 (8192x28672), ~2 minutes;
#           wgmma: the wgmma family's GPU tests, its memcheck subset and the sweep against mma, dequant_gemm
#           and cuBLAS at M = 32..1024 on the six shapes, both wgmma kernels (warp-specialized and the
#           all-threads one), ~4 minutes; wgmmaquick: tests, the 70B shapes and 8192x8192, ncu at M = 64
#           and 1024, ~4 minutes; wgmmafast: SASS, the wgmma tests (also the kAuto ones with each wide kernel
#           forced), the sweep of the 7B shapes (WGMMAFAST_SMALL=0: none), then while the call's 6 minutes
#           last the quick sweep and the memcheck subset; wgmma5: the wide kernel's stream-K schedule: its tests, the schedule sweep
#           (--sweep-wgmma-sk), the kAuto wgmma tests with stream-K forced (WGMMA5_FINAL=1: every wgmma test
#           as planned but the stream-K oracle test), memcheck, within WGMMA5_END_S (default 290) s of the
#           start, the build included)
#           ab: kAuto's table (ark_cuda_bench --auto-only) of build variants built here, alternated in one
#           call: AB_VARIANTS="a b ..." names folders under BIN_DIR that each hold an ark_cuda_bench (e.g.
#           BIN_DIR=.devbin with .devbin/a, .devbin/b), AB_ROUNDS rounds (default 2), AB_MS its rows of x
#           (default 17,32,64), AB_ARGS more arguments (e.g. --group 32); one CSV per variant, ~25 s a run
#           (carry .device_cuda; build: only build, e.g. a variant in BIN_DIR with ARK_CUDA_DEFINES)
#           all may pass the 10-minute limit of one call: run `test`, then `bench` on the same warm machine
#           (the second call reuses the build in /tmp/cuda_build). Each is under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
DEV=.device_cuda
ARCH="-gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90a,code=sm_90a"
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}
tool() {  # tool <name>: on PATH, else in the toolkit
  command -v "$1" 2>/dev/null || ls "$CUDA_HOME/bin/$1" "$CUDA_HOME/$1/$1" 2>/dev/null | head -1
}

# Where libcublasLt.so lives: the toolkit, else the pip wheel torch uses.
cublas_dir() {
  for d in "$CUDA_HOME/lib64" "$CUDA_HOME/lib" "$CUDA_HOME/targets/x86_64-linux/lib"; do
    [ -e "$d/libcublasLt.so" ] && { echo "$d"; return; }
  done
  python3 - <<'EOF' 2>/dev/null
import glob, os, site
for s in site.getsitepackages():
    for p in glob.glob(os.path.join(s, "nvidia", "**", "libcublasLt.so*"), recursive=True):
        print(os.path.dirname(p)); raise SystemExit
EOF
}

LIB_SOURCES="src/format/awq_codec.cpp src/format/codec.cpp src/format/dequantize.cpp src/format/gptq_codec.cpp
  src/format/quantized_weight.cpp src/format/rtn_quantizer.cpp src/io/dtype.cpp src/kernels/cuda/cuda_pack.cpp
  src/kernels/cuda/launch.cpp src/kernels/cuda/cuda_linear.cpp src/kernels/cuda/tensor_map.cpp"
# ARK_CUDA_DEFINES: extra -D flags for every compile (build-time knobs such as ARK_MMA_DECODE_TILES=2, to
# measure a variant in a second build folder: BIN_DIR=/tmp/other ARK_CUDA_DEFINES=... <script> quick).
DEFINES=${ARK_CUDA_DEFINES:-}
CU_SOURCES="src/kernels/cuda/linear_mma.cu src/kernels/cuda/linear_simple.cu src/kernels/cuda/dequant.cu
  src/kernels/cuda/linear_gemv.cu src/kernels/cuda/linear_wgmma.cu src/kernels/cuda/linear_wgmma_wide.cu"

build() {  # build <folder>
  local out=$1 pids=() objs=()
  mkdir -p "$out/obj"
  local cxx=(g++ -std=c++20 -O3 -fPIC -Wall -Wextra $DEFINES -Iinclude -Isrc -Itests -I$DEV/include
    -I"$CUDA_HOME/include")
  for s in $LIB_SOURCES; do
    local o="$out/obj/$(basename "$s" .cpp).o"
    "${cxx[@]}" -c "$s" -o "$o" & pids+=($!)
    objs+=("$o")
  done
  for s in $CU_SOURCES; do
    local o="$out/obj/$(basename "$s" .cu).o"
    "$NVCC" -std=c++17 -O3 $ARCH $DEFINES -Xcompiler -fPIC -Iinclude -Isrc -Xptxas -v -c "$s" -o "$o" \
      >"$out/obj/$(basename "$s").ptxas.log" 2>&1 &
    pids+=($!)
    objs+=("$o")
  done
  "${cxx[@]}" -c tests/gpu/cuda_linear_test.cpp -o "$out/obj/gpu_test.o" & pids+=($!)
  "${cxx[@]}" -c tests/cuda_pack_test.cpp -o "$out/obj/pack_test.o" & pids+=($!)
  "$NVCC" -std=c++17 -O3 $ARCH $DEFINES -Iinclude -Isrc -c bench/cuda_linear_bench.cu -o "$out/obj/bench.o" &
  pids+=($!)
  local fail=0
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
  cat "$out"/obj/*.ptxas.log | grep -E "error|spill|Used" | sort | uniq -c | sort -rn | head -20
  [ $fail = 0 ] || return 1
  local cdir
  cdir=$(cublas_dir)
  local link=("$NVCC" $ARCH -L"$cdir" -Xlinker -rpath,"$cdir" -lcublasLt -lpthread)
  "${link[@]}" -o "$out/ark_gpu_tests" "$out/obj/gpu_test.o" "$out/obj/pack_test.o" "${objs[@]}" \
    $DEV/lib/libgtest_main.a $DEV/lib/libgtest.a || return 1
  "${link[@]}" -o "$out/ark_cuda_bench" "$out/obj/bench.o" "${objs[@]}"
}

# ark._C with the CUDA layer, straight from source like build() (the project's CMake wants CLI11, PCRE2 and
# utf8proc there; of those the extension needs only utf8proc, for the chat-template interpreter, which
# --prepare brings): every library source except the CUDA folder's, with the ISA flags of its x86 folder;
# sources that need a header this host lacks are left out (the tokenizer's), and the linker takes only what
# the module uses. Position-independent objects of their own.
build_python() {  # build_python <folder>: writes <folder>/python/ark/_C<suffix>
  local out=$1/python pids=() objs=()
  mkdir -p "$out/obj" "$out/ark"
  local pyinc suffix torchinc pb
  pyinc=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  suffix=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
  [ -f "$pyinc/Python.h" ] || { echo "no Python.h in $pyinc: ark._C not built"; return 1; }
  torchinc=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))' 2>/dev/null)
  pb=$DEV/include
  [ -n "$torchinc" ] && [ -f "$torchinc/pybind11/pybind11.h" ] && pb=$torchinc
  local cxx=(g++ -std=c++20 -O3 -fPIC -DARK_HAVE_CUDA $DEFINES -Iinclude -Isrc -I$DEV/include -I"$CUDA_HOME/include")
  local n=0
  for s in $(find src -name '*.cpp' ! -path 'src/kernels/cuda/*') src/kernels/cuda/cuda_pack.cpp \
           src/kernels/cuda/launch.cpp src/kernels/cuda/cuda_linear.cpp src/kernels/cuda/tensor_map.cpp; do
    local flags=()
    case $s in
      src/kernels/x86/avx2/*) flags=(-mavx2 -mfma -mf16c -mavxvnni) ;;
      src/kernels/x86/avx512/*) flags=(-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq) ;;
      src/kernels/x86/vnni/*) flags=(-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni) ;;
      src/kernels/x86/bf16/*) flags=(-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
                                     -mavx512bf16) ;;
      src/kernels/x86/amx/*) flags=(-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
                                    -mavx512bf16 -mamx-tile -mamx-int8 -mamx-bf16) ;;
    esac
    local o="$out/obj/$(echo "$s" | tr / _ | sed 's/\.cpp$/.o/')"
    ( "${cxx[@]}" "${flags[@]}" -c "$s" -o "$o" 2>"$o.log" || rm -f "$o" ) & pids+=($!)
    n=$((n + 1))
    [ $((n % 16)) = 0 ] && { for p in "${pids[@]}"; do wait "$p"; done; pids=(); }
  done
  for s in $CU_SOURCES; do  # build()'s objects (position-independent) when they are there
    local o="$out/obj/$(basename "$s" .cu).cu.o" built="$1/obj/$(basename "$s" .cu).o"
    if [ -f "$built" ]; then cp "$built" "$o"
    else "$NVCC" -std=c++17 -O3 $ARCH -Xcompiler -fPIC -Iinclude -Isrc -c "$s" -o "$o" & pids+=($!)
    fi
  done
  for m in ark_module cuda_layer; do
    "${cxx[@]}" -I"$pb" -I"$pyinc" -fvisibility=hidden -c python/src/$m.cpp -o "$out/obj/py_$m.o" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  echo "ark._C: $(ls "$out"/obj/*.o | wc -l) objects; left out: $(cd "$out/obj" && for l in *.log; do
    [ -f "${l%.log}" ] || printf '%s ' "${l%.o.log}"; done)"
  [ -f "$out/obj/py_ark_module.o" ] && [ -f "$out/obj/py_cuda_layer.o" ] || return 1
  rm -f "$out/libark_py.a"
  ar rcs "$out/libark_py.a" $(ls "$out"/obj/*.o | grep -v '/py_')
  local cdir
  cdir=$(cublas_dir)
  "$NVCC" $ARCH -shared -Xcompiler -fPIC -o "$out/ark/_C$suffix" "$out/obj/py_ark_module.o" \
    "$out/obj/py_cuda_layer.o" "$out/libark_py.a" -L"$cdir" -Xlinker -rpath,"$cdir" -lcublasLt -lpthread \
    -L"$DEV/lib" -lutf8proc -Xlinker -rpath,"$PWD/$DEV/lib"
}

if [ "${1:-}" = "--prepare" ]; then
  rm -rf $DEV && mkdir -p $DEV/include $DEV/lib
  cp -r /usr/include/gtest $DEV/include/
  cp /usr/lib/x86_64-linux-gnu/libgtest.a /usr/lib/x86_64-linux-gnu/libgtest_main.a $DEV/lib/
  # For ark._C there: nlohmann-json (header-only), pybind11 headers (used only when torch ships none), and
  # pytest with its pure-Python dependencies (the device's Python has no pytest).
  cp -r /usr/include/nlohmann /usr/include/pybind11 $DEV/include/
  # utf8proc for the chat-template interpreter the module exposes (the device has no libutf8proc-dev).
  cp /usr/include/utf8proc.h $DEV/include/
  # Two plain copies (links do not travel): the linker's name and the soname the module will ask for.
  cp "$(readlink -f /usr/lib/x86_64-linux-gnu/libutf8proc.so.2)" $DEV/lib/libutf8proc.so.2
  cp $DEV/lib/libutf8proc.so.2 $DEV/lib/libutf8proc.so
  mkdir -p $DEV/pylib
  site=$(.venv/bin/python -c 'import os, pytest; print(os.path.dirname(os.path.dirname(pytest.__file__)))')
  for m in pytest _pytest pluggy iniconfig packaging py.py; do
    [ -e "$site/$m" ] && cp -r "$site/$m" $DEV/pylib/
  done
  build $DEV/bin && echo "prepared $DEV (gtest and fallback binaries)"
  exit $?
fi

WHAT=${1:-all}
GEMV8_END_S=${GEMV8_END_S:-290}
OUT_DIR=${2:-${OUT:-/tmp/cuda_check}}
mkdir -p "$OUT_DIR"
BIN=${BIN_DIR:-/tmp/cuda_build}
SUMMARY="$OUT_DIR/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
# memcheck SECONDS LOG LABEL FILTER [VAR=VALUE ...]: a compute-sanitizer memcheck of the GPU tests that FILTER
# names (with those environment variables), its output in $OUT_DIR/LOG and its error summary in the notes
# under LABEL; returns 1 without running where this host has no compute-sanitizer.
memcheck() {
  local seconds=$1 log=$2 label=$3 filter=$4 san
  shift 4
  san=$(tool compute-sanitizer)
  [ -n "$san" ] || return 1
  env "$@" timeout "$seconds" "$san" --tool memcheck --error-exitcode 9 $BIN/ark_gpu_tests \
    --gtest_filter="$filter" >"$OUT_DIR/$log" 2>&1
  note "$label: exit $? ($(grep -o 'ERROR SUMMARY: [0-9]* errors' "$OUT_DIR/$log" | tail -1))"
}

{
  echo "== host"
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  "$NVCC" --version | tail -2
  python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())' 2>&1
  echo "== build"
  start=$(date +%s)
  newer=$(find include src/kernels/cuda src/format tests/gpu tests/cuda_pack_test.cpp bench/cuda_linear_bench.cu \
    -newer $BIN/ark_cuda_bench 2>/dev/null | head -1)
  # ARK_PREBUILT=1: the binaries in BIN_DIR were built from this tree elsewhere (file times do not travel)
  if [ "$WHAT" = ab ]; then  # prebuilt variants, one folder each under BIN_DIR
    export LD_LIBRARY_PATH="$(cublas_dir)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "variants: ${AB_VARIANTS:-none named} under $BIN"
  elif [ -x $BIN/ark_gpu_tests ] && [ -x $BIN/ark_cuda_bench ] && { [ -z "$newer" ] || [ "${ARK_PREBUILT:-0}" = 1 ]; }; then
    # (built elsewhere, e.g. carried in from the development machine: cuBLASLt from where this host has it)
    export LD_LIBRARY_PATH="$(cublas_dir)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "binaries in $BIN are up to date"
  elif ! command -v g++ >/dev/null; then
    echo "no g++ on this host: using the binaries built by --prepare"
  elif build $BIN; then
    echo "built from source on this host in $(($(date +%s) - start)) s"
  else
    # Never fall back to older binaries here: their figures would pass for this tree's.
    echo "BUILD FAILED on this host (errors above); stopping"
    : >"$OUT_DIR/build_failed"
  fi
  echo "== SASS of the int4 tensor-core kernels (sm_90a): HMMA count, 128-bit loads, local memory"
  CUOBJDUMP=$(tool cuobjdump)
  if [ -n "$CUOBJDUMP" ] && [ -f $BIN/obj/linear_mma.o ]; then
    "$CUOBJDUMP" --dump-sass $BIN/obj/linear_mma.o >"$OUT_DIR/mma_sass.txt" 2>&1
    python3 - "$OUT_DIR/mma_sass.txt" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
for block in re.split(r"\n\s*Function : ", text)[1:]:
    name = block.split("\n", 1)[0]
    if "Li4E" not in name:
        continue
    hmma = block.count("HMMA")
    ldg128 = len(re.findall(r"LDG[.A-Z]*128", block))
    local = len(re.findall(r"\b(?:LDL|STL)", block))
    print(f"{name[:90]}: HMMA {hmma}, LDG.128 {ldg128}, local {local}")
EOF
  fi
  # the streaming kernel: its steady loop (not in gemv8, whose one call has no time for it after a cold build)
  if [ -n "$CUOBJDUMP" ] && [ -f $BIN/obj/linear_gemv.o ] && [ "$WHAT" != gemv8 ]; then
    "$CUOBJDUMP" --dump-sass $BIN/obj/linear_gemv.o >"$OUT_DIR/gemv_sass.txt" 2>&1
    python3 - "$OUT_DIR/gemv_sass.txt" <<'EOF'
# Per int4 gemv kernel: the instructions of one pass of the main loop along its steady path (the innermost
# backward branch around the most HMMA; at each branch the way with the most HMMA and LDGSTS, then the
# fewest instructions: a chunk of one group, a warp with all its tiles), and local-memory instructions.
import collections, functools, re, sys
sys.setrecursionlimit(100000)
blocks = []
for section in re.split(r"\narch = ", open(sys.argv[1]).read())[1:]:
    arch = section.split()[0]
    blocks += [(arch, b) for b in re.split(r"\n\s*Function : ", section)[1:]]
for arch, block in blocks:
    name = block.split("\n", 1)[0]
    if not re.search(r"gemv_kernelI(6__half|13__nv_bfloat16)Li4E", name):
        continue
    name = arch + " " + re.sub(r".*gemv_kernelI", "gemv_kernel<", name).split("EEEv")[0]
    ins = [(int(m.group(1), 16), m.group(3), m.group(2) or "", m.group(4)) for m in re.finditer(
        r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);", block)]
    idx = {a: i for i, (a, *_) in enumerate(ins)}
    best = None
    for i, (a, op, pred, rest) in enumerate(ins):
        t = re.search(r"0x([0-9a-f]+)", rest) if op.startswith("BRA") and "DIV" not in op else None
        if t and int(t.group(1), 16) < a and int(t.group(1), 16) in idx:
            lo = idx[int(t.group(1), 16)]
            h = sum(1 for x in ins[lo:i + 1] if x[1].startswith("HMMA"))
            if best is None or h > best[0] or (h == best[0] and i - lo < best[2] - best[1]):
                best = (h, lo, i)
    if not best:
        continue
    _, lo, hi = best
    @functools.lru_cache(None)
    def walk(i):
        if i == hi:
            return (0, (i,))
        if i > hi or i < lo:
            return None
        a, op, pred, rest = ins[i]
        cost = 1 - 1000 * op.startswith("HMMA") - 1000 * op.startswith("LDGSTS")
        opts = []
        if op.startswith("BRA") and "DIV" not in op:
            t = re.search(r"0x([0-9a-f]+)", rest)
            j = idx.get(int(t.group(1), 16)) if t else None
            if j is not None and j > i:
                opts.append(walk(j))
            if pred:
                opts.append(walk(i + 1))
        elif not (op.startswith("EXIT") and not pred):
            opts.append(walk(i + 1))
        opts = [o for o in opts if o]
        if not opts:
            return None
        o = min(opts)
        return (o[0] + cost, (i,) + o[1])
    path = walk(lo)[1]
    c = collections.Counter(ins[i][1].split(".")[0] for i in path)
    local = len(re.findall(r"\b(?:LDL|STL)", block))
    print(f"{name}: steady loop {len(path)} instructions "
          f"({', '.join(f'{k} {v}' for k, v in c.most_common(12))}); local-memory instructions: {local}")
EOF
  fi
} 2>&1 | tee "$OUT_DIR/build.log"
if [ -e "$OUT_DIR/build_failed" ]; then
  rm -f "$OUT_DIR/build_failed"
  note "BUILD FAILED: nothing was run (see build.log)"
  exit 1
fi
[ "$WHAT" = ab ] || [ -x $BIN/ark_gpu_tests ] || BIN=$DEV/bin  # ab: variant folders under BIN

if [ "$WHAT" = all ] || [ "$WHAT" = test ]; then
  echo "== GPU tests" | tee "$OUT_DIR/tests.log"
  timeout 200 $BIN/ark_gpu_tests --gtest_output=xml:"$OUT_DIR/tests.xml" >>"$OUT_DIR/tests.log" 2>&1
  echo "exit code $?" >>"$OUT_DIR/tests.log"
  grep -E "^\[ +(FAILED|PASSED|OK|SKIPPED) |seed|Failure|expected|exit code" "$OUT_DIR/tests.log" | head -80
  note "tests: $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test|^\[  SKIPPED \] [0-9]+ test' "$OUT_DIR/tests.log" | tr '\n' ' ')"
  echo "== compute-sanitizer memcheck (subset)" | tee "$OUT_DIR/memcheck.log"
  SANITIZER=$(tool compute-sanitizer)
  if [ -n "$SANITIZER" ]; then
    timeout 150 "$SANITIZER" --tool memcheck --error-exitcode 9 \
      $BIN/ark_gpu_tests --gtest_filter='CudaLinear.MemcheckSubset:CudaLinear.WgmmaMemcheckSubset:CudaLinear.BadInputThrows:CudaPack.*' \
      >>"$OUT_DIR/memcheck.log" 2>&1
    rc=$?
    tail -5 "$OUT_DIR/memcheck.log"
    note "memcheck: exit $rc ($(grep -c '^========= Invalid\|^========= .*out of bounds' "$OUT_DIR/memcheck.log") invalid-access reports; ERROR SUMMARY: $(grep -o 'ERROR SUMMARY: [0-9]* errors' "$OUT_DIR/memcheck.log" | tail -1))"
  else
    note "memcheck: compute-sanitizer not found"
  fi
fi

if [ "$WHAT" = all ] || [ "$WHAT" = test ] || [ "$WHAT" = python ]; then
  echo "== Python: ark._C with CUDA, tests/python/test_cuda_linear.py" | tee "$OUT_DIR/python.log"
  start=$(date +%s)
  if build_python $BIN >>"$OUT_DIR/python.log" 2>&1; then
    echo "built ark._C in $(($(date +%s) - start)) s" >>"$OUT_DIR/python.log"
    pypath=python
    python3 -c 'import pytest' 2>/dev/null || pypath=python:$DEV/pylib
    PYTHONPATH=$pypath ARK_BUILD_DIR=$BIN timeout 200 python3 -m pytest -q -p no:cacheprovider \
      tests/python/test_cuda_linear.py >>"$OUT_DIR/python.log" 2>&1
    echo "exit code $?" >>"$OUT_DIR/python.log"
  else
    echo "ark._C build failed (see above)" >>"$OUT_DIR/python.log"
  fi
  tail -15 "$OUT_DIR/python.log"
  note "python: $(grep -E '[0-9]+ (passed|failed|skipped|error)' "$OUT_DIR/python.log" | tail -1)$(grep -q 'build failed' "$OUT_DIR/python.log" && echo 'ark._C build failed')"
fi

if [ "$WHAT" = quick ]; then
  echo "== quick benchmark ($DEFINES)"
  timeout 120 $BIN/ark_cuda_bench --quick 2>&1 | tee "$OUT_DIR/bench_ark.csv"
fi

if [ "$WHAT" = sweep ]; then  # the mma kernel per split-K factor next to the cost model's choice
  echo "== split-K sweep ($DEFINES)"
  timeout 150 $BIN/ark_cuda_bench --sweep-splits 2>&1 | tee "$OUT_DIR/sweep.csv"
fi

if [ "$WHAT" = gemvtest ]; then  # the GPU tests that run the gemv family, and the planner's (~20 s)
  echo "== GPU tests: gemv family ($DEFINES)" | tee "$OUT_DIR/tests_gemv.log"
  timeout 150 $BIN/ark_gpu_tests \
    --gtest_filter='CudaLinear.Gemv*:CudaPlan.*:CudaLinear.GraphCapture*:CudaLinear.UnalignedActivations:CudaLinear.EveryCombinationSmallShapes' \
    >>"$OUT_DIR/tests_gemv.log" 2>&1
  echo "exit code $?" >>"$OUT_DIR/tests_gemv.log"
  grep -E "^\[ +(FAILED|PASSED|OK|SKIPPED) |seed|Failure|expected|exit code" "$OUT_DIR/tests_gemv.log" | head -60
  note "gemv tests: $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test' "$OUT_DIR/tests_gemv.log" | tr '\n' ' ')"
  # The cluster split-K reduction (distributed shared memory) and the 4 x 2 x-ring blocks under memcheck.
  memcheck 120 memcheck_gemv.log "gemv memcheck" \
    'CudaLinear.GemvClusterReduceMatchesReduceLaunch:CudaLinear.MemcheckSubset'
fi

if [ "$WHAT" = gemv5 ]; then  # issue 6 occupancy work: the gemv variants' tests, ptxas, then the sweep (~4.5 min)
  echo "== ptxas: int4 gemv kernels, sm_90a (registers, spills)"
  python3 - $BIN/obj/linear_gemv.cu.ptxas.log <<'EOF'
import re, sys
cur, spill = None, ""
for line in open(sys.argv[1]):
    m = re.search(r"gemv_kernelI(6__half|13__nv_bfloat16)Li4ELi(\d)ELi(\d)ELb(\d)E.*'(sm_\w+)'", line)
    if m:
        cur = m.groups()
    elif cur and "spill" in line:
        spill = line.split(":", 1)[-1].strip()
    elif cur and "Used" in line:
        if cur[4] == "sm_90a":
            print(f"{cur[0]:>16} rows<={8 * int(cur[1])} ring{cur[2]} two_wide{cur[3]}: "
                  f"{line.split(':', 1)[-1].strip()}; {spill}")
        cur = None
EOF
  echo "== GPU tests: the gemv variants and planner ($DEFINES)" | tee "$OUT_DIR/tests_gemv5.log"
  timeout 60 $BIN/ark_gpu_tests --gtest_filter='CudaLinear.GemvVariants*:CudaPlan.Gemv*' \
    >>"$OUT_DIR/tests_gemv5.log" 2>&1
  echo "exit code $?" >>"$OUT_DIR/tests_gemv5.log"
  grep -E "^\[ +(FAILED|PASSED|OK|SKIPPED) |seed|Failure|expected|exit code" "$OUT_DIR/tests_gemv5.log" | head -40
  note "gemv5 tests: $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test' "$OUT_DIR/tests_gemv5.log" | tr '\n' ' ')"
  echo "== gemv sweep with the variants ($DEFINES)"
  ARK_SWEEP_SKIP_V6=1 timeout ${GEMV5_SWEEP_S:-150} $BIN/ark_cuda_bench --sweep-gemv 2>&1 |
    tee "$OUT_DIR/sweep_gemv5.csv"
fi

if [ "$WHAT" = gemv7 ]; then  # the gemv planner's choices old and new, then the gemv tests and memcheck (~4.5 min)
  echo "== gemv planner: new fit against the previous one, two-block 17..32-row kernel ($DEFINES)"
  timeout ${GEMV7_SWEEP_S:-70} $BIN/ark_cuda_bench --sweep-gemv-auto 2>&1 | tee "$OUT_DIR/sweep_gemv7.csv"
  echo "== GPU tests: gemv family ($DEFINES)" | tee "$OUT_DIR/tests_gemv.log"
  timeout 90 $BIN/ark_gpu_tests \
    --gtest_filter='CudaLinear.Gemv*:CudaPlan.*:CudaLinear.GraphCapture*:CudaLinear.UnalignedActivations:CudaLinear.EveryCombinationSmallShapes' \
    >>"$OUT_DIR/tests_gemv.log" 2>&1
  echo "exit code $?" >>"$OUT_DIR/tests_gemv.log"
  grep -E "^\[ +(FAILED|PASSED|OK|SKIPPED) |seed|Failure|expected|exit code" "$OUT_DIR/tests_gemv.log" | head -60
  note "gemv tests: $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test' "$OUT_DIR/tests_gemv.log" | tr '\n' ' ')"
  memcheck "${GEMV7_MEMCHECK_S:-45}" memcheck_gemv.log "gemv memcheck" 'CudaLinear.MemcheckSubset'
fi

if [ "$WHAT" = gemv8 ]; then  # issue 6 stream-K: tests (kAuto, then stream-K and one block per SM forced), memcheck, sweep
  GEMV_TESTS='CudaLinear.Gemv*:CudaLinear.GraphCapture*:CudaLinear.UnalignedActivations:CudaLinear.MemcheckSubset:CudaLinear.TwoStreams*'
  echo "== GPU tests: gemv family and planner, kAuto ($DEFINES)" | tee "$OUT_DIR/tests_gemv.log"
  timeout 90 $BIN/ark_gpu_tests --gtest_filter="$GEMV_TESTS:CudaLinear.EveryCombinationSmallShapes:CudaPlan.*" \
    >>"$OUT_DIR/tests_gemv.log" 2>&1
  echo "exit code $?" >>"$OUT_DIR/tests_gemv.log"
  grep -E "^\[ +(FAILED|PASSED|SKIPPED) |Failure|exit code" "$OUT_DIR/tests_gemv.log" | head -40
  note "gemv tests (kAuto): $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test' "$OUT_DIR/tests_gemv.log" | tr '\n' ' ')"
  for v in STREAM_K ONE_PER_SM; do  # the tests that run kAuto, with each forced
    echo "== GPU tests: the same with ARK_TEST_GEMV_$v=1" | tee "$OUT_DIR/tests_gemv_$v.log"
    env ARK_TEST_GEMV_$v=1 timeout 60 $BIN/ark_gpu_tests --gtest_filter="$GEMV_TESTS" >>"$OUT_DIR/tests_gemv_$v.log" 2>&1
    echo "exit code $?" >>"$OUT_DIR/tests_gemv_$v.log"
    grep -E "^\[ +(FAILED|PASSED|SKIPPED) |Failure|exit code" "$OUT_DIR/tests_gemv_$v.log" | head -20
    note "gemv tests ($v forced): $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test' "$OUT_DIR/tests_gemv_$v.log" | tr '\n' ' ')"
  done
  if ! { [ $SECONDS -lt $((GEMV8_END_S - 40)) ] &&
    memcheck $((GEMV8_END_S - 25 - SECONDS)) memcheck_gemv.log "gemv memcheck (stream-K forced)" \
      'CudaLinear.GemvStreamKMemcheck:CudaLinear.GemvPdlReduceMatchesReduceLaunch:CudaLinear.MemcheckSubset' \
      ARK_TEST_GEMV_STREAM_K=1; }; then
    note "gemv memcheck: skipped (no compute-sanitizer or out of time at ${SECONDS} s)"
  fi
  echo "== gemv sweep: kAuto against the previous kAuto, one block per SM, stream-K; cuBLAS bf16 (at ${SECONDS} s)"
  timeout $((GEMV8_END_S - SECONDS > 15 ? GEMV8_END_S - SECONDS : 15)) $BIN/ark_cuda_bench --sweep-gemv-sk 2>&1 |
    tee "$OUT_DIR/sweep_gemv8.csv"
fi

if [ "$WHAT" = gemv9 ]; then  # issue 6: the decode kernel as a dependent launch, the first scales beside the codes
  echo "== GPU tests ${GEMV9_TESTS:-*}, kAuto ($DEFINES)" | tee "$OUT_DIR/tests_all.log"
  timeout 200 $BIN/ark_gpu_tests --gtest_filter="${GEMV9_TESTS:-*}" >>"$OUT_DIR/tests_all.log" 2>&1
  echo "exit code $?" >>"$OUT_DIR/tests_all.log"
  grep -E "^\[ +(FAILED|PASSED|SKIPPED) |Failure|exit code" "$OUT_DIR/tests_all.log" | head -40
  note "GPU tests ${GEMV9_TESTS:-*} (kAuto): $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test' "$OUT_DIR/tests_all.log" | tr '\n' ' ')"
  echo "== GPU tests of the gemv family with one block per SM forced" | tee "$OUT_DIR/tests_pad.log"
  ARK_TEST_GEMV_ONE_PER_SM=1 timeout 60 $BIN/ark_gpu_tests --gtest_filter='CudaLinear.Gemv*:CudaLinear.GraphCapture*' \
    >>"$OUT_DIR/tests_pad.log" 2>&1
  echo "exit code $?" >>"$OUT_DIR/tests_pad.log"
  note "gemv tests (one block per SM): $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test' "$OUT_DIR/tests_pad.log" | tr '\n' ' ')"
  memcheck 120 memcheck_gemv.log "memcheck (dependent chain, subset)" \
    'CudaLinear.GemvPdlInChainReadsThePreviousOutput:CudaLinear.MemcheckSubset'
  echo "== gemv sweep: kAuto against the dependent or plain launch, with and without one block per SM; cuBLAS bf16 (at ${SECONDS} s)"
  for sw in ${GEMV9_SWEEPS:---sweep-gemv-pdl}; do
    timeout 240 $BIN/ark_cuda_bench $sw 2>&1 | tee "$OUT_DIR/sweep_${sw#--sweep-}.csv"
  done
fi

if [ "$WHAT" = gemvquick ]; then  # a build variant's gemv headline cases (~30 s)
  echo "== gemv quick sweep ($DEFINES)"
  timeout 120 $BIN/ark_cuda_bench --sweep-gemv --quick 2>&1 | tee "$OUT_DIR/sweep_gemv_quick.csv"
fi

if [ "$WHAT" = gemv ]; then  # gemv against mma at M = 1..32, every block shape and split factor
  echo "== gemv sweep ($DEFINES)"
  timeout 330 $BIN/ark_cuda_bench --sweep-gemv 2>&1 | tee "$OUT_DIR/sweep_gemv.csv"
fi

# The wgmma kernels' sm_90a SASS, int4 instances: HGMMA count, local-memory instructions, instruction
# count; then ptxas's warnings about serialized wgmmas. Used by the wgmma, wgmmaquick and wgmmafast modes.
wgmma_sass_summary() {
  echo "== wgmma kernels (sm_90a SASS): HGMMA, local memory, instructions"
  CUOBJDUMP=$(tool cuobjdump)
  for o in linear_wgmma linear_wgmma_wide; do
    [ -n "$CUOBJDUMP" ] && [ -f $BIN/obj/$o.o ] || continue
    "$CUOBJDUMP" --dump-sass $BIN/obj/$o.o >"$OUT_DIR/${o}_sass.txt" 2>&1
    python3 - "$OUT_DIR/${o}_sass.txt" <<'EOF'
import re, sys
for block in re.split(r"\n\s*Function : ", open(sys.argv[1]).read())[1:]:
    name = block.split("\n", 1)[0]
    if "Li4E" not in name:
        continue
    ins = re.findall(r"/\*[0-9a-f]{4,}\*/\s+([^;]*);", block)
    hgmma = [i for i, x in enumerate(ins) if "HGMMA" in x]
    # the warp-specialized kernel issues a chunk's 8 wgmmas together: a consumer's step is the span from
    # one chunk's first to the next's (its dequantizing, fold and waits)
    step = f" step {hgmma[8] - hgmma[0]}" if "ws_kernel" in name and len(hgmma) >= 16 else ""
    print(re.sub(r".*(wgmma(?:_ws|_wide)?_kernel)I", r"\1<", name).split("EEEv")[0],
          "HGMMA", len(hgmma), "local", len(re.findall(r"\b(?:LDL|STL)", block)), "instructions", f"{len(ins)}{step}")
EOF
    rm -f "$OUT_DIR/${o}_sass.txt"  # too large to come back
  done
  grep -h "C7513\|C7512" $BIN/obj/linear_wgmma*.cu.ptxas.log 2>/dev/null | head -3  # serialized wgmmas
}

if [ "$WHAT" = ab ]; then  # build variants A/B: kAuto's table of each, alternated, in one process per run
  for r in $(seq "${AB_ROUNDS:-2}"); do
    for v in ${AB_VARIANTS:-}; do
      echo "== $v, round $r, $(date -u +%T)"
      ARK_SWEEP_MS=${AB_MS:-17,32,64} timeout "${AB_TIMEOUT_S:-150}" $BIN/$v/ark_cuda_bench --auto-only ${AB_ARGS:-} |
        tee -a "$OUT_DIR/ab_$v.csv" | grep -v '^#' | cut -d, -f1-6,9
    done
  done
fi

if [ "$WHAT" = wgmmafast ]; then  # the wgmma kernels in one 6-minute call: SASS, tests, sweeps, memcheck
  wgmma_sass_summary
  echo "== GPU tests: wgmma family (kAuto; the variant loops run all five kernels)" | tee "$OUT_DIR/tests_wgmma.log"
  timeout 150 $BIN/ark_gpu_tests --gtest_filter='CudaLinear.Wgmma*:CudaPlan.*' >>"$OUT_DIR/tests_wgmma.log" 2>&1
  echo "exit code $?" >>"$OUT_DIR/tests_wgmma.log"
  grep -E "^\[ +(FAILED|PASSED|OK|SKIPPED) |Failure|exit code" "$OUT_DIR/tests_wgmma.log" | head -40
  note "wgmma tests (auto): $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test' "$OUT_DIR/tests_wgmma.log" | tr '\n' ' ')"
  for v in 3 4 5; do  # the tests that run kAuto, with the wide kernel (3), its ping-pong (4) and tall (5) forms forced
    ARK_TEST_WGMMA_VARIANT=$v timeout 40 $BIN/ark_gpu_tests \
      --gtest_filter='CudaLinear.WgmmaInt4EveryM:CudaLinear.WgmmaEveryCombination' >"$OUT_DIR/tests_wgmma_v$v.log" 2>&1
    echo "exit code $?" >>"$OUT_DIR/tests_wgmma_v$v.log"
    grep -E "^\[  FAILED|Failure|exit code" "$OUT_DIR/tests_wgmma_v$v.log" | head -10
    note "wgmma tests (variant $v forced): $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test' "$OUT_DIR/tests_wgmma_v$v.log" | tr '\n' ' ')"
  done
  # What is left of the call's 6 minutes (SECONDS counts from the script's start, the build included).
  if [ "${WGMMAFAST_SMALL:-1}" = 1 ]; then  # WGMMAFAST_SMALL=0: straight to the quick sweep
    echo "== wgmma sweep (the 7B shapes)"
    timeout 90 $BIN/ark_cuda_bench --sweep-wgmma --small 2>&1 | tee "$OUT_DIR/sweep_wgmma_small.csv"
  fi
  # WGMMAFAST_END_S (default 350): when the sweeps and the memcheck end. WGMMAFAST_BASELINE=<ark_cuda_bench of
  # an earlier tree>: its quick sweep first, in the same call and on the same card, with half the sweeps' time.
  END=${WGMMAFAST_END_S:-350}
  if [ $SECONDS -lt $((END - 70)) ]; then
    if [ -n "${WGMMAFAST_BASELINE:-}" ]; then
      echo "== wgmma sweep (quick) of the baseline $WGMMAFAST_BASELINE"
      timeout $(((END - SECONDS) / 2)) "$WGMMAFAST_BASELINE" --sweep-wgmma --quick 2>&1 |
        tee "$OUT_DIR/sweep_wgmma_baseline.csv"
    fi
    echo "== wgmma sweep (quick: the 70B shapes and 8192x8192)"
    timeout $((END - SECONDS)) $BIN/ark_cuda_bench --sweep-wgmma --quick 2>&1 | tee "$OUT_DIR/sweep_wgmma.csv"
  else
    note "wgmma quick sweep: skipped, out of time at ${SECONDS} s"
  fi
  if ! { [ $SECONDS -lt $((END - 30)) ] &&
    memcheck $((END + 2 - SECONDS)) memcheck_wgmma.log "wgmma memcheck" 'CudaLinear.WgmmaMemcheckSubset'; }; then
    note "wgmma memcheck: skipped (no compute-sanitizer or out of time at ${SECONDS} s)"
  fi
fi

# wgmma5: the wide kernel's stream-K schedule in one call ending within WGMMA5_END_S (default 290) s of the
# script's start (the build included). By default: SASS, the stream-K and planner tests, the schedule sweep
# (--sweep-wgmma-sk) until WGMMA5_RESERVE_S (default 80) s before the end, the wgmma tests that run kAuto with
# the wide kernel and stream-K forced, then the memcheck subset (stream-K included) as time allows. With
# WGMMA5_FINAL=1 (the planner's final check): every wgmma test as planned but the stream-K oracle test (the
# default run's), the wgmma planner tests, the sweep until 25 s before the end, then the memcheck subset.
if [ "$WHAT" = wgmma5 ]; then
  END=${WGMMA5_END_S:-290}
  left() { echo $((END - SECONDS > 5 ? END - SECONDS : 5)); }
  wgmma_tests() {  # wgmma_tests <log> <title> <filter> <timeout> [env...]
    local log=$1 title=$2 filter=$3 t=$4
    shift 4
    echo "== GPU tests: $title (at ${SECONDS} s)" | tee "$OUT_DIR/$log"
    env "$@" timeout "$t" $BIN/ark_gpu_tests --gtest_filter="$filter" >>"$OUT_DIR/$log" 2>&1
    echo "exit code $?" >>"$OUT_DIR/$log"
    grep -E "^\[  FAILED|Failure|exit code" "$OUT_DIR/$log" | head -20
    note "wgmma tests ($title): $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test' "$OUT_DIR/$log" | tr '\n' ' ')$(grep -c '^\[       OK \]' "$OUT_DIR/$log") OK"
  }
  if [ "${WGMMA5_FINAL:-0}" = 1 ]; then
    wgmma_tests tests_wgmma.log "kAuto" 'CudaLinear.Wgmma*:CudaPlan.Wgmma*:-CudaLinear.WgmmaStreamKMatchesOracle' 70
    echo "== wgmma schedule sweep (at ${SECONDS} s)"
    timeout $(( $(left) > 45 ? $(left) - 25 : 20 )) $BIN/ark_cuda_bench --sweep-wgmma-sk 2>&1 |
      tee "$OUT_DIR/sweep_wgmma_sk.csv"
  else
    wgmma_sass_summary
    wgmma_tests tests_wgmma_sk.log "stream-K and the wgmma planner" 'CudaLinear.WgmmaStreamK*:CudaPlan.Wgmma*' 45
    echo "== wgmma schedule sweep (at ${SECONDS} s)"
    RESERVE=${WGMMA5_RESERVE_S:-80}
    timeout $(( $(left) > RESERVE + 20 ? $(left) - RESERVE : 20 )) $BIN/ark_cuda_bench --sweep-wgmma-sk 2>&1 |
      tee "$OUT_DIR/sweep_wgmma_sk.csv"
    wgmma_tests tests_wgmma_skforced.log "wide + stream-K forced" \
      'CudaLinear.WgmmaInt4EveryM:CudaLinear.WgmmaEveryCombination:CudaLinear.WgmmaGraphCapture*' \
      $(( $(left) > 50 ? 40 : $(left) )) ARK_TEST_WGMMA_VARIANT=3 ARK_TEST_WGMMA_SCHEDULE=2
  fi
  if ! { [ $SECONDS -lt $((END - 12)) ] &&
    memcheck "$(left)" memcheck_wgmma.log "wgmma memcheck" 'CudaLinear.WgmmaMemcheckSubset'; }; then
    note "wgmma memcheck: skipped (no compute-sanitizer or out of time at ${SECONDS} s)"
  fi
fi

if [ "$WHAT" = wgmma ] || [ "$WHAT" = wgmmaquick ]; then  # the Hopper GEMM: SASS, tests, memcheck, sweep
  wgmma_sass_summary
  echo "== GPU tests: wgmma family" | tee "$OUT_DIR/tests_wgmma.log"
  timeout 150 $BIN/ark_gpu_tests --gtest_filter='CudaLinear.Wgmma*:CudaPlan.*' >>"$OUT_DIR/tests_wgmma.log" 2>&1
  echo "exit code $?" >>"$OUT_DIR/tests_wgmma.log"
  grep -E "^\[ +(FAILED|PASSED|OK|SKIPPED) |seed|Failure|expected|exit code" "$OUT_DIR/tests_wgmma.log" | head -60
  note "wgmma tests: $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test' "$OUT_DIR/tests_wgmma.log" | tr '\n' ' ')"
  memcheck 90 memcheck_wgmma.log "wgmma memcheck" 'CudaLinear.WgmmaMemcheckSubset'
  echo "== wgmma sweep"
  q=""
  [ "$WHAT" = wgmmaquick ] && q=--quick
  timeout 200 $BIN/ark_cuda_bench --sweep-wgmma $q 2>&1 | tee "$OUT_DIR/sweep_wgmma.csv"
  NCU=$(tool ncu)
  if [ "$WHAT" = wgmmaquick ] && [ -n "$NCU" ]; then  # last: what bounds the planner's kernel at M = 64, 1024
    for m in 64 1024; do
      timeout 50 "$NCU" --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
        --section Occupancy --section ComputeWorkloadAnalysis -k "regex:wgmma_(ws_)?kernel" -c 1 \
        $BIN/ark_cuda_bench --once 8192 28672 $m wgmma >"$OUT_DIR/ncu_wgmma_8192x28672_m$m.txt" 2>&1
      grep -E "wgmma_|Duration|DRAM Throughput|Compute \(SM\) Throughput|Warp Cycles Per Issued|Issue Slots Busy|No Eligible|Stall" \
        "$OUT_DIR/ncu_wgmma_8192x28672_m$m.txt" | head -14 | sed "s/^/ncu M=$m: /"
    done
    # the stall reasons behind "no eligible warp" (the section's body), at M = 1024
    timeout 50 "$NCU" --section WarpStateStats --print-details all -k "regex:wgmma_(ws_)?kernel" -c 1 \
      $BIN/ark_cuda_bench --once 8192 28672 1024 wgmma >"$OUT_DIR/ncu_wgmma_stalls_m1024.txt" 2>&1
    grep -iE "stall|cycles" "$OUT_DIR/ncu_wgmma_stalls_m1024.txt" | head -30 | sed "s/^/ncu stalls M=1024: /"
  fi
fi

if [ "$WHAT" = profile ]; then  # ncu of one decode call of each family (28672x8192, M = 1), when ncu is there
  NCU=$(tool ncu)
  if [ -n "$NCU" ]; then
    # family:K:N:M -- the decode families at M = 1, and the cases furthest from their targets.
    for c in gemv:28672:8192:1 mma:28672:8192:1 gemv:8192:28672:16 gemv:8192:28672:32 wgmma:8192:28672:64 \
      wgmma:8192:28672:256 wgmma:8192:28672:1024; do
      IFS=: read -r fam k n m <<<"$c"
      timeout 60 "$NCU" --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \
        --section Occupancy --section SchedulerStats --section ComputeWorkloadAnalysis -k "regex:${fam}_kernel" -c 1 \
        $BIN/ark_cuda_bench --once $k $n $m $fam >"$OUT_DIR/ncu_${fam}_${k}x${n}_m$m.txt" 2>&1
      grep -E "Duration|DRAM Throughput|Compute \(SM\) Throughput|Warp Cycles Per Issued|Achieved Occupancy|Issue Slots Busy|No Eligible|Stall" \
        "$OUT_DIR/ncu_${fam}_${k}x${n}_m$m.txt" | head -14 | sed "s/^/$c: /"
    done
  else
    note "profile: ncu not found"
  fi
fi

if [ "$WHAT" = stalls ]; then  # where the warps of the decode and wgmma kernels wait: ncu's per-instruction samples
  NCU=$(tool ncu)
  if [ -n "$NCU" ]; then
    # family:K:N:M; STALL_CASES overrides. Boost clocks (--clock-control none), caches flushed per replay.
    for c in ${STALL_CASES:-gemv:8192:28672:1 gemv:8192:28672:16 gemv:8192:28672:32 wgmma:8192:28672:64 wgmma:8192:28672:256}; do
      IFS=: read -r fam k n m <<<"$c"
      mkdir -p /tmp/stalls
      rep="/tmp/stalls/${fam}_${k}x${n}_m$m${STALL_TAG:-}"
      timeout 90 "$NCU" --clock-control none --section SpeedOfLight --section WarpStateStats \
        --section SourceCounters --section SchedulerStats --section Occupancy -k "regex:${STALL_KERNEL:-${fam}_(ws_|wide_)?kernel}" -c 1 \
        -f -o "$rep" $BIN/ark_cuda_bench --once $k $n $m $fam >"$rep.log" 2>&1
      "$NCU" -i "$rep.ncu-rep" --print-details all >"$rep.txt" 2>&1
      "$NCU" -i "$rep.ncu-rep" --page source --csv --print-source sass >"$rep.sass.csv" 2>>"$rep.log"
      grep -E "Duration|DRAM Throughput|Warp Cycles Per Issued|Issue Slots Busy|No Eligible|Active Warps Per|Eligible Warps" \
        "$rep.txt" | head -10 | sed "s/^/$c: /"
      python3 - "$rep.sass.csv" "$c" <<'PYEOF' | tee "$rep.top.txt"
# The instructions with the most warp-stall samples, and the stall reasons summed over the kernel.
import csv, sys, collections
lines = open(sys.argv[1]).read().splitlines()
start = next((i for i, l in enumerate(lines) if l.startswith('"Address"')), 0)  # after the kernel-name line
rows = list(csv.DictReader(lines[start:]))
if not rows:
    print(sys.argv[2], ": no source rows"); raise SystemExit
keys = [k for k in rows[0] if k and ("Samples" in k or "stall" in k.lower())]
def num(v):
    try: return float(str(v).replace(",", ""))
    except ValueError: return 0.0
samp = next((k for k in rows[0] if k and k.startswith("Warp Stall Sampling (All")), None)
print(sys.argv[2], "columns:", ", ".join(keys[:40]))
if samp:
    total = sum(num(r[samp]) for r in rows) or 1.0
    top = sorted(rows, key=lambda r: -num(r[samp]))[:45]
    for r in top:
        print(f"{100 * num(r[samp]) / total:5.1f}% {r.get('Address', '')} {r.get('Source', '')[:90]}")
PYEOF
    done
    # one file back: the reports, their text, per-instruction CSVs and top lists
    tar -czf "$OUT_DIR/stalls.tgz" -C /tmp stalls
  else
    note "stalls: ncu not found"
  fi
fi

if [ "$WHAT" = all ] || [ "$WHAT" = bench ]; then
  echo "== benchmark (ark, cuBLASLt bf16)"
  timeout 270 $BIN/ark_cuda_bench 2>&1 | tee "$OUT_DIR/bench_ark.csv"
  echo "== torch baselines (F.linear bf16, _weight_int4pack_mm)"
  timeout 150 python3 bench/cuda_torch_baselines.py 2>&1 | tee "$OUT_DIR/bench_torch.csv"
  python3 - "$OUT_DIR/bench_ark.csv" "$OUT_DIR/bench_torch.csv" <<'EOF' | tee -a "$SUMMARY"
import csv, sys
def rows(path):
    lines = [l for l in open(path) if l.strip() and not l.startswith("#")]
    return list(csv.DictReader(lines))
ark = rows(sys.argv[1])
try:
    torch = {(r["K"], r["N"], r["M"]): r for r in rows(sys.argv[2])}
except Exception:
    torch = {}
print(f"{'KxN':>12} {'M':>5} {'kernel':>24} {'ark us':>8} {'cublas':>8} {'t.int4':>8} {'TB/s':>6} {'%copy':>6} "
      f"{'x cublas':>8} {'x F.lin':>8} {'x int4':>7}")
for r in ark:
    if "K" not in r or r.get("ark_us") in (None, ""):
        continue
    t = torch.get((r["K"], r["N"], r["M"]), {})
    ark_us = float(r["ark_us"])
    flin = float(t.get("torch_bf16_us", "nan") or "nan")
    i4 = float(t.get("torch_int4_us", "nan") or "nan")
    print(f"{r['K'] + 'x' + r['N']:>12} {r['M']:>5} {r['kernel']:>24} {ark_us:8.1f} {float(r['cublas_bf16_us']):8.1f} "
          f"{i4:8.1f} {float(r['weight_TBps']):6.2f} {100 * float(r['frac_copy_bw']):5.1f}% "
          f"{float(r['speedup_vs_cublas']):8.2f} {flin / ark_us:8.2f} {i4 / ark_us:7.2f}")
EOF
fi
echo "== summary"
cat "$SUMMARY"
