"""ark.QuantLinear on CUDA tensors (needs a GPU and an ark built with nvcc; skipped otherwise).

post_init packs on the buffers' device; forward runs on torch's current stream, is checked against an fp64
dequantize-then-matmul reference (tolerance of docs/CUDA.md), is captured in a CUDA graph and replayed, and
rejects what it cannot run.
"""

import pytest
import torch

import ark
from ark import _cuda
from quant_linear_reference import report_seed  # noqa: F401 (autouse: prints the seed)
from quant_linear_reference import case_id, decode_reference, generator, make_checkpoint

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and _cuda.available()), reason="needs a CUDA device and ark built with CUDA"
)


def _layer(gen, bits, group_size, sym, fmt, K, N, act_order=False):
    t = make_checkpoint(ark, gen, bits, group_size, sym, fmt, K, N, act_order=act_order, bias=True)
    layer = ark.QuantLinear(bits, group_size, K, N, True, weight_dtype=torch.float16, sym=sym, packing_format=fmt)
    layer.load_state_dict({k: v.clone() for k, v in t.items()}, strict=False)
    layer = layer.cuda()
    ark.ark_post_init(layer)
    ref_t = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in t.items()}
    ref_t["scales"] = t["scales"].to(torch.float16).to(torch.float32)
    w = decode_reference(ref_t, bits, group_size, fmt, K, N)  # fp64 [N, K]
    bias = t["bias"].to(torch.float16).to(torch.float64)
    return layer, w, bias


def _check(y, x, w, bias, dtype):
    xd = x.double().cpu()
    ref = xd @ w.T + bias
    mag = xd.abs() @ w.abs().T
    u = 2.0**-8 if dtype == torch.bfloat16 else 2.0**-11
    # Weights may be rounded to 16 bits (large-M path), plus fp32 sums and the output rounding.
    tol = (u + (w.shape[1] + 64) * 2.0**-23) * mag + u * ref.abs() + u * bias.abs() + 2.0**-24
    err = (y.double().cpu() - ref).abs()
    assert torch.isfinite(y).all()
    assert (err <= tol).all(), f"max error {err.max().item()} (tolerance there {tol[err == err.max()].min().item()})"


@pytest.mark.parametrize("bits,group_size,sym,fmt,act_order", [
    (4, 128, True, "auto_round:auto_gptq", False),
    (4, 32, False, "auto_round", True),
    (8, 64, True, "auto_round:gptq", False),
    (4, 128, False, "auto_round:auto_awq", False),
    (2, -1, False, "auto_round", False),
])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_forward_matches_reference(bits, group_size, sym, fmt, act_order, dtype):
    gen = generator(case_id("cuda", bits, group_size, sym, fmt, act_order))
    # N = 272: a partial 128-column block, and a multiple of 16 as GPTQ's 2-bit qzeros packing needs.
    layer, w, bias = _layer(gen, bits, group_size, sym, fmt, 512, 272, act_order)
    for m in (1, 7, 33, 300):
        x = torch.randn(m, 512, generator=gen).to(dtype)
        y = layer(x.cuda())
        assert y.device.type == "cuda" and y.dtype == dtype and y.shape == (m, 272)
        _check(y, x, w, bias, dtype)


def test_cuda_graph_replay_equals_eager():
    gen = generator(case_id("cuda-graph"))
    layer, _, _ = _layer(gen, 4, 128, True, "auto_round:auto_gptq", 1024, 512)
    for m in (1, 16, 300):
        x = torch.randn(m, 1024, generator=gen).half().cuda()
        eager = layer(x)
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            layer(x)  # warm-up on the capture stream
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=stream):
            out = layer(x)
        g.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, eager), f"M={m}: graph replay differs from eager"


def test_cuda_rejects_what_it_cannot_run():
    gen = generator(case_id("cuda-errors"))
    layer, _, _ = _layer(gen, 4, 128, True, "auto_round:auto_gptq", 256, 64)
    with pytest.raises(TypeError):
        layer(torch.randn(2, 256, device="cuda"))  # fp32 activations
    with pytest.raises(ValueError):
        layer(torch.randn(2, 256).half())  # CPU tensor for a CUDA layer
    with pytest.raises(ValueError):
        layer(torch.randn(2, 255, device="cuda").half())
    with pytest.raises(ValueError):
        layer(torch.randn(2, 256, device="cuda", dtype=torch.float16, requires_grad=True))
    assert "cuda" in layer.describe() and layer.kernel_name(1).startswith("mma_w4")
