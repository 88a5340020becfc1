"""CUDA tensors in ark.QuantLinear: post_init packs on the buffers' GPU, forward runs on torch's current stream.

The C++ layer (ark._C.CudaLayer, over ark/cuda_linear.h) takes the checkpoint tensors from host memory, packs
them once and keeps the packed copy on the device. forward allocates y and the kernels' workspace from torch's
caching allocator, on x's device and stream, so nothing in ark allocates per call, concurrent forwards on
several streams never share scratch, and the call can be captured in a CUDA graph (torch.cuda.graph).
The checkpoint buffers stay where they were loaded (state_dict keeps working without a re-encode).
"""

import torch

from . import _raw
from ._extension import _C
from .formats import has_g_idx

HALF_DTYPES = (torch.float16, torch.bfloat16)


def available():
    """True when ark was built with its CUDA backend (nvcc found at build time)."""
    return hasattr(_C, "CudaLayer")


def is_cuda_layer(layer):
    return available() and isinstance(layer, _C.CudaLayer)


def post_init(module):
    """Packs `module` (an ark.QuantLinear whose buffers are on a CUDA device) onto that device."""
    if not available():
        raise ValueError(
            "ark QuantLinear: the buffers are on a CUDA device but ark was built without its CUDA backend "
            "(rebuild with nvcc on the PATH, ARK_BUILD_CUDA=ON)"
        )
    names = module._checkpoint_names()
    device = module.qweight.device
    for name in names:
        if getattr(module, name).device != device:
            raise ValueError(f"{name}: on {getattr(module, name).device}, but qweight is on {device}")
    index = device.index if device.index is not None else torch.cuda.current_device()
    layer = _C.CudaLayer(
        module.infeatures,
        module.outfeatures,
        module.bits,
        module.group_size,
        module.sym,
        module._bias_in_kernel,
        has_g_idx(module._layout),
        large_m_threshold=256,
        kernel="auto",
        device=index,
    )
    t = {n: getattr(module, n).detach().cpu().contiguous() for n in names}
    layer.load_checkpoint(
        module._layout,
        _raw.raw(t["qweight"]),
        _raw.raw(t["qzeros"]),
        _raw.raw(t["scales"]),
        _raw.raw(t["g_idx"]) if "g_idx" in t else None,
    )
    if module._bias_in_kernel:
        # Held in a name until load_bias has copied it: raw() keeps only the pointer, and a temporary would be
        # freed before the call reads it (garbage biases on the device machine's first run of these tests).
        bias = module.bias.detach().float().cpu().contiguous()
        layer.load_bias(_raw.raw(bias))
    layer.post_init()
    module._layer = layer
    module._scales_dtype = module.scales.dtype
    return module


def forward(module, x):
    """y = x @ W.T + bias on x's device and torch's current stream there (fp16 or bf16 x)."""
    layer = module._layer
    if x.device != module.qweight.device:
        raise ValueError(f"x: on {x.device}, but the layer was packed on {module.qweight.device}")
    if x.dtype not in HALF_DTYPES:
        raise TypeError(f"x: dtype {x.dtype} is not supported on CUDA (expected float16 or bfloat16)")
    if x.dim() == 0 or x.shape[-1] != module.infeatures:
        raise ValueError(f"x: expected shape [..., {module.infeatures}], got {list(x.shape)}")
    if torch.is_grad_enabled() and x.requires_grad:
        raise ValueError("ark QuantLinear on CUDA: backward is not implemented yet (run under torch.no_grad())")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, module.infeatures).contiguous()
    m = x2.shape[0]
    y = torch.empty((m, module.outfeatures), dtype=x.dtype, device=x.device)
    if m > 0:
        ws_bytes = layer.workspace_bytes(m)
        ws = torch.empty(ws_bytes, dtype=torch.uint8, device=x.device) if ws_bytes else None
        stream = torch.cuda.current_stream(x.device).cuda_stream
        layer.forward(
            x2.data_ptr(),
            y.data_ptr(),
            m,
            _raw.dtype_name(x.dtype),
            stream,
            ws.data_ptr() if ws is not None else 0,
            ws_bytes,
        )
    y = y.reshape(*lead, module.outfeatures)
    if module.bias is not None and not module._bias_in_kernel:
        y = y + module.bias.to(y.dtype)
    return y
