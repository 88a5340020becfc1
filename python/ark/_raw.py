"""Tensors as the extension takes them: (data pointer, shape, strides in elements, safetensors dtype name).

The extension never sees a torch object, so it links no libtorch and works with any torch version. The caller
keeps the tensor alive for the duration of the call.
"""

import torch

DTYPE_NAMES = {
    torch.float32: "F32",
    torch.bfloat16: "BF16",
    torch.float16: "F16",
    torch.int32: "I32",
    torch.int64: "I64",
    torch.float64: "F64",
    torch.int8: "I8",
    torch.uint8: "U8",
}

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def dtype_name(dtype):
    try:
        return DTYPE_NAMES[dtype]
    except KeyError:
        raise TypeError(f"dtype {dtype} has no ark equivalent") from None


def raw(t):
    """The raw tuple of a CPU tensor (no copy)."""
    if t.device.type != "cpu":
        raise ValueError(f"ark runs on CPU tensors, got a tensor on {t.device}")
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), dtype_name(t.dtype))
