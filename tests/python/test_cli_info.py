import os
import subprocess


def run(ark_bin, *args, env=None):
    return subprocess.run([ark_bin, *args], capture_output=True, text=True, env=env, timeout=60)


def test_info_reports_version_features_and_isa(ark_bin):
    r = run(ark_bin, "info")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ark ")
    assert "avx512f" in r.stdout and "isa: detected" in r.stdout


def test_isa_cap_is_applied(ark_bin):
    r = run(ark_bin, "info", env={**os.environ, "ARK_ISA": "avx2"})
    assert r.returncode == 0, r.stderr
    assert "active avx2" in r.stdout or "active ref" in r.stdout


def test_unknown_isa_cap_is_a_clear_error(ark_bin):
    r = run(ark_bin, "info", env={**os.environ, "ARK_ISA": "sse9"})
    assert r.returncode != 0
    assert "ARK_ISA='sse9'" in r.stderr and "avx512" in r.stderr


def test_info_reports_kernels_and_mode_per_compute_mode(ark_bin):
    r = run(ark_bin, "info")
    assert r.returncode == 0, r.stderr
    lines = [l.strip() for l in r.stdout.splitlines()]
    for mode in ("auto", "exact", "int8"):
        line = next(l for l in lines if l.startswith(f"{mode}: QuantLinear"))
        assert "M < 128:" in line and "M >= 128:" in line
    exact = next(l for l in lines if l.startswith("exact: QuantLinear"))
    assert "mode exact" in exact


def test_isa_cap_changes_the_kernels_chosen(ark_bin):
    r = run(ark_bin, "info", env={**os.environ, "ARK_ISA": "ref"})
    assert r.returncode == 0, r.stderr
    auto = next(l.strip() for l in r.stdout.splitlines() if l.strip().startswith("auto: QuantLinear"))
    assert "isa ref" in auto and "M < 128: ref" in auto
