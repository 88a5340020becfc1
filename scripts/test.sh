#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs every test: the C++ suites through ctest and the Python
# tests through pytest. Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
(cd build && ctest --output-on-failure -j"$(nproc)")
.venv/bin/python -m pytest -q tests/python
