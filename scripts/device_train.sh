#!/usr/bin/env bash
# Train ark's default model on the GPU machine in one call, then check that transformers loads the checkpoint as
# it is. (ark's own checks run back on the dev machine: the device host lacks ark's build dependencies.)
# Everything lands under $OUT:
#   $OUT/model/            the fp16 Hugging Face checkpoint (config, model.safetensors, tokenizer, generation config)
#   $OUT/train.log         tokenizer/model sizes, train / validation / held-out loss as training goes
#   $OUT/check.log         transformers loads the directory as it is; a greedy continuation
#
# Needs the prepared text carried along (made here by
#   python3 tools/train_default_model.py prepare --out .device_train/data --heldout-out tests/data/heldout_en.txt),
# so run it with carry [".device_train"]:   bash scripts/device_train.sh
# TRAIN_ARGS adds flags to the train step (e.g. TRAIN_ARGS="--compile"); DEVICE=cpu PY=... TRAIN_ARGS="--tiny
# --max-steps 5" checks the script on a CPU. Expected on the H100: about 6 minutes in all.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/device_train}
DATA=${DATA:-.device_train/data}
PY=${PY:-python3}
mkdir -p "$OUT"
[ -d "$DATA/train" ] || { echo "error: $DATA/train missing: carry .device_train (see the header)"; exit 2; }

{
  date -u
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  nproc
} | tee "$OUT/machine.txt"

start=$(date +%s)
# The train step stops itself after 330 s of training (keeping the best checkpoint so far) to stay inside one call.
$PY tools/train_default_model.py train --data "$DATA" --out "$OUT/model" --device "${DEVICE:-cuda}" --eval-every 100 \
  --time-limit 330 ${TRAIN_ARGS:-} 2>&1 | tee "$OUT/train.log"
echo "train step: $(($(date +%s) - start)) s" | tee -a "$OUT/train.log"

$PY - "$OUT/model" <<'EOF' 2>&1 | tee "$OUT/check.log"
import sys, torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
d = sys.argv[1]
tok = AutoTokenizer.from_pretrained(d)
model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
print("transformers", transformers.__version__, type(tok).__name__, type(model).__name__,
      sum(p.numel() for p in model.parameters()), "parameters")
torch.manual_seed(0)
ids = tok("The jury said that", return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=48, do_sample=False)
print("greedy:", repr(tok.decode(out[0])))
EOF

du -sh "$OUT/model" | tee -a "$OUT/check.log"
echo "total: $(($(date +%s) - start)) s"
