#!/usr/bin/env bash
# Small-layer decode on the device machine's CPU (16-core Intel Xeon, no other load): the M = 1 int4 layers
# of a Qwen2.5-0.5B decode step and the issue 3 layer set, timed call by call with bench/cpu_time/decode_layers
# at 1, 2, 4, 8 and 16 threads, for this tree and, when git history is there, for the tree before the
# small-layer work (BASE, default 774d087: the decode kernels' old prefetch and the interleaved N split),
# alternated three times. Outputs must hash the same in both. Builds from source with the host's g++ (no
# CMake, no libraries beyond libstdc++), so nothing needs installing or carrying. Prints a summary last;
# the full log goes to the output folder ($OUT there).
#
#   there:  bash scripts/device_small_layers.sh [output folder]          (~5 minutes; no carry)
#   here:   SMOKE=1 bash scripts/device_small_layers.sh, to check the script (seconds of timing; the Zen 4 VM's
#           figures are noisy anyway)
set -uo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-774d087}
OUT_DIR=${1:-${OUT:-/tmp/small_layers}}
WORK=${WORK:-/tmp/small_layers_build}
mkdir -p "$OUT_DIR" "$WORK"

PLAIN="src/common/aligned_bytes.cpp src/format/quantized_weight.cpp src/format/codec.cpp src/format/gptq_codec.cpp
  src/format/awq_codec.cpp src/io/dtype.cpp src/kernels/cpu_features.cpp
  src/kernels/dispatch.cpp src/kernels/ref/linear_ref.cpp src/linear/activations.cpp src/linear/packed_weight.cpp
  src/linear/quant_linear.cpp src/runtime/thread_pool.cpp bench/memory_bandwidth.cpp"
FLAGS_avx2="-mavx2 -mfma -mf16c -mavxvnni"
FLAGS_avx512="-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq"
FLAGS_vnni="$FLAGS_avx512 -mavx512vnni"
FLAGS_bf16="$FLAGS_vnni -mavx512bf16"
FLAGS_amx="$FLAGS_bf16 -mamx-tile -mamx-int8 -mamx-bf16"

# build <source root> <binary>: decode_layers against that root's sources.
build() {
  local root=$1 bin=$2 obj=$2.obj pids=() objs=()
  mkdir -p "$obj"
  local cxx=(g++ -std=c++20 -O3 -DNDEBUG -I"$root/include" -I"$root/src" -I"$root/bench")
  for s in $PLAIN bench/cpu_time/decode_layers.cpp; do
    local o="$obj/$(echo "$s" | tr / _).o"
    # The tool itself is this tree's (the base may predate it); everything else is the root's.
    local src="$root/$s"
    [ "$s" = bench/cpu_time/decode_layers.cpp ] && src="$s"
    "${cxx[@]}" -c "$src" -o "$o" & pids+=($!)
    objs+=("$o")
  done
  for isa in avx2 avx512 vnni bf16 amx; do
    local flags=FLAGS_$isa
    for s in "$root"/src/kernels/x86/$isa/*.cpp; do
      [ -e "$s" ] || continue
      local o="$obj/${isa}_$(basename "$s" .cpp).o"
      "${cxx[@]}" ${!flags} -c "$s" -o "$o" & pids+=($!)
      objs+=("$o")
    done
  done
  for p in "${pids[@]}"; do wait "$p" || return 1; done
  g++ -o "$bin" "${objs[@]}" -lpthread
}

{
  echo "== host"; date -u; grep -m1 "model name" /proc/cpuinfo; nproc; uptime
  echo "== build (this tree)"
  build . "$WORK/dl_new" || { echo "build failed"; exit 1; }
  HAVE_BASE=0
  if git rev-parse --verify -q "$BASE^{commit}" >/dev/null 2>&1; then
    rm -rf "$WORK/base" && mkdir -p "$WORK/base"
    git archive "$BASE" include src bench | tar -x -C "$WORK/base" && build "$WORK/base" "$WORK/dl_old" && HAVE_BASE=1
  fi
  [ $HAVE_BASE = 1 ] && echo "base $BASE built" || echo "no git history for $BASE here: this tree only"

  echo "== output hashes (must agree)"
  for v in new old; do
    [ -x "$WORK/dl_$v" ] || continue
    for set in qwen05 bench; do echo "$v $set $("$WORK/dl_$v" --set $set --steps 1 --hash | head -1)"; done
  done

  echo "== read bandwidth"
  for t in 1 2 16; do "$WORK/dl_new" --set qwen05 --layers 1 --steps 1 --threads $t --bw | head -1; done

  # 64 decoder layers (480 MB) and 800 MiB per shape: beyond the host's last-level cache. SMOKE=1: a few
  # seconds, to check the script.
  THREADS="1 2 8 16"
  [ "${SMOKE:-0}" = 1 ] && THREADS=2
  for t in $THREADS; do
    for set in qwen05 bench; do
      [ $set = bench ] && [ $t != 2 ] && [ $t != 16 ] && continue
      args="--set qwen05 --layers 64 --steps 100"
      [ $set = bench ] && args="--set bench --rotate-mib 800 --steps 6"
      [ "${SMOKE:-0}" = 1 ] && args="--set $set --layers 2 --rotate-mib 8 --steps 5"
      for rep in 1 2 3; do
        for v in old new; do
          [ -x "$WORK/dl_$v" ] || continue
          echo "== $v set $set threads $t rep $rep"
          "$WORK/dl_$v" $args --threads $t | tail -6
        done
      done
    done
  done
} 2>&1 | tee "$OUT_DIR/small_layers.log"

# Summary: per variant, set and thread count, the median over the reps of the step time and of each layer's
# us per call.
python3 - "$OUT_DIR/small_layers.log" <<'EOF'
import re, statistics, sys
runs, cur = {}, None
for line in open(sys.argv[1]):
    m = re.match(r"== (\w+) set (\w+) threads (\d+) rep", line)
    if m:
        cur = (m.group(1), m.group(2), int(m.group(3)))
        runs.setdefault(cur, [])
        runs[cur].append({})
        continue
    if cur is None:
        continue
    f = line.split()
    if line.startswith("step:"):
        runs[cur][-1]["step"] = float(f[2])
    elif len(f) >= 7 and re.match(r"[0-9.]+$", f[-4]) and not line.startswith("layer"):
        runs[cur][-1][" ".join(f[:-6])] = float(f[-4])
print("\n== summary: median over reps, us (step, then us per call per layer)")
for key in sorted(runs, key=lambda k: (k[1], k[2], k[0])):
    reps = [r for r in runs[key] if "step" in r]
    if not reps:
        continue
    names = [n for n in reps[0] if n != "step"]
    cols = " ".join(f"{n}={statistics.median(r[n] for r in reps):.1f}" for n in names)
    print(f"{key[0]:3s} {key[1]:6s} T={key[2]:2d} step={statistics.median(r['step'] for r in reps):9.1f}  {cols}")
EOF
