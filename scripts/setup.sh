#!/usr/bin/env bash
# Installs everything ark needs on a fresh Debian 12 machine (as root), then configures and builds it.
# Idempotent: packages already present are not fetched again; the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake git pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev
  libpcre2-dev libutf8proc-dev  # the tokenizer: Unicode-class regexes, NFC
  python3 python3-venv python3-pip
  libdnnl-dev python3-matplotlib
  pybind11-dev python3-dev python3-torch  # the Python package: ark._C and its tests (torch 1.13)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python side (tests that check ark against the reference Python libraries): a venv over Debian's python3, so
# Debian's python3-* packages stay visible, with exact pins so pip never pulls a large build by surprise.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r python/requirements-test.txt
# transformers for the ark.hf tests, in a folder of its own (its tokenizers pin conflicts with the one above).
[ -f .venv/hf-side/.done ] || { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade \
  --target .venv/hf-side -r python/requirements-hf.txt && touch .venv/hf-side/.done; }

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
# `import ark` from the venv: python/ on its path, and ark finds its extension ark._C in build/python/ark (a
# rebuild needs no reinstall). `pip install --no-build-isolation .` is the alternative for other environments.
purelib=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$PWD/python" >"$purelib/ark-source.pth"
