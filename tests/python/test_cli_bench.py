"""`ark bench linear`: a tiny run writes a complete CSV row per case; bad options are clear errors, not crashes.

Figures are never checked (benchmarks do not pass or fail on time); only the shape of the output is.
"""
import csv
import subprocess


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


def test_bad_options_are_clear_errors(ark_bin):
    for args, expected in [
        (["--shapes", "4096by4096"], "--shapes: '4096by4096'"),
        (["--m", "0"], "--m: 0 must be positive"),
        (["--schemes", "int5-g128"], "bits must be 2, 3, 4 or 8"),
        (["--schemes", "int4-g128-skew"], "must be sym or asym"),
        (["--modes", "fast"], "fast"),
    ]:
        r = run(ark_bin, *args, "--no-baseline")
        assert r.returncode != 0, args
        assert expected in r.stderr, (args, r.stderr)
