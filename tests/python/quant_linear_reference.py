"""Helpers for the QuantLinear tests: the run's seed, an independent torch decoder of the on-disk layouts
(written from docs/FORMATS.md, sharing no code with ark), real checkpoint tensors from ark's RTN quantizer, and
the documented error bounds of the compute modes.
"""

import os
import random

import pytest
import torch

AWQ_NIBBLE_OF_COLUMN = [0, 4, 1, 5, 2, 6, 3, 7]  # column c of an 8-column word sits in nibble [..][c]

LAYOUTS = {
    "auto_round:auto_gptq": "gptq-v1",
    "auto_round:gptq": "gptq-v1",
    "gptq": "gptq-v1",
    "auto_round": "gptq-v2",
    "auto_round:gptqmodel": "gptq-v2",
    "auto_round:auto_awq": "awq",
    "awq": "awq",
}


def run_seed():
    """One seed per pytest process: ARK_TEST_SEED if set, else fresh (report_seed prints it)."""
    if not hasattr(run_seed, "value"):
        env = os.environ.get("ARK_TEST_SEED")
        run_seed.value = int(env) if env else random.SystemRandom().randrange(1 << 31)
    return run_seed.value


@pytest.fixture(autouse=True)
def report_seed():
    """Autouse in every module that imports it: each test's captured output (shown on failure) names the seed."""
    print(f"quant_linear python tests: seed {run_seed()} (replay with ARK_TEST_SEED={run_seed()})")
    yield


def generator(case_id):
    """A torch generator per test case, from the run seed and a stable case id."""
    g = torch.Generator()
    g.manual_seed((run_seed() * 1000003 + case_id) % (1 << 62))
    return g


def case_id(*parts):
    """A stable integer from test parameters (Python's hash() of str is salted per process)."""
    h = 0
    for ch in repr(parts):
        h = (h * 131 + ord(ch)) % (1 << 61)
    return h


# --- the layouts, decoded by hand ---------------------------------------------------------------------------


def _stream_values(words, count, bits):
    """Values [0, count) of the little-endian bit streams running down dim 0 of `words` (int32 [R, C]):
    value i is stream bits [i*b, (i+1)*b), stream bit j is bit j % 32 of word j // 32. Returns int64 [count, C]."""
    u = words.to(torch.int64) & 0xFFFFFFFF
    i = torch.arange(count, dtype=torch.int64)
    first = (i * bits) // 32
    shift = (i * bits) % 32
    lo = u[first] >> shift[:, None]
    straddle = shift + bits > 32
    nxt = torch.clamp(first + 1, max=u.shape[0] - 1)
    hi = (u[nxt] << (32 - shift)[:, None]) * straddle[:, None]
    return (lo | hi) & ((1 << bits) - 1)


def decode_reference(tensors, bits, group_size, packing_format, in_features, out_features):
    """fp64 dense weight [N, K] from on-disk tensors, by docs/FORMATS.md."""
    layout = LAYOUTS[packing_format]
    K, N = in_features, out_features
    g = K if group_size == -1 else group_size
    G = (K + g - 1) // g
    scales = tensors["scales"].to(torch.float64)  # [G, N]
    if layout == "awq":
        qw = tensors["qweight"].to(torch.int64) & 0xFFFFFFFF  # [K, N/8]
        qz = tensors["qzeros"].to(torch.int64) & 0xFFFFFFFF  # [G, N/8]
        n = torch.arange(N)
        shift = torch.tensor([4 * AWQ_NIBBLE_OF_COLUMN[c % 8] for c in range(N)], dtype=torch.int64)
        codes = ((qw[:, n // 8] >> shift) & 15).T  # [N, K]
        zeros = ((qz[:, n // 8] >> shift) & 15).T  # [N, G]
        grp = torch.arange(K) // g
    else:
        codes = _stream_values(tensors["qweight"], K, bits).T  # [N, K]
        zeros = _stream_values(tensors["qzeros"].T.contiguous(), N, bits)  # [N, G]
        if layout == "gptq-v1":
            zeros = zeros + 1
        grp = tensors["g_idx"].to(torch.int64) if "g_idx" in tensors else torch.arange(K) // g
    assert zeros.shape == (N, G)
    s = scales.T[:, grp]  # [N, K]
    z = zeros[:, grp].to(torch.float64)
    return s * (codes.to(torch.float64) - z)


# --- real checkpoints ---------------------------------------------------------------------------------------


def make_checkpoint(ark, gen, bits, group_size, sym, packing_format, K, N, act_order=False, bias=False):
    """On-disk tensors of one layer, quantized by ark's RTN quantizer from random weights (never zeros or
    all-equal). Scales are fp16, as AutoRound writes them; the bias too."""
    w = torch.randn(N, K, generator=gen, dtype=torch.float32) * 0.05
    # Shift some rows so asymmetric groups see lopsided ranges, and the sym scale signs vary.
    w[: N // 3] += 0.02
    perm = torch.randperm(K, generator=gen).to(torch.int32) if act_order else None
    t = ark.quantize_weight(w, bits, group_size, sym, packing_format, act_order_perm=perm)
    if bias:
        t["bias"] = (torch.randn(N, generator=gen) * 0.1).to(torch.float16)
    return t


def random_input(gen, shape, dtype):
    return (torch.randn(*shape, generator=gen, dtype=torch.float32) * 2.0).to(dtype)


# --- error bounds -------------------------------------------------------------------------------------------


def error_bound(x, w, group_size, g_idx, int8, bf16_operands, out_dtype, bias=None):
    """Per-output bound on |y - y_exact| (fp64 [M, N]) for the compute modes of docs/KERNELS.md:
    exact: (L + G + 4) u sum|x w| (+ 2^-8 relative per product when the kernel rounds operands to bf16);
    int8:  sum_k |w_k| (d_g / 2 + (L + G + 8) u (|x_k| + d_g)), d_g = max|x| / 127 over k's group;
    plus the rounding of the output (bias included) to its dtype. x fp64 [M, K], w fp64 [N, K]."""
    K = x.shape[1]
    g = K if group_size == -1 else group_size
    grp = g_idx.to(torch.int64) if g_idx is not None else torch.arange(K) // g
    G = int(grp.max()) + 1
    L = int(torch.bincount(grp).max())
    u = 2.0**-24
    ax, aw = x.abs(), w.abs()
    if int8:
        d = torch.stack([ax[:, grp == j].amax(dim=1) / 127.0 for j in range(G)], dim=1)  # [M, G]
        dg = d[:, grp]
        b = (dg / 2 + (L + G + 8) * u * (ax + dg)) @ aw.T
    else:
        rel = (L + G + 4) * u + (2.0**-8 + 2.0**-17 if bf16_operands else 0.0)
        b = rel * (ax @ aw.T)
    y = x @ w.T + (0.0 if bias is None else bias.to(torch.float64))
    out_u = {torch.float32: 2.0**-24, torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}[out_dtype]
    return b + (4 * u + out_u) * y.abs() + 1e-30
