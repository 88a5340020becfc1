"""ark's safetensors reader and writer against the reference implementation (PyPI `safetensors`).

Files written by the reference library must read in ark with the same names, dtypes, shapes and bytes (compared by
FNV-1a 64 checksums that `ark tensors` prints), and files written by ark (`ark tensors --rewrite`) must load in the
reference library unchanged.
"""

import json
import os
import pathlib
import random
import struct
import subprocess

import numpy as np
import pytest
import safetensors
from safetensors.numpy import load_file, save_file

SEED = int(os.environ.get("ARK_TEST_SEED", random.SystemRandom().randrange(2**32)))
print(f"[safetensors interop] ARK_TEST_SEED={SEED}")


@pytest.fixture(scope="module")
def ark(request):
    # ARK_BIN lets a developer point at their own build; by default the shared fixture's build/ark is used.
    return os.environ.get("ARK_BIN") or request.getfixturevalue("ark_bin")


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def run(ark, *args):
    return subprocess.run([ark, "tensors", *args], capture_output=True, text=True, timeout=120)


def listing(ark, path):
    r = run(ark, str(path), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


NUMPY_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
# numpy has no bf16 or fp8; the reference library's raw serializer takes them as bytes under torch's names.
RAW_DTYPES = {"BF16": ("bfloat16", 2), "F8_E4M3": ("float8_e4m3fn", 1), "F8_E5M2": ("float8_e5m2", 1)}
SHAPES = [(), (1,), (5,), (0,), (3, 4), (2, 0, 3), (2, 3, 5)]


def random_array(rng, dtype, shape):
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.floating):
        return (rng.standard_normal(size=shape) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def expected_entries(arrays, raws):
    """name -> (dtype, shape, checksum) computed from the source data, not from any file."""
    out = {}
    for name, a in arrays.items():
        dt = next(k for k, v in NUMPY_DTYPES.items() if np.dtype(v) == a.dtype)
        out[name] = (dt, list(a.shape), fnv1a64(np.ascontiguousarray(a).tobytes()))
    for name, (dt, shape, data) in raws.items():
        out[name] = (dt, list(shape), fnv1a64(data))
    return out


def make_all_dtypes(rng):
    arrays, raws = {}, {}
    for dt, np_dt in NUMPY_DTYPES.items():
        for i, shape in enumerate(SHAPES):
            arrays[f"{dt.lower()}.{i}"] = random_array(rng, np_dt, shape)
    for dt, (_, size) in RAW_DTYPES.items():
        for i, shape in enumerate(SHAPES):
            n = int(np.prod(shape, dtype=np.int64)) * size
            raws[f"{dt.lower()}.{i}"] = (dt, shape, rng.integers(0, 256, size=n, dtype=np.uint8).tobytes())
    return arrays, raws


def write_reference(path, arrays, raws, metadata=None):
    tensors = {name: {"dtype": a.dtype.name if a.dtype != np.bool_ else "bool", "shape": list(a.shape),
                      "data": np.ascontiguousarray(a).tobytes()} for name, a in arrays.items()}
    for name, (dt, shape, data) in raws.items():
        tensors[name] = {"dtype": RAW_DTYPES[dt][0], "shape": list(shape), "data": data}
    safetensors.serialize_file(tensors, str(path), metadata=metadata)


def assert_listing_matches(got, expected):
    by_name = {t["name"]: (t["dtype"], t["shape"], t["fnv1a64"]) for t in got["tensors"]}
    assert by_name == expected
    assert [t["name"] for t in got["tensors"]] == sorted(expected)


def test_fnv1a64_known_answers():
    # From the FNV reference test vectors.
    assert fnv1a64(b"") == "cbf29ce484222325"
    assert fnv1a64(b"a") == "af63dc4c8601ec8c"
    assert fnv1a64(b"foobar") == "85944171f73967e8"


def test_reads_reference_files_of_every_dtype(ark, rng, tmp_path):
    arrays, raws = make_all_dtypes(rng)
    path = tmp_path / "all.safetensors"
    write_reference(path, arrays, raws, metadata={"format": "np", "note": "ünïcode \"quoted\""})
    got = listing(ark, path)
    assert_listing_matches(got, expected_entries(arrays, raws))
    assert got["shards"][0]["metadata"] == {"format": "np", "note": "ünïcode \"quoted\""}


def test_reads_save_file_output_and_prints_a_table(ark, rng, tmp_path):
    arrays = {"model.embed_tokens.weight": random_array(rng, np.float16, (7, 3)),
              "model.layers.0.mlp.qweight": random_array(rng, np.int32, (4, 6)),
              "scalar": random_array(rng, np.float64, ())}
    path = tmp_path / "model.safetensors"
    save_file(arrays, str(path), metadata={"format": "pt"})
    assert_listing_matches(listing(ark, path), expected_entries(arrays, {}))
    r = run(ark, str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "metadata format = pt" in r.stdout
    for name, (dt, shape, checksum) in expected_entries(arrays, {}).items():
        line = next(l for l in r.stdout.splitlines() if l.startswith(name + " "))
        assert line.split()[1] == dt and line.endswith(checksum), line


def test_ark_writer_output_loads_in_reference_library(ark, rng, tmp_path):
    arrays, raws = make_all_dtypes(rng)
    src, out = tmp_path / "src.safetensors", tmp_path / "out.safetensors"
    write_reference(src, arrays, raws, metadata={"format": "pt", "k": "v"})
    r = run(ark, str(src), "--rewrite", str(out))
    assert r.returncode == 0, r.stderr
    with safetensors.safe_open(str(out), "np") as f:
        assert sorted(f.keys()) == sorted([*arrays, *raws])
        assert f.metadata() == {"format": "pt", "k": "v"}
        for name, a in arrays.items():
            got = f.get_tensor(name)
            assert got.dtype == a.dtype and got.shape == a.shape
            assert got.tobytes() == a.tobytes(), name
    # numpy has no bf16/fp8 arrays: check those through the reference library's raw deserializer.
    raw = dict(safetensors.deserialize(out.read_bytes()))
    for name, (dt, shape, data) in raws.items():
        assert raw[name]["dtype"] == dt
        assert list(raw[name]["shape"]) == list(shape)
        assert bytes(raw[name]["data"]) == data, name
    # Both writers lay the data out by decreasing element size and pad the header to 8 bytes the same way, so the
    # headers say the same and the data sections are identical; this pins ark's layout to the reference library's
    # (0.4.5). Whole files are not compared: the reference library orders __metadata__ keys by hash, per process.
    a, b = split_file(out.read_bytes()), split_file(src.read_bytes())
    assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2]


def split_file(data):
    """(header length, header as parsed JSON, data section)."""
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8 : 8 + n]), data[8 + n :]


