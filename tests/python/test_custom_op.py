"""ark::quant_linear, the registered torch operator over a packed layer (python/ark/ops.py).

Everywhere: the operator equals the layer's forward and the fp64 reference, adds its bias argument, and refuses a
handle that names no layer. On torch >= 2.4 (where it is a torch.library custom op with a fake implementation):
torch.library.opcheck, and torch.compile(fullgraph=True) of a model of QuantLinears equals eager, for fixed and
dynamic shapes. On a CUDA machine where ark takes CUDA tensors: CUDA-graph capture and replay equal eager.
The project venv has torch 1.13 (no custom_op): those tests skip there; run them with a torch 2.x Python.
"""

import gc

import pytest
import torch

import ark
import ark.ops
from quant_linear_reference import report_seed  # noqa: F401 (autouse: prints the seed)
from quant_linear_reference import case_id, decode_reference, error_bound, generator, make_checkpoint, random_input

needs_custom_op = pytest.mark.skipif(
    not ark.ops.HAS_CUSTOM_OP,
    reason=f"torch {torch.__version__} has no torch.library.custom_op (needs >= 2.4): ark::quant_linear is a plain "
    "call here and cannot be compiled; run this file with a torch 2.x Python (docs/INTEGRATIONS.md)",
)


def packed_layer(gen, K, N, bits=4, group_size=32, sym=False, fmt="auto_round:auto_gptq", bias=False, compute="exact"):
    # fp16 scales, as the checkpoint stores them (a bf16 buffer would round them).
    layer = ark.QuantLinear(bits, group_size, K, N, bias, sym=sym, packing_format=fmt, compute=compute,
                            kernel_switch_threshold=8, weight_dtype=torch.float16)
    t = make_checkpoint(ark, gen, bits, group_size, sym, fmt, K, N, bias=bias)
    layer.load_state_dict(t)
    w = decode_reference(t, bits, group_size, fmt, K, N)
    ark.ark_post_init(layer)
    return layer, w, t.get("bias")


def close(layer, x, w, bias, got, group_size=32):
    """Exact compute mode's bound (docs/KERNELS.md): fp32 accumulation, bf16 operands where the kernel says so."""
    want = x.to(torch.float64) @ w.T + (0.0 if bias is None else bias.to(torch.float64))
    bf16 = "bf16" in layer.kernel_name(x.shape[0])
    bound = error_bound(x.to(torch.float64), w, group_size, None, False, bf16, got.dtype, bias)
    err = (got.to(torch.float64) - want).abs()
    assert bool((err <= bound).all()), f"max error {err.max().item():.3g} (bound {bound.max().item():.3g})"


@pytest.mark.parametrize("m", [1, 3, 17])
def test_operator_equals_forward_and_reference(m):
    gen = generator(case_id("op", m))
    K, N = 96, 40
    layer, w, _ = packed_layer(gen, K, N)
    x = random_input(gen, (m, K), torch.float32)
    bias = torch.randn(N, generator=gen, dtype=torch.float32)
    y = ark.ops.quant_linear(x, layer._handle, N, bias)
    close(layer, x, w, bias, y)
    y0 = ark.ops.quant_linear(x, layer._handle, N, None)
    assert torch.equal(y0, layer(x)), "the operator without bias must be the layer's forward, bit for bit"


def test_operator_keeps_leading_dims_and_dtype():
    gen = generator(case_id("lead"))
    layer, w, _ = packed_layer(gen, 64, 24, bits=8, group_size=-1, sym=True)
    x = random_input(gen, (2, 3, 64), torch.bfloat16)
    y = ark.ops.quant_linear(x, layer._handle, 24, None)
    assert y.shape == (2, 3, 24) and y.dtype == torch.bfloat16


def test_unknown_or_freed_handle_is_an_error():
    gen = generator(case_id("freed"))
    layer, _, _ = packed_layer(gen, 32, 16)
    handle = layer._handle
    x = torch.randn(2, 32)
    with pytest.raises(RuntimeError, match="names no packed ark layer"):
        ark.ops.quant_linear(x, 10**9, 16, None)
    with pytest.raises(ValueError, match="outputs"):
        ark.ops.quant_linear(x, handle, 17, None)
    del layer
    gc.collect()
    with pytest.raises(RuntimeError, match="names no packed ark layer"):
        ark.ops.quant_linear(x, handle, 16, None)


