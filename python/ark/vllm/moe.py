"""ArkMoEMethod: vLLM's fused-MoE method contract over one ark.QuantMoE.

vLLM's RoutedExperts layer (built by FusedMoEFactory) holds every expert of one MoE block in stacked
parameters: w13 = gate and up side by side along the output (gate first), w2 = down. create_weights registers
the checkpoint tensors in their on-disk orientation (K first, as GPTQ/AWQ store them), so vLLM's own MoE weight
loader places each expert's gate / up / down tensors (and one tensor-parallel rank's slice) without conversion.
With E experts, H the hidden size, I this rank's intermediate size, b bits, G groups along the input:

  GPTQ layouts  w13_qweight [E, H*b/32, 2I]  w13_qzeros [E, G13, 2I*b/32]  w13_scales [E, G13, 2I]  w13_g_idx [E, H]
                w2_qweight  [E, I*b/32, H]   w2_qzeros  [E, G2, H*b/32]    w2_scales  [E, G2, H]    w2_g_idx  [E, I]
  AWQ layout    w13_qweight [E, H, 2I/8]     w13_qzeros [E, G13, 2I/8]     (scales as above, no g_idx)
                w2_qweight  [E, I, H/8]      w2_qzeros  [E, G2, H/8]

The parameters carry is_transposed=True (vLLM's loader then splits w13 along dim 1 and w2 along dim 0) and
quant_method "group" ("channel" for per-channel, whose w2 scales are not split). vLLM's loader only places
tensors whose names hold "weight", "scale" or "zero", so g_idx has a loader of its own.

process_weights_after_loading cuts each expert's gate, up and down tensors out of the stacks, loads them into
one ark.QuantMoE (which packs them), and frees the stacks. apply receives the routing vLLM's router computed
(top_k ids and weights, after its scoring function, renormalization and routed scaling) and runs
QuantMoE.forward_routed in fp32, converting x's dtype around the call. What ark's expert MLP is not
(a gated SiLU MLP without biases or clamping, router weights applied to the output) is refused when the layer
is built, with the reason.
"""

import math

import torch
from vllm.model_executor.layers.fused_moe import FusedMoEMethodBase
from vllm.model_executor.utils import set_weight_attrs

from ..formats import has_g_idx, layout_of
from ..moe import QuantMoE

_STACKS = ("w13_qweight", "w13_qzeros", "w13_scales", "w13_g_idx", "w2_qweight", "w2_qzeros", "w2_scales",
           "w2_g_idx")


def unsupported(layer):
    """The reason ark cannot run this RoutedExperts layer's expert MLP, or None."""
    moe = layer.moe_config
    act = getattr(moe.activation, "value", str(moe.activation))
    if not moe.is_act_and_mul or act != "silu":
        return f"activation {act!r} (gated={moe.is_act_and_mul}); ark's experts compute down(silu(gate) * up)"
    if moe.has_bias:
        return "expert biases; ark's experts have none"
    for name in ("swiglu_limit", "swiglu_alpha", "swiglu_beta"):
        if getattr(layer, name, None) is not None:
            return f"{name}={getattr(layer, name)}; ark's SiLU gate has no clamp or scaling"
    if layer.apply_router_weight_on_input:
        return "router weights applied to the input; ark applies them to each expert's output"
    return None


