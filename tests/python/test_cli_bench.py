"""`ark bench linear`: a tiny run writes a complete CSV row per case; bad options are clear errors, not crashes.
`ark bench model` says when real-time scheduling throttles its threads.

Figures are never checked (benchmarks do not pass or fail on time); only the shape of the output is.
"""
import csv
import pathlib
import shutil
import subprocess

import pytest

MODEL = pathlib.Path(__file__).resolve().parents[2] / "models" / "ark-brown-14m-int4"


def run(ark_bin, *args):
    return subprocess.run([ark_bin, "bench", "linear", *args], capture_output=True, text=True, timeout=120)


def test_tiny_run_writes_csv(ark_bin, tmp_path):
    out = tmp_path / "b.csv"
    r = run(ark_bin, "--shapes", "256x160", "--m", "1,130", "--schemes", "int4-g64-sym,int3-g128",
            "--modes", "exact,int8", "--threads", "1", "--min-time", "0.01", "--rotate-mib", "1", "--csv", str(out))
    assert r.returncode == 0, r.stderr
    assert "memory read bandwidth" in r.stdout
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * 2 * 2  # M x schemes x modes
    for row in rows:
        assert row["in_features"] == "256" and row["out_features"] == "160"
        assert float(row["time_us"]) > 0 and float(row["gflops"]) > 0 and float(row["bandwidth_gbs"]) > 0
        assert row["kernel"] not in ("", "?")
    # M >= the default kernel_switch_threshold (128) runs a large-M kernel.
    assert any(r["m"] == "130" and "gemm" in r["kernel"] for r in rows)


def test_threshold_moves_the_kernel_switch(ark_bin, tmp_path):
    # --threshold is the layers' kernel_switch_threshold: at 4, M = 4 already runs the GEMM and M = 3 the
    # decode kernel, in both modes.
    out = tmp_path / "t.csv"
    r = run(ark_bin, "--shapes", "256x160", "--m", "3,4", "--schemes", "int4-g128-sym", "--modes", "exact,int8",
            "--threads", "1", "--min-time", "0.01", "--rotate-mib", "1", "--no-baseline", "--threshold", "4",
            "--csv", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4
    for row in rows:
        assert ("gemm" in row["kernel"]) == (row["m"] == "4"), row


def test_bad_options_are_clear_errors(ark_bin):
    for args, expected in [
        (["--threshold", "0"], "--threshold must be >= 1, got 0"),
        (["--shapes", "4096by4096"], "--shapes: '4096by4096'"),
        (["--m", "0"], "--m: 0 must be positive"),
        (["--schemes", "int5-g128"], "bits must be 2, 3, 4 or 8"),
        (["--schemes", "int4-g128-skew"], "must be sym or asym"),
        (["--modes", "fast"], "fast"),
    ]:
        r = run(ark_bin, *args, "--no-baseline")
        assert r.returncode != 0, args
        assert expected in r.stderr, (args, r.stderr)


def test_model_notes_realtime_throttling(ark_bin):
    """Under chrt -f Linux idles real-time threads (sched_rt_runtime_us of every sched_rt_period_us): the bench
    says so and by how much, and says nothing under the normal policy."""
    args = [ark_bin, "bench", "model", "--model", str(MODEL), "--prompt-tokens", "16", "--decode-tokens", "4",
            "--bandwidth-mib", "32", "--repeats", "1"]
    plain = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert "decode at" in plain.stdout and "real-time policy" not in plain.stdout
    chrt = shutil.which("chrt")
    if chrt is None:
        pytest.skip("no chrt on this machine")
    rt = subprocess.run([chrt, "-f", "1", *args], capture_output=True, text=True, timeout=120)
    if rt.returncode != 0 and "chrt" in rt.stderr:
        pytest.skip("chrt -f is not permitted here: " + rt.stderr.strip())
    assert rt.returncode == 0, rt.stderr
    runtime = int(pathlib.Path("/proc/sys/kernel/sched_rt_runtime_us").read_text())
    period = int(pathlib.Path("/proc/sys/kernel/sched_rt_period_us").read_text())
    if 0 <= runtime < period:
        assert f"idled {100 * (1 - runtime / period):.0f}% of every second" in rt.stdout, rt.stdout
    else:
        assert "real-time policy" not in rt.stdout
