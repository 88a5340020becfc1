"""The vLLM plugin's MoE method (python/ark/vllm/moe.py) against vLLM's real RoutedExperts layer: the layer is
built by vLLM's FusedMoEFactory with the "ark" config, each expert's gate / up / down checkpoint tensors go
through the weight loaders vLLM attaches to the stacked parameters (the loader a model's load_weights calls),
process_weights_after_loading packs one ark.QuantMoE, and vLLM's own router picks the experts for apply. The
output is compared with a float64 reference (routing recomputed from the logits, each expert's SiLU-gated MLP
from weights decoded by hand in quant_linear_reference.py, no ark).

Needs vLLM (a pinned release in its own venv; docs/INTEGRATIONS.md): skipped where it is not installed (CI).
"""

import os
import socket

import pytest
import torch
import torch.nn.functional as F

if not torch.cuda.is_available():
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
vllm = pytest.importorskip("vllm", reason="vLLM is not installed (CI); run with the vLLM venv of "
                           "docs/INTEGRATIONS.md")

import ark  # noqa: E402
import ark.vllm  # noqa: E402
from ark.vllm import claim as claim_rules  # noqa: E402
from quant_linear_reference import report_seed  # noqa: E402,F401 (autouse: prints the seed)
from quant_linear_reference import case_id, decode_reference, generator  # noqa: E402

AUTO_ROUND = {"quant_method": "auto-round", "data_type": "int", "block_name_to_quantize": "model.layers"}
PREFIX = "model.layers.0.mlp.experts"
H, I, E, TOP_K = 256, 128, 6, 2
# (bits, group_size, sym, packing_format, act_order)
SCHEMES = [
    (4, 128, True, "auto_round:auto_gptq", False),  # GPTQ int4 g128 sym, the common export
    (2, 32, False, "auto_round:auto_gptq", False),
    (8, -1, False, "auto_round", False),  # GPTQ v2 zero points, per-channel
    (4, 32, False, "auto_round:auto_awq", False),
    (4, 32, True, "auto_round:auto_gptq", True),  # act-order experts
]


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
    with set_current_vllm_config(VllmConfig(device_config=DeviceConfig(device="cpu"))):
        if not parallel_state.model_parallel_is_initialized():
            parallel_state.init_distributed_environment(
                world_size=1, rank=0, local_rank=0, distributed_init_method=f"tcp://127.0.0.1:{_free_port()}",
                backend="gloo")
            parallel_state.initialize_model_parallel(1, 1)
        yield


def _config(bits, group_size, sym, fmt, act_order=False, compute="exact"):
    from ark.vllm.config import ArkConfig  # noqa: PLC0415

    cfg = ArkConfig({**AUTO_ROUND, "bits": bits, "group_size": group_size, "sym": sym, "packing_format": fmt,
                     "desc_act": act_order})
    cfg.packed_modules_mapping = {"gate_up_proj": ["gate_proj", "up_proj"]}
    cfg.compute = compute  # exact: fp32 arithmetic, so the comparison below can be tight
    return cfg


_LAYERS = iter(range(1, 1 << 30))


def _layer(cfg, renormalize=True, dtype=torch.float16, prefix=None, tp_size=1, **kw):
    """A MoE runner as a model builds it; every layer needs a name of its own in vLLM's forward context."""
    from vllm.model_executor.layers.fused_moe.layer import FusedMoEFactory  # noqa: PLC0415

    prefix = prefix or f"model.layers.{next(_LAYERS)}.mlp.experts"
    return FusedMoEFactory(num_experts=E, top_k=TOP_K, hidden_size=H, intermediate_size=I, params_dtype=dtype,
                           renormalize=renormalize, quant_config=cfg, tp_size=tp_size, dp_size=1, pcp_size=1,
                           prefix=prefix, **kw)


