"""QuantLinear against a torch dequantize-then-matmul reference, for every bits x group x sym x packing format,
with real checkpoint tensors from ark's RTN quantizer and an independent torch decoder of the layouts."""

import pytest
import torch

import ark
from quant_linear_reference import report_seed  # noqa: F401 (autouse: prints the seed)
from quant_linear_reference import (case_id, decode_reference, error_bound, generator, make_checkpoint,
                                    random_input)

# K not a multiple of 128 and groups that do not divide it exercise the partial last group; N spans several
# 16-row tiles with a tail.
K, N = 224, 96
GROUPS = [32, 40, 128, -1]
FORMATS = ["auto_round:auto_gptq", "auto_round", "auto_round:auto_awq"]
CASES = [
    (bits, group, sym, fmt)
    for fmt in FORMATS
    for bits in ((4,) if fmt == "auto_round:auto_awq" else (2, 3, 4, 8))
    for group in GROUPS
    for sym in (True, False)
]
THRESHOLD = 8  # M below it runs the decode path, at or above it the GEMM path


def build(gen, bits, group, sym, fmt, compute, act_order=False, bias=True, weight_dtype=torch.float16):
    t = make_checkpoint(ark, gen, bits, group, sym, fmt, K, N, act_order=act_order, bias=bias)
    layer = ark.QuantLinear(bits, group, K, N, bias, THRESHOLD, weight_dtype=weight_dtype, sym=sym,
                            packing_format=fmt, compute=compute)
    layer.load_state_dict(t, strict=True)
    loaded = {k: v.clone() for k, v in layer.state_dict().items()}
    ark.ark_post_init(layer)
    return layer, loaded


def check(layer, loaded, x, bits, group, fmt, compute):
    w = decode_reference(loaded, bits, group, fmt, K, N)
    xd = x.reshape(-1, K).to(torch.float64)
    ref = xd @ w.T
    if "bias" in loaded:
        ref = ref + loaded["bias"].to(torch.float64)
    y = layer(x)
    assert y.dtype == x.dtype and y.shape == (*x.shape[:-1], N)
    m = xd.shape[0]
    int8 = "int8" in layer.describe().split("; mode ")[1].split(" ")[0]
    bound = error_bound(xd, w, group, loaded.get("g_idx"), int8, "bf16" in layer.kernel_name(m), x.dtype,
                        loaded.get("bias"))
    err = (y.reshape(m, N).to(torch.float64) - ref).abs()
    worst = (err / bound).max().item()
    assert torch.isfinite(y).all()
    assert worst <= 1.0, f"error {err.max().item():.3g} is {worst:.3g}x the bound for {layer.describe()}"


@pytest.mark.parametrize("bits,group,sym,fmt", CASES)
def test_matches_dequantize_then_matmul(bits, group, sym, fmt):
    gen = generator(case_id("formats", bits, group, sym, fmt))
    for compute in ("exact", "auto"):
        layer, loaded = build(gen, bits, group, sym, fmt, compute)
        for m in (1, 3, THRESHOLD + 5):  # decode path (with a tail) and GEMM path
            check(layer, loaded, random_input(gen, (m, K), torch.float32), bits, group, fmt, compute)


@pytest.mark.parametrize("fmt", ["auto_round:auto_gptq", "auto_round"])
@pytest.mark.parametrize("bits", [3, 4])
def test_act_order(bits, fmt):
    gen = generator(case_id("act_order", bits, fmt))
    layer, loaded = build(gen, bits, 32, True, fmt, "exact", act_order=True)
    grp = torch.arange(K) // 32
    assert not torch.equal(loaded["g_idx"].to(torch.int64), grp), "the case must have a real act-order g_idx"
    for m in (2, THRESHOLD + 1):
        check(layer, loaded, random_input(gen, (m, K), torch.float32), bits, 32, fmt, "exact")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("compute", ["exact", "int8"])
def test_input_dtypes_and_leading_shapes(dtype, compute):
    gen = generator(case_id("dtypes", str(dtype), compute))
    layer, loaded = build(gen, 4, 32, False, "auto_round:auto_awq", compute, weight_dtype=torch.bfloat16)
    for shape in ((K,), (1, 1, K), (2, 3, K), (THRESHOLD * 2 + 1, K)):
        check(layer, loaded, random_input(gen, shape, dtype), 4, 32, "auto_round:auto_awq", compute)


def test_non_contiguous_input():
    gen = generator(case_id("strides"))
    layer, loaded = build(gen, 4, 128, True, "auto_round:auto_gptq", "exact")
    base = random_input(gen, (K, 6), torch.float32)
    x = base.T  # [6, K], column-major
    assert not x.is_contiguous()
    check(layer, loaded, x, 4, 128, "auto_round:auto_gptq", "exact")
    wide = random_input(gen, (5, 2 * K), torch.float32)[:, ::2]  # strided along K
    check(layer, loaded, wide, 4, 128, "auto_round:auto_gptq", "exact")
    torch.testing.assert_close(layer(x), layer(x.contiguous()), rtol=0, atol=0)


def test_empty_batch():
    gen = generator(case_id("empty"))
    layer, _ = build(gen, 4, 32, True, "auto_round", "auto")
    y = layer(torch.empty(0, K))
    assert y.shape == (0, N)


def test_kernel_switch_threshold_is_honoured():
    gen = generator(case_id("threshold"))
    layer, _ = build(gen, 4, 32, True, "auto_round", "auto")
    text = layer.describe()
    small = text.split(f"M < {THRESHOLD}: ")[1].split(",")[0]
    large = text.split(f"M >= {THRESHOLD}: ")[1].split(";")[0]
    assert layer.kernel_name(1) == layer.kernel_name(THRESHOLD - 1) == small
    assert layer.kernel_name(THRESHOLD) == layer.kernel_name(10 * THRESHOLD) == large