def _expert_loader(layer, prefix):
    """g_idx's loader (vLLM's MoE loader skips names without weight/scale/zero): one [K] row per local expert.
    gate and up share their input, so they must bring the same permutation; w13 keeps one."""

    def load(param, loaded_weight, weight_name, shard_id, expert_id, return_success=False):
        local = layer._map_global_expert_id_to_local_expert_id(expert_id)
        if local == -1:
            return False if return_success else None  # another expert-parallel rank's expert
        row = param.data[local]
        tp_size, tp_rank = layer.moe_config.tp_size, layer.moe_config.tp_rank
        if shard_id == "w2" and tp_size > 1 and loaded_weight.numel() == row.numel() * tp_size:
            # down_proj's input is split over the ranks: this rank's slice, its groups renumbered from 0.
            # (Only trivial g_idx can be split; process_weights_after_loading checks.)
            k = row.numel()
            groups_before = tp_rank * k // param.ark_group if param.ark_group else 0
            loaded_weight = loaded_weight.narrow(0, tp_rank * k, k).to(torch.int64) - groups_before
        if loaded_weight.numel() != row.numel():
            raise ValueError(f"ark: {prefix}: {weight_name} of expert {expert_id} has {loaded_weight.numel()} "
                             f"entries; expected {row.numel()}")
        seen = param.ark_seen
        if shard_id in ("w1", "w3") and (local in seen) and not torch.equal(row, loaded_weight.to(row.dtype)):
            raise ValueError(f"ark: {prefix}: expert {expert_id}'s gate and up have different g_idx; "
                             "the fused w13 can apply only one")
        row.copy_(loaded_weight.to(row.dtype))
        seen.add(local)
        return True if return_success else None

    return load


