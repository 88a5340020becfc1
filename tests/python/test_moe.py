"""ark.QuantMoE against a torch float64 reference: routing as transformers computes it (softmax then top-k with
optional renormalization, or top-k then softmax), each expert's SiLU-gated MLP from the dequantized checkpoint
tensors (decoded by the independent torch decoder of quant_linear_reference), a shared expert with its sigmoid
gate, mixed schemes across experts, and bad input."""

import pytest
import torch
import torch.nn.functional as F

import ark
from quant_linear_reference import report_seed  # noqa: F401 (autouse: prints the seed)
from quant_linear_reference import case_id, decode_reference, generator

H, I, E, SHARED_I = 96, 64, 5, 80

# (bits, group_size, sym, packing_format) per expert, cycled: gate/up/down of expert e take SCHEMES[e], [e+1],
# [e+2] so the experts mix bit widths, group sizes, layouts and fused / unfused gate-up.
SCHEMES = [
    (4, 32, True, "auto_round:auto_gptq"),
    (2, 32, False, "auto_round"),
    (8, -1, False, "auto_round:auto_gptq"),
    (4, 64, False, "auto_round:auto_awq"),
    (3, 32, True, "auto_round:gptq"),
]


def _linear(gen, out_f, in_f, scheme):
    bits, g, sym, fmt = scheme
    w = torch.randn((out_f, in_f), generator=gen) * 0.05
    t = ark.quantize_weight(w, bits=bits, group_size=g, sym=sym, packing_format=fmt)
    dense = decode_reference(t, bits, g, fmt, in_f, out_f)
    return t, scheme, dense


def _module(t, scheme, dense):
    bits, g, sym, fmt = scheme
    q = ark.QuantLinear(bits, g, dense.shape[1], dense.shape[0], False, sym=sym, packing_format=fmt,
                        weight_dtype=torch.float16)
    q.load_state_dict(t, strict=False)
    return q


def _build(gen, routing="softmax_topk", norm=False, top_k=2, shared=False, gated=False, compute="exact"):
    """A QuantMoE and, per expert, its dense fp64 [gate, up, down(, shared_gate)]. Expert 0 is loaded from dicts
    of checkpoint tensors (one scheme, given by keyword); the others from ark.QuantLinear modules, so each
    linear brings its own scheme."""
    moe = ark.QuantMoE(H, I, E, top_k, routing=routing, norm_topk_prob=norm,
                       shared_intermediate_size=SHARED_I if shared else 0, compute=compute)
    experts = []
    for e in range(E + (1 if shared else 0)):
        inter = I if e < E else SHARED_I
        schemes = [SCHEMES[0]] * 3 if e == 0 else [SCHEMES[e % 5], SCHEMES[(e + 1) % 5], SCHEMES[(e + 2) % 5]]
        parts = [_linear(gen, inter, H, schemes[0]), _linear(gen, inter, H, schemes[1]),
                 _linear(gen, H, inter, schemes[2])]
        experts.append([p[2] for p in parts])
        if e == 0:
            bits, g, sym, fmt = SCHEMES[0]
            moe.load_expert(0, *(p[0] for p in parts), bits=bits, group_size=g, sym=sym, packing_format=fmt)
        elif e < E:
            moe.load_expert(e, *(_module(*p) for p in parts))
        else:
            sg = torch.randn(H, generator=gen) * 0.2 if gated else None
            moe.load_shared_expert(*(_module(*p) for p in parts), shared_gate=sg)
            experts[-1].append(sg)
    moe.post_init()
    return moe, experts


def _route_ref(logits, routing, norm, k):
    l64 = logits.to(torch.float64)
    if routing == "softmax_topk":
        p = F.softmax(l64, dim=-1)
        w, ids = torch.topk(p, k, dim=-1)
        if norm:
            w = w / w.sum(dim=-1, keepdim=True)
    else:
        v, ids = torch.topk(l64, k, dim=-1)
        w = F.softmax(v, dim=-1)
    return ids, w


def _expert_ref(x, dense):
    g, u, d = dense[:3]
    return (F.silu(x @ g.T) * (x @ u.T)) @ d.T


def _moe_ref(x, ids, w, experts, shared):
    x = x.to(torch.float64)
    y = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(ids.shape[1]):
            y[t] += w[t, j] * _expert_ref(x[t:t + 1], experts[int(ids[t, j])])[0]
    if shared:
        s = experts[E]
        out = _expert_ref(x, s)
        if s[3] is not None:
            out = out * torch.sigmoid(x @ s[3].to(torch.float64))[:, None]
        y += out
    return y


def _close(y, ref, compute):
    tol = 2e-4 if compute == "exact" else 3e-2
    err = (y.to(torch.float64) - ref).abs().max().item()
    assert err <= tol * ref.abs().max().item(), (err, ref.abs().max().item())


@pytest.mark.parametrize("routing,norm", [("softmax_topk", False), ("softmax_topk", True), ("topk_softmax", False)])
@pytest.mark.parametrize("compute", ["exact", "int8"])
def test_forward_matches_float64_reference(routing, norm, compute):
    gen = generator(case_id("moe", routing, norm, compute))
    moe, experts = _build(gen, routing, norm, compute=compute)
    for T in (1, 5, 130):
        x = torch.randn((T, H), generator=gen)
        logits = torch.randn((T, E), generator=gen) * 2
        ids, w = _route_ref(logits, routing, norm, 2)
        y = moe(x, logits)
        assert y.shape == x.shape and y.dtype == x.dtype
        _close(y, _moe_ref(x, ids, w, experts, False), compute)
        got_ids, got_w = moe.route(logits)
        assert torch.equal(got_ids, ids)
        torch.testing.assert_close(got_w.to(torch.float64), w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("gated", [True, False])
def test_shared_expert_and_forward_routed(gated):
    gen = generator(case_id("moe-shared", gated))
    moe, experts = _build(gen, norm=False, top_k=3, shared=True, gated=gated)
    x = torch.randn((7, H), generator=gen)
    ids = torch.randint(0, E, (7, 3), generator=gen)
    w = torch.rand((7, 3), generator=gen)
    y = moe.forward_routed(x, ids, w)
    _close(y, _moe_ref(x, ids, w.to(torch.float64), experts, True), "exact")
    assert ("sigmoid gate" in moe.describe()) == gated
    # bf16 activations in, bf16 out (computed in fp32); leading dims are kept.
    yb = moe.forward_routed(x.to(torch.bfloat16).reshape(7, 1, H), ids.reshape(7, 1, 3), w.reshape(7, 1, 3))
    assert yb.dtype == torch.bfloat16 and yb.shape == (7, 1, H)


def test_bad_input_raises():
    with pytest.raises(ValueError):
        ark.QuantMoE(H, I, 4, 5)  # top_k > num_experts
    with pytest.raises(ValueError):
        ark.QuantMoE(H, I, 4, 2, routing="sigmoid")
    gen = generator(case_id("moe-bad"))
    moe, _ = _build(gen)
    with pytest.raises(ValueError):
        moe(torch.randn(2, H + 1), torch.randn(2, E))
    with pytest.raises(ValueError):
        moe(torch.randn(2, H), torch.randn(3, E))
    with pytest.raises(ValueError):
        moe.forward_routed(torch.randn(1, H), torch.tensor([[0, E]]), torch.ones(1, 2))
    fresh = ark.QuantMoE(H, I, E, 2)
    with pytest.raises(ValueError):
        fresh.post_init()  # no expert loaded
    t, s, _ = _linear(gen, I, H, SCHEMES[0])
    with pytest.raises(ValueError):
        fresh.load_expert(0, t, t, t)  # down has gate's shape