def _checkpoint(gen, scheme, k, n, perm):
    bits, g, sym, fmt, _ = scheme
    w = torch.randn(n, k, generator=gen) * 0.05
    w[: n // 3] += 0.02  # lopsided ranges for the asymmetric groups
    return ark.quantize_weight(w, bits, g, sym, fmt, act_order_perm=perm)


def _checkpoints(gen, scheme):
    """Every expert's checkpoint tensors {leaf: tensors} and dense fp64 [gate, up, down]."""
    bits, g, sym, fmt, act = scheme
    tensors, dense = [], []
    for _ in range(E):
        # gate and up read the same input, so an act-order export gives them one permutation.
        perm_h = torch.randperm(H, generator=gen).to(torch.int32) if act else None
        perm_i = torch.randperm(I, generator=gen).to(torch.int32) if act else None
        parts = {leaf: _checkpoint(gen, scheme, k, n, perm)
                 for leaf, k, n, perm in (("down_proj", I, H, perm_i), ("gate_proj", H, I, perm_h),
                                          ("up_proj", H, I, perm_h))}
        tensors.append(parts)
        dense.append([decode_reference(parts["gate_proj"], bits, g, fmt, H, I),
                      decode_reference(parts["up_proj"], bits, g, fmt, H, I),
                      decode_reference(parts["down_proj"], bits, g, fmt, I, H)])
    return tensors, dense


def _load_into(experts, tensors):
    """Through the parameters' vLLM weight loaders, in the order a checkpoint lists them (down, gate, up)."""
    for e, parts in enumerate(tensors):
        for leaf, shard in (("down_proj", "w2"), ("gate_proj", "w1"), ("up_proj", "w3")):
            stem = "w2" if shard == "w2" else "w13"
            for name, tensor in parts[leaf].items():
                param = getattr(experts, f"{stem}_{name}")
                param.weight_loader(param, tensor, f"{PREFIX}.{stem}_{name}", shard_id=shard, expert_id=e)


def _load(experts, gen, scheme):
    """Random checkpoint tensors for every expert, loaded; returns each expert's dense fp64 [gate, up, down]."""
    tensors, dense = _checkpoints(gen, scheme)
    _load_into(experts, tensors)
    return dense


def _reference(x, logits, dense, renormalize):
    p = F.softmax(logits.to(torch.float64), dim=-1)
    w, ids = torch.topk(p, TOP_K, dim=-1)
    if renormalize:
        w = w / w.sum(dim=-1, keepdim=True)
    x = x.to(torch.float64)
    y = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(TOP_K):
            gate, up, down = dense[int(ids[t, j])]
            y[t] += w[t, j] * ((F.silu(x[t] @ gate.T) * (x[t] @ up.T)) @ down.T)
    return ids, y


def _build(scheme, renormalize=True, dtype=torch.float16, compute="exact"):
    from ark.vllm.moe import ArkMoEMethod  # noqa: PLC0415

    runner = _layer(_config(*scheme, compute=compute), renormalize, dtype)
    experts = runner.routed_experts
    assert isinstance(experts.quant_method, ArkMoEMethod), experts.quant_method
    return runner, experts


@pytest.mark.parametrize("scheme", SCHEMES, ids=scheme_id)
def test_experts_match_float64_reference(vllm_env, scheme):
    gen = generator(case_id("vllm-moe", *scheme))
    renormalize = scheme[0] != 2  # both of vLLM's softmax routings
    runner, experts = _build(scheme, renormalize)
    dense = _load(experts, gen, scheme)
    experts.quant_method.process_weights_after_loading(experts)
    assert not any(n.startswith(("w13_", "w2_")) for n, _ in experts.named_parameters())  # raw stacks freed
    for T in (1, 7, 64):
        x = torch.randn(T, H, generator=gen).to(torch.float16)
        logits = torch.randn(T, E, generator=gen) * 2
        topk_weights, topk_ids = runner.router.select_experts(hidden_states=x, router_logits=logits)
        ref_ids, ref = _reference(x, logits, dense, renormalize)
        assert torch.equal(topk_ids.long().sort(-1).values, ref_ids.sort(-1).values)
        y = experts.forward_modular(x, topk_weights, topk_ids)  # a fresh tensor: nothing to poison
        assert y.shape == (T, H) and y.dtype == torch.float16
        assert not torch.isnan(y).any()
        # fp16 output rounding (2^-11 relative) dominates the fp32 compute error at these sizes.
        tol = 2e-3 * ref.abs().max().item() + 1e-3 * ref.abs()
        err = (y.to(torch.float64) - ref).abs()
        assert (err <= tol).all(), (T, err.max().item(), ref.abs().max().item())


@pytest.mark.parametrize("compute", ["exact", "auto"])
def test_bf16_activations_and_default_compute(vllm_env, compute):
    """bf16 in and out; ARK_VLLM_COMPUTE's default (auto) may quantize activations to int8 per group
    (docs/KERNELS.md), whose error bound is the int8 rounding of x: ~1% of the output's scale here."""
    gen = generator(case_id("vllm-moe-bf16", compute))
    scheme = SCHEMES[0]
    runner, experts = _build(scheme, dtype=torch.bfloat16, compute=compute)
    dense = _load(experts, gen, scheme)
    experts.quant_method.process_weights_after_loading(experts)
    x = torch.randn(7, H, generator=gen).to(torch.bfloat16)
    logits = torch.randn(7, E, generator=gen)
    topk_weights, topk_ids = runner.router.select_experts(hidden_states=x, router_logits=logits)
    y = experts.forward_modular(x, topk_weights, topk_ids)
    _, ref = _reference(x, logits, dense, True)
    assert y.dtype == torch.bfloat16
    tol = 1e-2 if compute == "exact" else 3e-2  # bf16 output rounding (2^-9); int8 activations
    assert (y.to(torch.float64) - ref).abs().max().item() <= tol * ref.abs().max().item()


def test_unsupported_layers_are_refused(vllm_env):
    scheme = SCHEMES[0]
    with pytest.raises(ValueError, match="activation"):
        _layer(_config(*scheme), activation="gelu")
    with pytest.raises(ValueError, match="expert biases"):
        _layer(_config(*scheme), has_bias=True)
    with pytest.raises(ValueError, match="router weights applied to the input"):
        _layer(_config(*scheme), apply_router_weight_on_input=True)
    with pytest.raises(ValueError, match="multiple of group_size"):
        _layer(_config(4, 96, True, "auto_round:auto_gptq"))  # hidden 256 is not whole groups of 96


def test_mixed_expert_schemes_defer_to_vllm(vllm_env):
    """Experts in several schemes cannot share one stacked tensor: the layer keeps vLLM's own method."""
    from ark.vllm.moe import ArkMoEMethod  # noqa: PLC0415

    uniform = _config(4, 128, True, "auto_round:auto_gptq")
    assert uniform.experts_scheme(_FakeExperts(), PREFIX) == (4, 128, True, "auto_round:auto_gptq")
    mixed = _config(4, 128, True, "auto_round:auto_gptq")
    mixed.full_config["extra_config"] = {f"{PREFIX}.3.down_proj": {"bits": 8}}
    assert mixed.experts_scheme(_FakeExperts(), PREFIX) is None
    runner = _layer(mixed, prefix=PREFIX)
    assert not isinstance(runner.routed_experts.quant_method, ArkMoEMethod)


class _FakeExperts:
    """The attributes experts_scheme reads from a RoutedExperts layer."""

    class moe_config:  # noqa: N801
        num_logical_experts = E

    global_num_experts = E
    ckpt_gate_proj_name, ckpt_up_proj_name, ckpt_down_proj_name = "gate_proj", "up_proj", "down_proj"


MOE_HF = {"model_type": "qwen3_moe", "num_experts": 128}


def test_claim_rules_for_moe_checkpoints():
    cfg = {**AUTO_ROUND, "bits": 4, "group_size": 128, "sym": True, "packing_format": "auto_round:auto_gptq"}
    assert claim_rules.claim(cfg, None, MOE_HF, environ={}) == "ark"
    assert claim_rules.claim(cfg, "ark", MOE_HF, environ={}) == "ark"
    assert claim_rules.claim(cfg, "moe_wna16", MOE_HF, environ={}) is None
    # An expert scheme ark's MoE method cannot take (3-bit codes of an intermediate size that fills no
    # whole int32 words are checked per layer; here: a scheme ark does not parse at all).
    bad = {**cfg, "bits": 5}
    assert claim_rules.claim(bad, None, MOE_HF, environ={}) is None
    with pytest.raises(ValueError, match="--quantization ark"):
        claim_rules.claim(bad, "ark", MOE_HF, environ={})


@pytest.mark.parametrize("scheme", [SCHEMES[1], SCHEMES[2], SCHEMES[3]], ids=scheme_id)
def test_tensor_parallel_ranks_sum_to_the_reference(vllm_env, scheme):
    """Tensor parallelism of 2 simulated in one process (as test_vllm_layers.py does): rank r's layer is built
    while vLLM's MoE parallel config is told rank r, loads the full checkpoint tensors (vLLM's loader cuts the
    rank's half of gate/up outputs and of down's input, g_idx's loader its half of down's g_idx), and the
    ranks' partial outputs add up to the reference (the all-reduce is vLLM's, outside apply)."""
    import vllm.model_executor.layers.fused_moe.config as moe_config  # noqa: PLC0415

    gen = generator(case_id("vllm-moe-tp", *scheme))
    tensors, dense = _checkpoints(gen, scheme)
    x = torch.randn(7, H, generator=gen).to(torch.float16)
    logits = torch.randn(7, E, generator=gen) * 2
    total = torch.zeros(7, H, dtype=torch.float64)
    for rank in range(2):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(moe_config, "get_tensor_model_parallel_rank", lambda r=rank: r)
            runner = _layer(_config(*scheme), tp_size=2)
            experts = runner.routed_experts
            assert experts.moe_config.tp_rank == rank and experts.intermediate_size_per_partition == I // 2
            _load_into(experts, tensors)
            experts.quant_method.process_weights_after_loading(experts)
        topk_weights, topk_ids = runner.router.select_experts(hidden_states=x, router_logits=logits)
        # The sum of fp16 partial outputs: compared to the reference in fp64 below.
        total += experts.forward_modular(x.float(), topk_weights, topk_ids).to(torch.float64)
    _, ref = _reference(x, logits, dense, True)
    err = (total - ref).abs().max().item()
    assert err <= 1e-4 * ref.abs().max().item(), (err, ref.abs().max().item())


def test_whole_moe_runner_forward(vllm_env):
    """vLLM's MoE runner end to end (its opaque custom op moe_forward, which hides router and experts from
    torch.compile, the router, apply, the final reduce over the group of one) under a forward context."""
    from vllm.config import get_current_vllm_config  # noqa: PLC0415
    from vllm.forward_context import set_forward_context  # noqa: PLC0415

    gen = generator(case_id("vllm-moe-runner"))
    scheme = SCHEMES[0]
    runner, experts = _build(scheme)
    dense = _load(experts, gen, scheme)
    experts.quant_method.process_weights_after_loading(experts)
    x = torch.randn(7, H, generator=gen).to(torch.float16)
    logits = torch.randn(7, E, generator=gen) * 2
    with set_forward_context(None, get_current_vllm_config(), num_tokens=7):
        y = runner(x, logits.to(torch.float16))
    _, ref = _reference(x, logits.to(torch.float16).float(), dense, True)
    assert y.shape == (7, H) and y.dtype == torch.float16
    assert (y.to(torch.float64) - ref).abs().max().item() <= 4e-3 * ref.abs().max().item()


def test_act_order_experts_are_refused_over_a_split_input(vllm_env):
    import vllm.model_executor.layers.fused_moe.config as moe_config  # noqa: PLC0415

    tensors, _ = _checkpoints(generator(case_id("vllm-moe-tp-actorder")), SCHEMES[4])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(moe_config, "get_tensor_model_parallel_rank", lambda: 1)
        experts = _layer(_config(*SCHEMES[4]), tp_size=2).routed_experts
        _load_into(experts, tensors)
        with pytest.raises(ValueError, match="act-order down_proj experts cannot be split"):
            experts.quant_method.process_weights_after_loading(experts)


def test_vllm_loads_a_moe_checkpoint_through_ark(vllm_env, tmp_path):
    """vLLM's engine configuration claims an `ark make-model` Qwen3-MoE checkpoint by itself, its model loader
    (the model's expert mapping, the safetensors iterator) fills ArkMoEMethod's stacks, and each MoE layer's
    experts, routed by vLLM's router from the checkpoint's router weights, equal the float64 reference of
    scripts/reference_model.py (independent of ark)."""
    import pathlib  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    from vllm.config import set_current_vllm_config  # noqa: PLC0415
    from vllm.engine.arg_utils import EngineArgs  # noqa: PLC0415
    from vllm.model_executor.layers.fused_moe import RoutedExperts  # noqa: PLC0415
    from vllm.model_executor.model_loader import get_model  # noqa: PLC0415

    from ark.vllm.moe import ArkMoEMethod  # noqa: PLC0415

    repo = pathlib.Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(repo / "scripts"))
    import reference_model  # noqa: PLC0415

    ark_bin = os.environ.get("ARK_BIN", str(repo / "build" / "ark"))
    if not pathlib.Path(ark_bin).exists():
        pytest.fail(f"{ark_bin} is missing: build first or set ARK_BIN")
    model_dir = tmp_path / "model"
    subprocess.run([ark_bin, "make-model", "--out", str(model_dir), "--seed", "5", "--arch", "qwen3-moe",
                    "--hidden", "128", "--heads", "4", "--kv-heads", "2", "--intermediate", "256", "--layers", "2",
                    "--vocab", "160", "--experts", "8", "--experts-per-tok", "2", "--moe-intermediate", "64",
                    "--norm-topk-prob", "true", "--group-size", "32", "--asym"], check=True, capture_output=True)
    cfg = EngineArgs(model=str(model_dir), dtype="float32", enforce_eager=True, max_model_len=64,
                     skip_tokenizer_init=True).create_engine_config()
    assert cfg.model_config.quantization == "ark", "vLLM must pick ark for the MoE checkpoint by itself"
    cfg.quant_config.compute = "exact"
    with set_current_vllm_config(cfg):
        model = get_model(vllm_config=cfg)
    ref = reference_model.Reference(model_dir)
    layers = {m.layer_name: m for m in model.modules() if isinstance(m, RoutedExperts)}
    gen = torch.Generator().manual_seed(13)
    checked = 0
    for i, L in enumerate(ref.layers):
        if "experts" not in L:
            continue
        experts = next(m for name, m in layers.items() if name.startswith(f"model.layers.{i}."))
        assert isinstance(experts.quant_method, ArkMoEMethod), experts.quant_method
        runner = next(m for m in model.modules() if getattr(m, "routed_experts", None) is experts)
        x = torch.randn(7, 128, generator=gen)
        logits = x.to(torch.float64) @ torch.as_tensor(L["router"]).T
        topk_weights, topk_ids = runner.router.select_experts(hidden_states=x, router_logits=logits.float())
        got = experts.forward_modular(x, topk_weights, topk_ids).to(torch.float64).numpy()
        want = ref.sparse_mlp(x.to(torch.float64).numpy(), {**L, "shared": None})
        err = np.abs(got - want).max()
        assert err <= 1e-4 * np.abs(want).max(), f"layer {i}: max error {err:.3g} (max {np.abs(want).max():.3g})"
        checked += 1
    assert checked == 2