class ArkMoEMethod(FusedMoEMethodBase):
    """Every routed expert of one MoE layer (one scheme for all) on ark's fused MoE operator."""

    def __init__(self, moe, bits, group_size, sym, packing_format, compute="auto"):
        super().__init__(moe)
        self.bits = bits
        self.group_size = group_size
        self.sym = sym
        self.packing_format = packing_format
        self.layout = layout_of(packing_format)
        self.compute = compute

    def __repr__(self):
        return (f"ArkMoEMethod(bits={self.bits}, group_size={self.group_size}, sym={self.sym}, "
                f"packing_format={self.packing_format!r})")

    def get_fused_moe_quant_config(self, layer):
        return None  # no vLLM kernel runs these weights

    def create_weights(self, layer, num_experts, hidden_size, intermediate_size_per_partition, params_dtype,
                       **extra_weight_attrs):
        prefix = getattr(layer, "layer_name", "") or "experts"
        why = unsupported(layer)
        if why:
            raise ValueError(f"ark: {prefix}: the MoE layer has {why}")
        E, H, I = num_experts, hidden_size, intermediate_size_per_partition
        b, g = self.bits, self.group_size
        for name, k in (("hidden_size", H), ("intermediate size per rank", I)):
            if g != -1 and k % g:
                raise ValueError(f"ark: {prefix}: {name} {k} is not a multiple of group_size {g}; expected "
                                 "whole groups (choose a tensor-parallel size that splits at group boundaries)")
            if self.layout == "awq" and k % 8 or self.layout != "awq" and (k * b) % 32:
                per = 8 if self.layout == "awq" else 32 // math.gcd(32, b)
                raise ValueError(f"ark: {prefix}: {name} {k} does not fill whole int32 words of {b}-bit "
                                 f"{self.packing_format} codes; expected a multiple of {per}")
        if self.layout == "awq" and b != 4:
            raise ValueError(f"ark: {prefix}: AWQ packing holds 4-bit codes, not {b}")
        G13, G2 = (1, 1) if g == -1 else (H // g, I // g)
        if self.layout == "awq":
            shapes = {"w13_qweight": (E, H, 2 * I // 8), "w13_qzeros": (E, G13, 2 * I // 8),
                      "w2_qweight": (E, I, H // 8), "w2_qzeros": (E, G2, H // 8)}
        else:
            shapes = {"w13_qweight": (E, H * b // 32, 2 * I), "w13_qzeros": (E, G13, 2 * I * b // 32),
                      "w2_qweight": (E, I * b // 32, H), "w2_qzeros": (E, G2, H * b // 32)}
        extra_weight_attrs.update({"quant_method": "channel" if g == -1 else "group", "is_transposed": True})
        for name, shape in shapes.items():
            p = torch.nn.Parameter(torch.empty(shape, dtype=torch.int32), requires_grad=False)
            layer.register_parameter(name, p)
            set_weight_attrs(p, extra_weight_attrs)
        for name, shape in (("w13_scales", (E, G13, 2 * I)), ("w2_scales", (E, G2, H))):
            p = torch.nn.Parameter(torch.empty(shape, dtype=params_dtype), requires_grad=False)
            layer.register_parameter(name, p)
            set_weight_attrs(p, extra_weight_attrs)
        if has_g_idx(self.layout):
            row_split = layer.moe_config.tp_size > 1
            for name, k in (("w13_g_idx", H), ("w2_g_idx", I)):
                # Pre-filled with trivial groups, so exports that omit g_idx (or carry the trivial one) load.
                group = k if g == -1 else g
                trivial = (torch.arange(k, dtype=torch.int64) // group).to(torch.int32)
                p = torch.nn.Parameter(trivial.expand(E, k).clone(), requires_grad=False)
                layer.register_parameter(name, p)
                set_weight_attrs(p, {"weight_loader": _expert_loader(layer, prefix)})
                p.ark_seen = set()
                p.ark_group = 0 if g == -1 else g
            layer.ark_row_split = row_split
        layer.ark_sizes = (E, H, I)

    def process_weights_after_loading(self, layer):
        E, H, I = layer.ark_sizes
        b = self.bits
        awq = self.layout == "awq"
        t = {n: getattr(layer, n).data for n in _STACKS if hasattr(layer, n)}
        if "w2_g_idx" in t and layer.ark_row_split:
            g = I if self.group_size == -1 else self.group_size
            trivial = (torch.arange(I, dtype=torch.int64) // g).to(torch.int32)
            if not torch.equal(t["w2_g_idx"], trivial.expand(E, I)):
                raise ValueError(f"ark: {layer.layer_name}: act-order down_proj experts cannot be split along "
                                 "their input (tensor parallelism); serve them with tensor_parallel_size=1")
        # Column offsets of up's half inside w13's packed tensors.
        half_q = 2 * I // 8 // 2 if awq else I
        half_z = I // 8 if awq else I * b // 32
        moe = QuantMoE(H, I, E, layer.top_k, compute=self.compute)
        for e in range(E):
            gate = {"qweight": t["w13_qweight"][e][:, :half_q], "qzeros": t["w13_qzeros"][e][:, :half_z],
                    "scales": t["w13_scales"][e][:, :I]}
            up = {"qweight": t["w13_qweight"][e][:, half_q:], "qzeros": t["w13_qzeros"][e][:, half_z:],
                  "scales": t["w13_scales"][e][:, I:]}
            down = {"qweight": t["w2_qweight"][e], "qzeros": t["w2_qzeros"][e], "scales": t["w2_scales"][e]}
            if "w13_g_idx" in t:
                gate["g_idx"] = up["g_idx"] = t["w13_g_idx"][e]
                down["g_idx"] = t["w2_g_idx"][e]
            moe.load_expert(e, gate, up, down, bits=b, group_size=self.group_size, sym=self.sym,
                            packing_format=self.packing_format)
        moe.post_init()
        for name in t:
            delattr(layer, name)  # the packed copy is the only one kept
        # Outside the module tree: nothing for vLLM to load, move or compile into.
        layer.__dict__["_ark_moe"] = moe

    def apply(self, layer, x, topk_weights, topk_ids, shared_experts, shared_experts_input):
        moe = layer.__dict__["_ark_moe"]
        if layer.expert_map is not None:
            # Expert parallelism: the router's ids are global; this rank holds a subset. Ids of other ranks map
            # to -1 and are given weight 0 (their rank adds their part).
            local = layer.expert_map[topk_ids.long()]
            topk_weights = torch.where(local >= 0, topk_weights, torch.zeros_like(topk_weights))
            topk_ids = local.clamp(min=0)
        return moe.forward_routed(x, topk_ids, topk_weights)
