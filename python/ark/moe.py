"""QuantMoE: a fused quantized mixture-of-experts block (Qwen3-MoE, Qwen2-MoE, Mixtral) over ark's C++ operator.

Per token, the router logits pick top_k experts; each computes down(silu(gate(x)) * up(x)) with its three
linears held packed (any scheme ark supports, expert by expert), and the block returns their weighted sum,
plus an optional shared expert scaled by sigmoid(x . shared_gate). Tokens are grouped by expert so each
expert's weights stream once per call, and the experts run in parallel on ark's thread pool.

    moe = ark.QuantMoE(hidden_size=2048, intermediate_size=768, num_experts=128, top_k=8, norm_topk_prob=True)
    for e in range(128):
        moe.load_expert(e, gate=tensors_g, up=tensors_u, down=tensors_d, bits=4, group_size=128)
    moe.post_init()
    y = moe(x, router_logits)                          # routing as transformers computes it
    y = moe.forward_routed(x, topk_ids, topk_weights)  # routing given

A linear is either an ark.QuantLinear (its scheme and checkpoint tensors are taken) or a dict of checkpoint
tensors {"qweight", "qzeros", "scales"[, "g_idx"]} as ark.quantize_weight returns them, in the scheme given by
the keyword arguments of load_expert. Inference only: forward runs under no autograd.
"""

import torch
from torch import nn

from . import _raw
from ._extension import _C
from .formats import has_g_idx, layout_of
from .qlinear import QuantLinear

_ROUTINGS = ("softmax_topk", "topk_softmax")


def _linear_tuple(name, linear, bits, group_size, sym, packing_format, keep):
    """(bits, group_size, sym, layout, qweight, qzeros, scales, g_idx) as the extension takes a linear."""
    if isinstance(linear, QuantLinear):
        tensors = linear._checkpoint_tensors()
        bits, group_size, sym, packing_format = linear.bits, linear.group_size, linear.sym, linear.packing_format
    elif isinstance(linear, dict):
        tensors = linear
    else:
        raise TypeError(f"{name}: expected an ark.QuantLinear or a dict of checkpoint tensors")
    layout = layout_of(packing_format)
    for key in ("qweight", "qzeros", "scales"):
        if key not in tensors:
            raise ValueError(f"{name}: the checkpoint tensor {key!r} is missing")
    t = [tensors[k].contiguous() for k in ("qweight", "qzeros", "scales")]
    g = tensors.get("g_idx") if has_g_idx(layout) else None
    if g is not None:
        g = g.to(torch.int32).contiguous()
    keep.extend(t + ([g] if g is not None else []))
    return (bits, group_size, bool(sym), layout, *(_raw.raw(x) for x in t), None if g is None else _raw.raw(g))


class QuantMoE(nn.Module):
    """Fused quantized MoE block; see the module docstring."""

    def __init__(
        self,
        hidden_size,
        intermediate_size,
        num_experts,
        top_k,
        *,
        routing="softmax_topk",
        norm_topk_prob=False,
        shared_intermediate_size=0,
        compute="auto",
        num_threads=0,
    ):
        super().__init__()
        if routing not in _ROUTINGS:
            raise ValueError(f"routing: {routing!r} is not one of {_ROUTINGS}")
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_experts = num_experts
        self.top_k = top_k
        self.routing = routing
        self.norm_topk_prob = bool(norm_topk_prob)
        self.shared_intermediate_size = shared_intermediate_size
        # Raises ark.ArkError (a ValueError) naming a bad field (top_k > num_experts, ...).
        self._moe = _C.Moe(
            hidden_size,
            intermediate_size,
            num_experts,
            top_k,
            routing,
            self.norm_topk_prob,
            shared_intermediate_size,
            compute,
            "",
            num_threads,
        )

    def load_expert(self, e, gate, up, down, *, bits=4, group_size=128, sym=True,
                    packing_format="auto_round:auto_gptq"):
        """Loads (and packs) routed expert e's gate_proj, up_proj and down_proj."""
        keep = []
        args = [_linear_tuple(n, l, bits, group_size, sym, packing_format, keep)
                for n, l in (("gate", gate), ("up", up), ("down", down))]
        self._moe.load_expert(e, *args)

    def load_shared_expert(self, gate, up, down, shared_gate=None, *, bits=4, group_size=128, sym=True,
                           packing_format="auto_round:auto_gptq"):
        """Loads the shared expert and, optionally, its gate (hidden_size values; Qwen2-MoE's shared_expert_gate)."""
        keep = []
        args = [_linear_tuple(n, l, bits, group_size, sym, packing_format, keep)
                for n, l in (("shared gate", gate), ("shared up", up), ("shared down", down))]
        g = None
        if shared_gate is not None:
            g = shared_gate.detach().reshape(-1).to(torch.float32).contiguous()
        self._moe.load_shared_expert(*args, None if g is None else _raw.raw(g))

    def post_init(self):
        self._moe.post_init()
        return self

    def _rows(self, x):
        if x.shape[-1] != self.hidden_size:
            raise ValueError(f"x: last dimension {x.shape[-1]} is not hidden_size={self.hidden_size}")
        return x.detach().reshape(-1, self.hidden_size).to(torch.float32).contiguous()

    def forward(self, x, router_logits):
        """x [..., hidden_size], router_logits [..., num_experts] -> [..., hidden_size] in x's dtype."""
        xr = self._rows(x)
        logits = router_logits.detach().reshape(-1, self.num_experts).to(torch.float32).contiguous()
        y = torch.empty_like(xr)
        self._moe.forward(_raw.raw(xr), _raw.raw(logits), _raw.raw(y))
        return y.reshape(x.shape).to(x.dtype)

    def forward_routed(self, x, topk_ids, topk_weights):
        """x [..., hidden_size], topk_ids and topk_weights [..., top_k] -> [..., hidden_size] in x's dtype."""
        xr = self._rows(x)
        ids = topk_ids.detach().reshape(-1, self.top_k).to(torch.int32).contiguous()
        w = topk_weights.detach().reshape(-1, self.top_k).to(torch.float32).contiguous()
        y = torch.empty_like(xr)
        self._moe.forward_routed(_raw.raw(xr), _raw.raw(ids), _raw.raw(w), _raw.raw(y))
        return y.reshape(x.shape).to(x.dtype)

    def route(self, router_logits):
        """(topk_ids int64, topk_weights float32), each [T, top_k], as forward routes."""
        logits = router_logits.detach().reshape(-1, self.num_experts).to(torch.float32).contiguous()
        ids = torch.empty((logits.shape[0], self.top_k), dtype=torch.int32)
        w = torch.empty((logits.shape[0], self.top_k), dtype=torch.float32)
        self._moe.route(_raw.raw(logits), _raw.raw(ids), _raw.raw(w))
        return ids.to(torch.int64), w

    def describe(self):
        return self._moe.describe()

    @property
    def packed_bytes(self):
        return self._moe.packed_bytes

    def extra_repr(self):
        return (f"hidden_size={self.hidden_size}, intermediate_size={self.intermediate_size}, "
                f"num_experts={self.num_experts}, top_k={self.top_k}, routing={self.routing}, "
                f"norm_topk_prob={self.norm_topk_prob}, shared_intermediate_size={self.shared_intermediate_size}")
