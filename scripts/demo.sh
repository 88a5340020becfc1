#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs ark's main job on the default that ships with the repository:
# text from the small int4 model in models/ark-brown-14m-int4 (`ark generate` without --model; its README says
# what it is), then `ark demo`, which checks a quantized layer's kernels against fp64 and prints their speed.
# Arguments go to `ark demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./build/ark generate --prompt "The jury said" --max-tokens 60 --temperature 0.8 --seed 3
echo
./build/ark demo "$@"
