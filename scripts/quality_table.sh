#!/usr/bin/env bash
# docs/QUALITY.md's table: what each bit width costs. Quantizes an fp16 checkpoint with `ark quantize` into every
# scheme of the table (int8 g128; int4 g32 / g128 / per-channel, sym and asym; int3 and int2 g64, sym and asym;
# int3 per-channel, int2 g128 and per-channel),
# then runs `ark perplexity` on the held-out text (exact and int8 compute modes) and `ark bench model` (decode
# tokens/s, ROUNDS rounds taken in turn over all rows so that load changes hit every row alike), and prints the
# table in Markdown. Results already in WORK are reused (delete a file to redo it).
#
#   bash scripts/quality_table.sh FP16_DIR [WORK]    e.g. FP16_DIR = the fp16 model scripts/device_train.sh wrote
#   env: ARK (default build/ark), THREADS (2), CTX (512), TEXT (tests/data/heldout_en.txt), ROUNDS (3)
#
# Perplexity needs about 2 minutes a row at ~600 tokens/s (83 954 tokens at ctx 512).
set -euo pipefail
cd "$(dirname "$0")/.."
FP16=${1:?usage: quality_table.sh FP16_DIR [WORK]}
WORK=${2:-/tmp/ark_quality}
ARK=${ARK:-build/ark}
THREADS=${THREADS:-2}
CTX=${CTX:-512}
TEXT=${TEXT:-tests/data/heldout_en.txt}
ROUNDS=${ROUNDS:-3}
mkdir -p "$WORK"

ROWS=(fp16 int8-g128-sym int4-g32-sym int4-g32-asym int4-g128-sym int4-g128-asym int4-pc-sym int4-pc-asym
  int3-g64-sym int3-g64-asym int2-g64-sym int2-g64-asym
  int3-pc-sym int2-g128-sym int2-pc-sym)  # the last three: where the low bit widths break down
dir_of() { [ "$1" = fp16 ] && echo "$FP16" || echo "$WORK/$1"; }

for r in "${ROWS[@]:1}"; do
  [ -f "$WORK/$r/config.json" ] && continue
  IFS=- read -r b g s <<<"$r"
  group=${g#g}
  [ "$g" = pc ] && group=-1
  "$ARK" quantize --model "$FP16" --out "$WORK/$r" --bits "${b#int}" --group-size "$group" \
    $([ "$s" = asym ] && echo --asym)
done

for r in "${ROWS[@]}"; do
  for mode in exact int8; do
    [ "$r" = fp16 ] && [ "$mode" = int8 ] && continue  # no quantized layer: the mode changes nothing
    out="$WORK/ppl-$r-$mode.json"
    [ -f "$out" ] && continue
    echo "== perplexity $r $mode (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    "$ARK" perplexity --model "$(dir_of "$r")" --file "$TEXT" --ctx "$CTX" --mode "$mode" --threads "$THREADS" \
      --no-progress --json-out "$out" >&2
  done
done

for ((i = 1; i <= ROUNDS; ++i)); do
  for r in "${ROWS[@]}"; do
    out="$WORK/bench-$r-$i.txt"
    [ -f "$out" ] && continue
    echo "== bench model $r round $i (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    { echo "load $(cut -d' ' -f1-3 /proc/loadavg)"; "$ARK" bench model --model "$(dir_of "$r")" --threads "$THREADS" \
      --prompt-tokens 128 --decode-tokens 256 --bandwidth-mib 256; } >"$out"
  done
done

python3 - "$FP16" "$WORK" "$ROUNDS" "${ROWS[@]}" <<'EOF'
import json, pathlib, re, statistics, sys
fp16, work, rounds, rows = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
ppl = lambda r, m: json.loads((work / f"ppl-{r}-{m}.json").read_text()) if (work / f"ppl-{r}-{m}.json").exists() else None
base = ppl("fp16", "exact")["perplexity"]
print("| scheme | safetensors MiB | ppl (exact) | vs fp16 | ppl (int8 activations) | vs fp16 | decode tokens/s (median; min-max) |")
print("|---|---:|---:|---:|---:|---:|---:|")
bw = []
for r in rows:
    e = ppl(r, "exact")
    i = ppl(r, "int8")
    tps = []
    for k in range(1, rounds + 1):
        t = (work / f"bench-{r}-{k}.txt").read_text()
        tps.append(float(re.search(r"decode .*?: ([\d.]+) tokens/s", t).group(1)))
        bw.append(float(re.search(r"bandwidth +([\d.]+) GB/s", t).group(1)))
    mib = sum(x.stat().st_size for x in (fp16 if r == "fp16" else work / r).glob("*.safetensors")) / 2**20
    f = lambda p: f"{p:.2f}"
    d = lambda p: f"{100 * (p / base - 1):+.1f}%"
    q8 = f"| {f(i['perplexity'])} | {d(i['perplexity'])}" if r != "fp16" else "| — |"  # no quantized layer
    print(f"| {r} | {mib:.1f} | {f(e['perplexity'])} | {d(e['perplexity'])} {q8} | "
          f"{statistics.median(tps):.0f} ({min(tps):.0f}-{max(tps):.0f}) |")
print(f"\nread bandwidth measured by the bench runs: {min(bw):.0f}-{max(bw):.0f} GB/s (median {statistics.median(bw):.0f})")
EOF