def test_repacked_copy_gets_its_own_handle():
    import copy  # noqa: PLC0415

    gen = generator(case_id("copy"))
    layer, _, _ = packed_layer(gen, 64, 32, bias=True)
    twin = copy.deepcopy(layer)
    assert twin._handle != layer._handle
    x = random_input(gen, (5, 64), torch.float32)
    assert torch.equal(twin(x), layer(x))


class TwoLayers(torch.nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return self.b(torch.nn.functional.silu(self.a(x))) * 0.5


def two_layer_model(gen):
    a, _, _ = packed_layer(gen, 64, 64, bits=4, group_size=16, sym=False, fmt="auto_round:auto_awq", bias=True)
    b, _, _ = packed_layer(gen, 64, 32, bits=3, group_size=16, sym=True, fmt="auto_round")
    return TwoLayers(a, b).eval()


@needs_custom_op
def test_opcheck():
    gen = generator(case_id("opcheck"))
    layer, _, _ = packed_layer(gen, 64, 32)
    x = random_input(gen, (4, 64), torch.float32)
    bias = torch.randn(32, generator=gen)
    for args in ((x, layer._handle, 32, bias), (x, layer._handle, 32, None)):
        torch.library.opcheck(torch.ops.ark.quant_linear.default, args)


@needs_custom_op
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_fullgraph_equals_eager(backend):
    gen = generator(case_id("compile", backend))
    model = two_layer_model(gen)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    with torch.no_grad():
        for m in (1, 7, 20):
            x = random_input(gen, (m, 64), torch.float32)
            want = model(x)
            got = compiled(x)
            # The ark kernels are the same calls in both; only the surrounding silu/mul may be fused by inductor.
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_custom_op
def test_compiled_graph_holds_the_operator():
    gen = generator(case_id("graph"))
    model = two_layer_model(gen)
    seen = []

    def backend(gm, example_inputs):
        seen.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend, dynamic=True)
    with torch.no_grad():
        for m in (2, 9):
            x = random_input(gen, (m, 64), torch.float32)
            assert torch.equal(compiled(x), model(x))
    targets = [str(n.target) for gm in seen for n in gm.graph.nodes if n.op == "call_function"]
    assert sum("ark.quant_linear" in t for t in targets) >= 2, targets


def _cuda_layer(gen):
    """A packed layer on CUDA, or None when ark (this build) does not take CUDA tensors."""
    K, N = 128, 64
    layer = ark.QuantLinear(4, 32, K, N, True, sym=True, compute="exact", weight_dtype=torch.float16)
    t = make_checkpoint(ark, gen, 4, 32, True, "auto_round:auto_gptq", K, N, bias=True)
    layer.load_state_dict(t)
    try:
        layer = layer.cuda()
        ark.ark_post_init(layer)
        layer(torch.randn(1, K, device="cuda", dtype=torch.float16))
    except (ValueError, RuntimeError, TypeError) as e:
        return None, str(e)
    return layer, ""


@needs_custom_op
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: CUDA-graph capture runs on the GPU machine")
def test_cuda_graph_capture_equals_eager():
    gen = generator(case_id("cudagraph"))
    layer, why = _cuda_layer(gen)
    if layer is None:
        pytest.skip(f"ark does not take CUDA tensors in this build: {why}")
    x = torch.randn(8, 128, device="cuda", dtype=torch.float16)
    bias = torch.randn(64, device="cuda", dtype=torch.float16)
    want = ark.ops.quant_linear(x, layer._handle, 64, bias)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        ark.ops.quant_linear(x, layer._handle, 64, bias)  # warm-up off the default stream, as capture needs
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = ark.ops.quant_linear(x, layer._handle, 64, bias)
    x.copy_(torch.randn(8, 128, device="cuda", dtype=torch.float16))
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(out, ark.ops.quant_linear(x, layer._handle, 64, bias), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(out, layer(x) + bias, rtol=1e-3, atol=1e-3)
    assert not torch.equal(out, want), "replay with new input must give a new output"
