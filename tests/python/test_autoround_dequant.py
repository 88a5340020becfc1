"""`ark dequant` on checkpoints packed here with numpy, written from the layout rules (docs/FORMATS.md) and the
quantization_config rules, sharing no code with ark: which layers it decodes, and the exact fp32 weights.

The real-exporter check (AutoRound itself) needs torch >= 2 and lives in scripts/autoround_conformance.py."""

import json
import os
import random
import subprocess
import zlib

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

SEED = int(os.environ.get("ARK_TEST_SEED", random.randrange(1 << 31)))
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # nibble p of a word holds column AWQ_ORDER[p] of its group of 8


@pytest.fixture
def dequant_bin(request):
    """ARK_BIN (a build folder of one's own) when set, else the suite's build/ark."""
    return os.environ.get("ARK_BIN") or request.getfixturevalue("ark_bin")


def setup_module(module):
    print(f"test_autoround_dequant: seed {SEED} (replay with ARK_TEST_SEED={SEED})")


def pack_stream(values, bits):
    """Packs non-negative ints (last axis) as one little-endian bit stream, value i at bits [i*bits, (i+1)*bits),
    into 32-bit words. This is the GPTQ rule for every width (for 3 bits, 32 values span 3 words)."""
    values = np.asarray(values)
    n_words = values.shape[-1] * bits // 32
    out = np.zeros(values.shape[:-1] + (n_words,), dtype=np.uint32)
    for idx in np.ndindex(values.shape[:-1]):
        acc = 0
        for i, v in enumerate(values[idx]):
            acc |= int(v) << (i * bits)
        for w in range(n_words):
            out[idx + (w,)] = (acc >> (32 * w)) & 0xFFFFFFFF
    return out.view(np.int32)


