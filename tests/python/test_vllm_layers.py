"""The vLLM plugin against vLLM's real classes (python/ark/vllm): the linear layers vLLM builds for a model
(QKVParallelLinear, MergedColumnParallelLinear, RowParallelLinear, ReplicatedLinear) with the "ark" config,
fed per-shard checkpoint tensors through vLLM's own weight loaders, packed by process_weights_after_loading and
run through apply, against an fp64 reference over weights decoded by hand (quant_linear_reference.py, no ark).

Tensor parallelism on one CPU process: the distributed state is gloo with world size 1, and a split over T
ranks is simulated by building the layer as rank r of T (vLLM's get_tensor_model_parallel_rank / _world_size
answer r and T while the layer is built and loaded) and loading the full checkpoint tensors, from which vLLM's
loaders cut rank r's shard; each rank's output is checked against its
slice of the reference (row-parallel: the ranks' partial sums add up to the reference, bias on rank 0 only;
the all-reduce runs over the real group of one process, so it returns each rank's part as it is).

Needs vLLM (a pinned release in its own venv; docs/INTEGRATIONS.md): skipped where it is not installed (CI).
"""

import contextlib
import importlib.metadata
import os
import socket

import pytest
import torch

if not torch.cuda.is_available():
    # vLLM's CUDA wheel on a machine without a GPU finds no platform; its CPU platform is chosen by name.
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
vllm = pytest.importorskip("vllm", reason="vLLM is not installed (CI); run with the vLLM venv of "
                           "docs/INTEGRATIONS.md")

import ark  # noqa: E402
import ark.vllm  # noqa: E402
from quant_linear_reference import report_seed  # noqa: E402,F401 (autouse: prints the seed)
from quant_linear_reference import case_id, decode_reference, error_bound, generator  # noqa: E402

AUTO_ROUND = {"quant_method": "auto-round", "data_type": "int", "block_name_to_quantize": "model.layers"}
MAPPING = {"qkv_proj": ["q_proj", "k_proj", "v_proj"], "gate_up_proj": ["gate_proj", "up_proj"]}
# (bits, group_size, sym, packing_format, act_order)
SCHEMES = [
    (4, 32, True, "auto_round:auto_gptq", False),
    (3, 32, False, "auto_round", False),
    (4, 32, False, "auto_round:auto_awq", False),
    (8, -1, True, "auto_round:auto_gptq", False),
    (2, 16, False, "auto_round:auto_gptq", True),
]
HIDDEN, HEADS, KV_HEADS, HEAD, INTER = 128, 4, 2, 32, 128


def scheme_id(s):
    return f"int{s[0]}-g{s[1]}-{'sym' if s[2] else 'asym'}-{s[3].split(':')[-1]}{'-actorder' if s[4] else ''}"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_env():
    from vllm.config import DeviceConfig, VllmConfig, set_current_vllm_config  # noqa: PLC0415
    from vllm.distributed import parallel_state  # noqa: PLC0415

    ark.vllm.register()
    ark.vllm.register()  # twice is harmless
    # vLLM's CUDA wheel on a machine without a GPU detects no platform: the device is named explicitly.
    with set_current_vllm_config(VllmConfig(device_config=DeviceConfig(device="cpu"))):
        if not parallel_state.model_parallel_is_initialized():
            parallel_state.init_distributed_environment(
                world_size=1, rank=0, local_rank=0, distributed_init_method=f"tcp://127.0.0.1:{_free_port()}",
                backend="gloo")
            parallel_state.initialize_model_parallel(1, 1)
        yield


@contextlib.contextmanager
def as_rank(rank, size):
    """vLLM's layers and parameters ask these two functions for their place in the tensor-parallel group."""
    import vllm.model_executor.layers.linear as linear  # noqa: PLC0415
    import vllm.model_executor.parameter as parameter  # noqa: PLC0415

    patch = pytest.MonkeyPatch()
    for module in (linear, parameter):
        patch.setattr(module, "get_tensor_model_parallel_rank", lambda: rank)
        patch.setattr(module, "get_tensor_model_parallel_world_size", lambda: size)
    try:
        yield
    finally:
        patch.undo()


def ark_config(bits, group_size, sym, fmt, act_order, extra=None):
    from vllm.model_executor.layers.quantization import get_quantization_config  # noqa: PLC0415

    cfg = {**AUTO_ROUND, "bits": bits, "group_size": group_size, "sym": sym, "packing_format": fmt}
    if act_order:
        cfg = {"quant_method": "gptq", "bits": bits, "group_size": group_size, "sym": sym, "desc_act": True,
               "checkpoint_format": "gptq" if fmt == "auto_round:auto_gptq" else "gptq_v2"}
    if extra:
        cfg["extra_config"] = extra
    qc = get_quantization_config("ark").from_config(cfg)
    qc.packed_modules_mapping = dict(MAPPING)
    qc.compute = "exact"
    return qc


