"""Checkpoint tensors from float weights, with ark's round-to-nearest quantizer, and back to dense weights.

quantize_weight makes the tensors an AutoRound export holds for one Linear layer (RTN, i.e. AutoRound with
iters=0; include/ark/format.h states the rules), so tests and benchmarks load real on-disk tensors rather than
random words. dequantize_weight is the C++ decoder's dense view of such tensors.
"""

import torch

from ._extension import _C
from ._raw import FLOAT_DTYPES, dtype_name, raw
from .formats import has_g_idx, layout_of


def _allocate(shapes, layout, scale_dtype):
    out = {
        "qweight": torch.empty(shapes["qweight"], dtype=torch.int32),
        "qzeros": torch.empty(shapes["qzeros"], dtype=torch.int32),
        "scales": torch.empty(shapes["scales"], dtype=scale_dtype),
    }
    if has_g_idx(layout):
        out["g_idx"] = torch.empty(shapes["g_idx"], dtype=torch.int32)
    return out


def quantize_weight(
    weight,
    bits=4,
    group_size=128,
    sym=True,
    packing_format="auto_round:auto_gptq",
    act_order_perm=None,
    scale_dtype=torch.float16,
):
    """Quantizes a [out_features, in_features] float weight; returns {"qweight", "qzeros", "scales"[, "g_idx"]}.

    GPTQ layouts always get a g_idx (trivial without act_order_perm), as AutoRound writes it. act_order_perm is
    a permutation of the input channels in quantization order (group j holds channels perm[j*g:(j+1)*g]).
    Scales default to fp16, what AutoRound exports.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError("weight: expected a 2-D tensor [out_features, in_features]")
    if weight.dtype not in FLOAT_DTYPES:
        raise TypeError(f"weight: dtype {weight.dtype} is not float32, bfloat16 or float16")
    if scale_dtype not in FLOAT_DTYPES:
        raise TypeError(f"scale_dtype: {scale_dtype} is not float32, bfloat16 or float16")
    layout = layout_of(packing_format)
    n, k = weight.shape
    shapes = _C.packed_shapes(bits, group_size, sym, layout, k, n)
    out = _allocate(shapes, layout, scale_dtype)
    w = weight.detach().contiguous()
    perm = None
    if act_order_perm is not None:
        perm = torch.as_tensor(act_order_perm, dtype=torch.int32).contiguous()
    _C.quantize_rtn(
        raw(w),
        bits,
        group_size,
        sym,
        layout,
        None if perm is None else raw(perm),
        dtype_name(scale_dtype),
        raw(out["qweight"]),
        raw(out["qzeros"]),
        raw(out["scales"]),
        raw(out["g_idx"]) if "g_idx" in out else None,
    )
    return out


def dequantize_weight(tensors, bits, group_size, sym, packing_format, in_features, out_features):
    """The dense fp32 weight [out_features, in_features] that checkpoint tensors stand for."""
    layout = layout_of(packing_format)
    out = torch.empty((out_features, in_features), dtype=torch.float32)
    g_idx = tensors.get("g_idx") if has_g_idx(layout) else None
    keep = [t.contiguous() for t in (tensors["qweight"], tensors["qzeros"], tensors["scales"])]
    g = None if g_idx is None else g_idx.contiguous()
    _C.dequantize_checkpoint(
        bits,
        group_size,
        sym,
        layout,
        in_features,
        out_features,
        raw(keep[0]),
        raw(keep[1]),
        raw(keep[2]),
        None if g is None else raw(g),
        raw(out),
    )
    return out