def pack_awq(values):
    """[rows, N] 4-bit values -> [rows, N/8] words in AWQ's interleaved column order."""
    rows, n = values.shape
    out = np.zeros((rows, n // 8), dtype=np.uint32)
    for j in range(n // 8):
        for p in range(8):
            out[:, j] |= values[:, 8 * j + AWQ_ORDER[p]].astype(np.uint32) << (4 * p)
    return out.view(np.int32)


def make_layer(rng, layout, bits, group_size, sym, k, n):
    """Random codes, zeros and fp16 scales of one layer; returns (tensors, expected fp32 weight [N, K])."""
    g = k if group_size == -1 else group_size
    groups = k // g
    q = rng.integers(0, 2**bits, size=(k, n))
    if sym:
        z = np.full((groups, n), 2 ** (bits - 1))
        scales = rng.uniform(0.002, 0.05, size=(groups, n)) * rng.choice([-1.0, 1.0], size=(groups, n))
    else:
        z = rng.integers(1, 2**bits, size=(groups, n))  # >= 1, so v1's "minus one" never borrows
        scales = rng.uniform(0.002, 0.05, size=(groups, n))
    scales16 = scales.astype(np.float16)
    zk = np.repeat(z, g, axis=0)
    sk = np.repeat(scales16.astype(np.float32), g, axis=0)
    expected = (sk * (q - zk).astype(np.float32)).astype(np.float32).T.copy()
    if layout == "awq":
        tensors = {"qweight": pack_awq(q), "qzeros": pack_awq(z), "scales": scales16}
    else:
        stored = z - 1 if layout == "v1" else z
        tensors = {
            "qweight": pack_stream(q.T, bits).T.copy(),  # [K*b/32, N]: packed along K
            "qzeros": pack_stream(stored, bits),  # [G, N*b/32]: packed along N
            "scales": scales16,
        }
    return tensors, expected


def write_checkpoint(path, quantization_config, layers, plain=()):
    """layers: {name: tensors}; plain: names stored as an unquantized fp16 weight."""
    os.makedirs(path, exist_ok=True)
    config = {"architectures": ["LlamaForCausalLM"], "quantization_config": quantization_config}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    flat = {}
    for name, tensors in layers.items():
        for key, t in tensors.items():
            flat[f"{name}.{key}"] = np.ascontiguousarray(t)
    rng = np.random.default_rng(SEED ^ 0x5EED)
    for name in plain:
        flat[f"{name}.weight"] = rng.standard_normal((64, 128)).astype(np.float16)
    flat["model.embed_tokens.weight"] = rng.standard_normal((100, 128)).astype(np.float16)
    save_file(flat, os.path.join(path, "model.safetensors"))


def run_dequant(ark, ckpt, out):
    return subprocess.run([ark, "dequant", "--model", str(ckpt), "--out", str(out)], capture_output=True, text=True)


CASES = [
    # (name, quantization_config, {layer: (layout, bits, group_size, sym)}, layers stored unquantized)
    (
        "auto_round_auto_gptq_sym_w4",
        {"quant_method": "auto-round", "packing_format": "auto_round:auto_gptq", "bits": 4, "group_size": 32,
         "sym": True, "data_type": "int", "block_name_to_quantize": "model.layers"},
        {"model.layers.0.self_attn.q_proj": ("v1", 4, 32, True), "model.layers.0.mlp.up_proj": ("v1", 4, 32, True)},
        ["lm_head"],
    ),
    (
        "auto_round_asym_w3_mixed",
        {"quant_method": "auto-round", "packing_format": "auto_round", "bits": 3, "group_size": 64, "sym": False,
         "block_name_to_quantize": ["model.layers"],
         "extra_config": {"lm_head": {"bits": 8, "group_size": -1, "sym": False},
                          ".*down_proj": {"bits": 2, "group_size": 32},
                          "model.layers.0.self_attn.k_proj": {"bits": 16}}},
        {"model.layers.0.self_attn.q_proj": ("v2", 3, 64, False), "model.layers.0.mlp.down_proj": ("v2", 2, 32, False),
         "lm_head": ("v2", 8, -1, False)},
        ["model.layers.0.self_attn.k_proj"],
    ),
    (
        "auto_round_auto_awq_w4",
        {"quant_method": "auto-round", "packing_format": "auto_round:auto_awq", "bits": 4, "group_size": 32,
         "sym": False},
        {"model.layers.1.mlp.gate_proj": ("awq", 4, 32, False), "model.layers.1.self_attn.o_proj": ("awq", 4, 32, False)},
        ["lm_head"],
    ),
    (
        "plain_awq",
        {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm",
         "modules_to_not_convert": ["o_proj"]},
        {"model.layers.0.mlp.gate_proj": ("awq", 4, 128, False)},
        ["model.layers.0.self_attn.o_proj", "lm_head"],
    ),
    (
        "plain_gptq_v1_asym_w8",
        {"quant_method": "gptq", "bits": 8, "group_size": 64, "sym": False, "desc_act": False},
        {"model.layers.0.mlp.up_proj": ("v1", 8, 64, False)},
        [],
    ),
    (
        "gptq_v2_dynamic",
        {"quant_method": "gptq", "checkpoint_format": "gptq_v2", "bits": 4, "group_size": 128, "sym": True,
         "dynamic": {"-:.*v_proj": {}, "+:.*mlp.*": {"bits": 2, "group_size": 32}}},
        {"model.layers.0.mlp.up_proj": ("v2", 2, 32, True), "model.layers.0.self_attn.q_proj": ("v2", 4, 128, True)},
        ["model.layers.0.self_attn.v_proj"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_dequant_matches_hand_packed(dequant_bin, tmp_path, case):
    name, qcfg, layer_specs, plain = case
    rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
    k, n = 128, 64
    layers, expected = {}, {}
    for layer, (layout, bits, gs, sym) in layer_specs.items():
        layers[layer], expected[layer] = make_layer(rng, layout, bits, gs, sym, k, n)
    write_checkpoint(tmp_path / "ckpt", qcfg, layers, plain)
    out = tmp_path / "dequant.safetensors"
    r = run_dequant(dequant_bin, tmp_path / "ckpt", out)
    assert r.returncode == 0, r.stderr
    got = {key[: -len(".weight")]: v for key, v in load_file(str(out)).items()}
    assert sorted(got) == sorted(expected)
    for layer, want in expected.items():
        assert got[layer].dtype == np.float32 and got[layer].shape == (n, k)
        mism = np.count_nonzero(got[layer].view(np.uint32) != want.view(np.uint32))
        assert mism == 0, f"{layer}: {mism} of {want.size} weights differ"
    # No layer the config quantizes is stored unquantized in these checkpoints.
    assert "0 of them claimed by the config" in r.stdout, r.stdout


def test_qweight_of_a_layer_the_config_leaves_unquantized(dequant_bin, tmp_path):
    rng = np.random.default_rng(SEED)
    tensors, _ = make_layer(rng, "awq", 4, 32, False, 128, 64)
    write_checkpoint(tmp_path / "ckpt", {"quant_method": "awq", "bits": 4, "group_size": 32,
                                          "modules_to_not_convert": ["q_proj"]},
                     {"model.layers.0.self_attn.q_proj": tensors})
    r = run_dequant(dequant_bin, tmp_path / "ckpt", tmp_path / "out.safetensors")
    assert r.returncode != 0
    assert "model.layers.0.self_attn.q_proj.qweight' is quantized but quantization_config leaves layer" in r.stderr
    assert not (tmp_path / "out.safetensors").exists()


def test_config_schemes_that_do_not_fit_the_tensors(dequant_bin, tmp_path):
    rng = np.random.default_rng(SEED)
    tensors, _ = make_layer(rng, "v2", 4, 32, False, 128, 64)
    # The config says group_size 64, the tensors hold 4 groups of 32: the scales' shape gives it away.
    write_checkpoint(tmp_path / "ckpt", {"quant_method": "auto-round", "packing_format": "auto_round", "bits": 4,
                                          "group_size": 64, "sym": False}, {"model.layers.0.mlp.up_proj": tensors})
    r = run_dequant(dequant_bin, tmp_path / "ckpt", tmp_path / "out.safetensors")
    assert r.returncode != 0
    assert "layer 'model.layers.0.mlp.up_proj' (4-bit, group_size 64, asym, gptq-v2)" in r.stderr, r.stderr


def test_unsupported_config_is_named(dequant_bin, tmp_path):
    rng = np.random.default_rng(SEED)
    tensors, _ = make_layer(rng, "v1", 4, 32, True, 128, 64)
    write_checkpoint(tmp_path / "ckpt", {"quant_method": "auto-round", "packing_format": "auto_round:auto_gptq",
                                          "bits": 4, "group_size": 32, "sym": True, "data_type": "mx_fp"},
                     {"model.layers.0.mlp.up_proj": tensors})
    r = run_dequant(dequant_bin, tmp_path / "ckpt", tmp_path / "out.safetensors")
    assert r.returncode != 0
    assert "not supported yet: data_type 'mx_fp'" in r.stderr
    assert "config.json" in r.stderr


def test_missing_tensor_is_named(dequant_bin, tmp_path):
    rng = np.random.default_rng(SEED)
    tensors, _ = make_layer(rng, "v1", 4, 32, True, 128, 64)
    del tensors["qzeros"]
    write_checkpoint(tmp_path / "ckpt", {"quant_method": "gptq", "bits": 4, "group_size": 32},
                     {"model.layers.0.mlp.up_proj": tensors})
    r = run_dequant(dequant_bin, tmp_path / "ckpt", tmp_path / "out.safetensors")
    assert r.returncode != 0
    assert "model.layers.0.mlp.up_proj.qzeros" in r.stderr
