"""ark::quant_linear: a packed layer's forward as a registered torch operator.

Frameworks that trace or compile a model (torch.compile with fullgraph=True, vLLM's compiled and CUDA-graph
modes) cannot look inside a pybind11 call that takes raw data pointers: dynamo would break the graph there. A
custom operator with a fake (meta) implementation is opaque to the tracer yet tells it the output's shape and
dtype, so the compiled graph calls ark's kernel as one node.

An operator's arguments can only be tensors and plain values, never the packed C++ layer itself, so each packed
layer is registered here under an integer handle (a weak reference: the table never keeps a layer alive) and the
operator takes the handle. The table is written when a layer is packed, never by a forward.

    y = ark.ops.quant_linear(x, handle, out_features, bias)   # x [..., K] -> y [..., N] (+ bias)
    y = ark.ops.call(x, handle, out_features, bias)           # the same; the operator only while compiling

On torch < 2.4 (Debian's 1.13) there is no torch.library.custom_op: quant_linear is then a plain Python
function with the same signature and result (eager only; HAS_CUSTOM_OP says which one is in use).
"""

import itertools
import weakref
from typing import Optional

import torch

from . import _cuda

_modules = {}  # handle -> weakref to a packed ark.QuantLinear
_handles = itertools.count(1)


def register(module):
    """Gives `module` (an ark.QuantLinear, packed) a handle; the entry goes when the module does."""
    handle = next(_handles)
    _modules[handle] = weakref.ref(module)
    weakref.finalize(module, _modules.pop, handle, None)
    return handle


def _lookup(handle):
    ref = _modules.get(handle)
    module = ref() if ref is not None else None
    if module is None:
        raise RuntimeError(
            f"ark::quant_linear: handle {handle} names no packed ark layer (it was never registered, or the "
            "layer was freed); pack the layer with ark_post_init before calling it"
        )
    return module


def _forward(x, handle, out_features, bias):
    module = _lookup(handle)
    if _cuda.is_cuda_layer(module._layer):
        y = _cuda.forward(module, x)  # on x's device and torch's current stream, capturable in a CUDA graph
    else:
        y = module._run(x)
    if y.shape[-1] != out_features:
        raise ValueError(f"ark::quant_linear: handle {handle} has {y.shape[-1]} outputs, the call says {out_features}")
    if bias is not None:
        y.add_(bias.to(y.dtype))
    return y


def _fake(x, handle, out_features, bias):
    return x.new_empty((*x.shape[:-1], out_features))


def _version():
    parts = torch.__version__.split("+")[0].split(".")
    return int(parts[0]), int(parts[1])


HAS_CUSTOM_OP = _version() >= (2, 4) and hasattr(torch.library, "custom_op")

if HAS_CUSTOM_OP:

    @torch.library.custom_op("ark::quant_linear", mutates_args=())
    def quant_linear(x: torch.Tensor, handle: int, out_features: int, bias: Optional[torch.Tensor]) -> torch.Tensor:
        """y = x @ W.T (+ bias) with the packed weight W of layer `handle`; x [..., K] -> y [..., out_features]."""
        return _forward(x, handle, out_features, bias)

    quant_linear.register_fake(_fake)

else:

    def quant_linear(x, handle, out_features, bias=None):
        """y = x @ W.T (+ bias) with the packed weight W of layer `handle` (plain call: torch < 2.4)."""
        return _forward(x, handle, out_features, bias)


def _compiling():
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling and is_compiling())


def call(x, handle, out_features, bias=None):
    """What layers call: the operator while torch.compile traces (one opaque node in the graph), the same
    computation called directly otherwise. In eager mode the operator's dispatch only adds cost (about 10 us a
    call on the 2-core dev machine, as much as a 512x512 int4 decode kernel), and capture into a CUDA graph
    records the same kernels either way."""
    if HAS_CUSTOM_OP and _compiling():
        return quant_linear(x, handle, out_features, bias)
    return _forward(x, handle, out_features, bias)


__all__ = ["HAS_CUSTOM_OP", "call", "quant_linear", "register"]