def test_sharded_checkpoint_with_index(ark, rng, tmp_path):
    arrays = {f"model.layers.{i}.weight": random_array(rng, np.float32, (i + 1, 4)) for i in range(5)}
    arrays["lm_head.weight"] = random_array(rng, np.float16, (3, 4))
    names = sorted(arrays)
    shards = {"model-00001-of-00002.safetensors": names[:3], "model-00002-of-00002.safetensors": names[3:]}
    weight_map = {}
    for shard, members in shards.items():
        save_file({n: arrays[n] for n in members}, str(tmp_path / shard), metadata={"format": "pt"})
        weight_map.update({n: shard for n in members})
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    got = listing(ark, tmp_path)
    assert_listing_matches(got, expected_entries(arrays, {}))
    assert len(got["shards"]) == 2
    # Merge the shards into one file through ark's writer; the reference library reads it back.
    out = tmp_path / "merged" / "model.safetensors"
    out.parent.mkdir()
    r = run(ark, str(tmp_path), "--rewrite", str(out))
    assert r.returncode == 0, r.stderr
    loaded = load_file(str(out))
    assert sorted(loaded) == names
    for n in names:
        np.testing.assert_array_equal(loaded[n], arrays[n])


def test_bad_files_exit_1_with_a_clear_error(ark, rng, tmp_path):
    good = tmp_path / "good.safetensors"
    save_file({"w": random_array(rng, np.float32, (8, 8))}, str(good))
    data = good.read_bytes()

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[:-7])
    r = run(ark, str(truncated))
    assert r.returncode == 1
    assert str(truncated) in r.stderr and "tensor 'w'" in r.stderr and "beyond the data section" in r.stderr

    # Overlapping tensors: the reference library refuses the file too.
    header = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
    overlap = tmp_path / "overlap.safetensors"
    overlap.write_bytes(struct.pack("<Q", len(header)) + header + bytes(range(1, 13)))
    with pytest.raises(Exception):
        load_file(str(overlap))
    r = run(ark, str(overlap))
    assert r.returncode == 1 and "overlaps" in r.stderr and "'a'" in r.stderr and "'b'" in r.stderr

    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    r = run(ark, str(huge))
    assert r.returncode == 1 and "header length" in r.stderr

    r = run(ark, str(tmp_path / "missing"))
    assert r.returncode == 1 and "no such file or directory" in r.stderr
    assert r.stdout == ""