def checkpoint(gen, K, N, scheme, perm=None, bias=True):
    """On-disk tensors of one Linear (ark's RTN quantizer over random weights) and its fp64 dense weight."""
    bits, g, sym, fmt, _ = scheme
    w = torch.randn(N, K, generator=gen) * 0.05
    w[: N // 3] += 0.02
    t = ark.quantize_weight(w, bits, g, sym, fmt, act_order_perm=perm)
    dense = decode_reference(t, bits, g, fmt, K, N)
    if bias:
        t["bias"] = (torch.randn(N, generator=gen) * 0.1).to(torch.float16)
    return t, dense


def load(layer, name_tensors, shard_id=None):
    for name, value in name_tensors.items():
        param = getattr(layer, name, None)
        if param is None:
            continue  # e.g. g_idx of an AWQ layer, bias of a layer without one
        if shard_id is None:
            param.weight_loader(param, value)
        else:
            param.weight_loader(param, value, shard_id)


def reference(x, dense, bias):
    y = x.to(torch.float64) @ dense.T
    return y if bias is None else y + bias.to(torch.float64)


def check(got, want, x, dense, what, layers=(), group_size=32):
    """Exact compute mode's bound (docs/KERNELS.md), with bf16 operands where one of `layers`' kernels uses them;
    summed ranks get the sum of their bounds through the factor 2."""
    bf16 = any("bf16" in q.kernel_name(x.shape[0]) for q in layers)
    bound = 2 * error_bound(x.to(torch.float64), dense, group_size, None, False, bf16, torch.float32)
    err = (got.to(torch.float64) - want).abs()
    assert bool((err <= bound).all()), f"{what}: max error {err.max().item():.3g}, bound {bound.max().item():.3g}"


def ark_of(layer):
    """The packed ark layer behind a vLLM layer (for its kernel names)."""
    return [layer.__dict__["_ark_linear"]]


def run(layer, x):
    out = layer(x)
    return out[0] if isinstance(out, tuple) else out


def perm_for(gen, scheme, K):
    return torch.randperm(K, generator=gen).to(torch.int32) if scheme[4] else None


@pytest.mark.parametrize("tp", [1, 2])
@pytest.mark.parametrize("scheme", SCHEMES, ids=scheme_id)
def test_qkv_parallel_linear(vllm_env, scheme, tp):
    from vllm.model_executor.layers.linear import QKVParallelLinear  # noqa: PLC0415

    from ark.vllm.linear import ArkLinearMethod  # noqa: PLC0415

    gen = generator(case_id("qkv", scheme, tp))
    perm = perm_for(gen, scheme, HIDDEN)  # q, k, v share their input, hence one act-order permutation
    parts = {s: checkpoint(gen, HIDDEN, n * HEAD, scheme, perm)
             for s, n in (("q", HEADS), ("k", KV_HEADS), ("v", KV_HEADS))}
    x = torch.randn(5, HIDDEN, generator=gen)
    for rank in range(tp):
        with as_rank(rank, tp):
            layer = QKVParallelLinear(HIDDEN, HEAD, HEADS, KV_HEADS, bias=True, params_dtype=torch.float32,
                                      quant_config=ark_config(*scheme), prefix="model.layers.0.self_attn.qkv_proj")
            assert isinstance(layer.quant_method, ArkLinearMethod)
            for s, (t, _) in parts.items():
                load(layer, t, s)
            layer.quant_method.process_weights_after_loading(layer)
            assert not hasattr(layer, "qweight"), "the raw checkpoint tensors must be freed after packing"
            got = run(layer, x)
        want, dense = [], []
        for s, n in (("q", HEADS), ("k", KV_HEADS), ("v", KV_HEADS)):
            rows = n * HEAD // tp
            t, w = parts[s]
            sl = slice(rank * rows, (rank + 1) * rows)
            want.append(reference(x, w[sl], t["bias"][sl]))
            dense.append(w[sl])
        check(got, torch.cat(want, 1), x, torch.cat(dense, 0), f"qkv rank {rank}/{tp}", ark_of(layer), scheme[1])


@pytest.mark.parametrize("tp", [1, 2])
@pytest.mark.parametrize("scheme", SCHEMES, ids=scheme_id)
def test_merged_column_parallel_linear(vllm_env, scheme, tp):
    from vllm.model_executor.layers.linear import MergedColumnParallelLinear  # noqa: PLC0415

    gen = generator(case_id("gate_up", scheme, tp))
    perm = perm_for(gen, scheme, HIDDEN)
    parts = [checkpoint(gen, HIDDEN, INTER, scheme, perm, bias=False) for _ in range(2)]
    x = torch.randn(3, HIDDEN, generator=gen)
    for rank in range(tp):
        with as_rank(rank, tp):
            layer = MergedColumnParallelLinear(HIDDEN, [INTER, INTER], bias=False, params_dtype=torch.float32,
                                               quant_config=ark_config(*scheme),
                                               prefix="model.layers.1.mlp.gate_up_proj")
            for i, (t, _) in enumerate(parts):
                load(layer, t, i)
            layer.quant_method.process_weights_after_loading(layer)
        rows = slice(rank * INTER // tp, (rank + 1) * INTER // tp)
        dense = torch.cat([w[rows] for _, w in parts], 0)
        check(run(layer, x), reference(x, dense, None), x, dense, f"gate_up rank {rank}/{tp}", ark_of(layer),
              scheme[1])


@pytest.mark.parametrize("tp", [1, 2])
@pytest.mark.parametrize("scheme", [s for s in SCHEMES if not s[4]], ids=scheme_id)
def test_row_parallel_linear(vllm_env, scheme, tp):
    from vllm.model_executor.layers.linear import RowParallelLinear  # noqa: PLC0415

    gen = generator(case_id("down", scheme, tp))
    t, w = checkpoint(gen, INTER, HIDDEN, scheme)
    x = torch.randn(4, INTER, generator=gen)
    total = torch.zeros(4, HIDDEN, dtype=torch.float64)
    packed = []
    for rank in range(tp):
        with as_rank(rank, tp):
            layer = RowParallelLinear(INTER, HIDDEN, bias=True, params_dtype=torch.float32, input_is_parallel=True,
                                      quant_config=ark_config(*scheme),
                                      prefix="model.layers.0.mlp.down_proj")
            load(layer, t)
            layer.quant_method.process_weights_after_loading(layer)
            cols = slice(rank * INTER // tp, (rank + 1) * INTER // tp)
            part = run(layer, x[:, cols].contiguous())
        # vLLM passes the bias to rank 0 only, so the all-reduce adds it once.
        check(part, reference(x[:, cols], w[:, cols], t["bias"] if rank == 0 else None), x[:, cols], w[:, cols],
              f"down rank {rank}/{tp}", ark_of(layer), scheme[1])
        packed += ark_of(layer)
        total += part.to(torch.float64)
    check(total, reference(x, w, t["bias"]), x, w, "down, ranks summed", packed, scheme[1])


def test_act_order_over_a_row_split_is_refused(vllm_env):
    from vllm.model_executor.layers.linear import RowParallelLinear  # noqa: PLC0415

    with as_rank(0, 2), pytest.raises(ValueError, match="act-order"):
        RowParallelLinear(INTER, HIDDEN, bias=False, params_dtype=torch.float32, input_is_parallel=True,
                          quant_config=ark_config(4, 32, True, "auto_round:auto_gptq", True),
                          prefix="model.layers.0.mlp.down_proj")


def test_fused_parts_with_different_act_order_are_refused(vllm_env):
    from vllm.model_executor.layers.linear import MergedColumnParallelLinear  # noqa: PLC0415

    scheme = (4, 32, True, "auto_round:auto_gptq", True)
    gen = generator(case_id("perm-mismatch"))
    layer = MergedColumnParallelLinear(HIDDEN, [INTER, INTER], bias=False, params_dtype=torch.float32,
                                       quant_config=ark_config(*scheme), prefix="model.layers.1.mlp.gate_up_proj")
    load(layer, checkpoint(gen, HIDDEN, INTER, scheme, perm_for(gen, scheme, HIDDEN), bias=False)[0], 0)
    with pytest.raises(ValueError, match="different g_idx"):
        load(layer, checkpoint(gen, HIDDEN, INTER, scheme, perm_for(gen, scheme, HIDDEN), bias=False)[0], 1)


@pytest.mark.parametrize("scheme", SCHEMES[:3], ids=scheme_id)
def test_replicated_linear_bf16_activations(vllm_env, scheme):
    from vllm.model_executor.layers.linear import ReplicatedLinear  # noqa: PLC0415

    gen = generator(case_id("replicated", scheme))
    t, w = checkpoint(gen, HIDDEN, 96, scheme)
    layer = ReplicatedLinear(HIDDEN, 96, bias=True, params_dtype=torch.bfloat16, quant_config=ark_config(*scheme),
                             prefix="model.layers.0.mlp.shared_proj")
    load(layer, t)
    layer.quant_method.process_weights_after_loading(layer)
    x = torch.randn(6, HIDDEN, generator=gen).to(torch.bfloat16)
    got = run(layer, x)
    assert got.dtype == torch.bfloat16
    want = reference(x, w, layer.bias.detach())
    # bf16 activations and output: each product's operand rounded to bf16 (2^-8), output rounded (2^-8).
    bound = 2.0**-7 * (x.to(torch.float64).abs() @ w.abs().T) + 2.0**-8 * want.abs() + 1e-4
    assert bool(((got.to(torch.float64) - want).abs() <= bound).all())


def test_unquantized_layers_get_vllms_own_method(vllm_env):
    from vllm.model_executor.layers.linear import (  # noqa: PLC0415
        QKVParallelLinear,
        RowParallelLinear,
        UnquantizedLinearMethod,
    )

    extra = {"model.layers.0.mlp.down_proj": {"bits": 16}}
    qc = ark_config(4, 32, True, "auto_round:auto_gptq", False, extra)
    down = RowParallelLinear(INTER, HIDDEN, bias=False, params_dtype=torch.float32, quant_config=qc,
                             prefix="model.layers.0.mlp.down_proj")
    assert isinstance(down.quant_method, UnquantizedLinearMethod)
    outside = RowParallelLinear(INTER, HIDDEN, bias=False, params_dtype=torch.float32, quant_config=qc,
                                prefix="visual.blocks.0.proj")  # outside block_name_to_quantize
    assert isinstance(outside.quant_method, UnquantizedLinearMethod)
    mixed = {"model.layers.0.self_attn.k_proj": {"bits": 8}}
    with pytest.raises(ValueError, match="a fused layer needs one scheme"):
        QKVParallelLinear(HIDDEN, HEAD, HEADS, KV_HEADS, bias=False, params_dtype=torch.float32,
                          quant_config=ark_config(4, 32, True, "auto_round:auto_gptq", False, mixed),
                          prefix="model.layers.0.self_attn.qkv_proj")


def test_compiled_layer_equals_eager(vllm_env):
    from vllm.model_executor.layers.linear import QKVParallelLinear  # noqa: PLC0415

    scheme = SCHEMES[0]
    gen = generator(case_id("compile-qkv"))
    layer = QKVParallelLinear(HIDDEN, HEAD, HEADS, KV_HEADS, bias=True, params_dtype=torch.float32,
                              quant_config=ark_config(*scheme), prefix="model.layers.0.self_attn.qkv_proj")
    for s, n in (("q", HEADS), ("k", KV_HEADS), ("v", KV_HEADS)):
        load(layer, checkpoint(gen, HIDDEN, n * HEAD, scheme)[0], s)
    layer.quant_method.process_weights_after_loading(layer)

    def f(x):
        return layer.quant_method.apply(layer, x, layer.bias) * 2.0

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager", dynamic=True)
    for m in (1, 8, 13):
        x = torch.randn(m, HIDDEN, generator=gen)
        torch.testing.assert_close(compiled(x), f(x), rtol=0, atol=0)


def test_claiming_through_vllm(vllm_env):
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS, get_quantization_config  # noqa: PLC0415

    assert QUANTIZATION_METHODS.count("ark") == 1
    cls = get_quantization_config("ark")
    cfg = {**AUTO_ROUND, "bits": 4, "group_size": 128, "sym": True, "packing_format": "auto_round:auto_gptq"}
    assert cls.override_quantization_method(cfg, None) == "ark"
    assert cls.override_quantization_method(cfg, "inc") is None
    # vLLM's own auto-round path would take it next, had ark declined.
    assert get_quantization_config("inc").override_quantization_method(cfg, None) == "inc"


def test_entry_point_loads_the_plugin(tmp_path, monkeypatch):
    """vLLM's plugin loader finds ark through the entry point pyproject.toml declares (written here into a
    dist-info folder, as `pip install` would)."""
    dist = tmp_path / "ark-0.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ark\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text("[vllm.general_plugins]\nark = ark.vllm:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    eps = importlib.metadata.entry_points(group="vllm.general_plugins")
    assert any(e.name == "ark" and e.value == "ark.vllm:register" for e in eps)
    from vllm.plugins import load_general_plugins  # noqa: PLC0415

    load_general_plugins()
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS  # noqa: PLC0415

    assert QUANTIZATION_METHODS.count("ark") == 1
