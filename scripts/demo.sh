#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs ark's main job on the default that ships with the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./build/ark demo "$@"
