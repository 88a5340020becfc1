"""Runs test_hf_loading.py against transformers installed in a folder of its own (.venv/hf-side, or
$ARK_HF_SIDE), in a subprocess, so its tokenizers (< 0.22) never meets the tokenizer parity test's 0.22.1 in
one process. That is how CI's venv (Debian's torch 1.13) checks the transformers loader: transformers 4.49.0,
the last that runs on torch 1.13, pins tokenizers < 0.22 (python/requirements-hf.txt)."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SIDE = pathlib.Path(os.environ.get("ARK_HF_SIDE", REPO / ".venv" / "hf-side"))


def test_hf_loading_with_transformers_from_its_own_folder():
    if importlib.util.find_spec("transformers") is not None:
        pytest.skip("transformers is importable here: test_hf_loading.py runs directly in this process")
    if not (SIDE / "transformers").is_dir():
        pytest.skip(f"{SIDE} holds no transformers: bash scripts/setup.sh installs it (python/requirements-hf.txt)")
    path = [str(SIDE), str(REPO / "python"), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in path if p))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-s", "-p", "no:cacheprovider",
                        str(REPO / "tests" / "python" / "test_hf_loading.py")],
                       env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    print(r.stdout[-4000:])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "max |ark.hf - dequantized transformers|" in r.stdout, "no case ran"
