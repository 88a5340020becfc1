"""ark: AutoRound-quantized linear layers for PyTorch over ark's C++ kernels.

The contract is the one AutoRound's QuantLinear modules follow: construct -> load_state_dict (checkpoint tensors
as they are on disk) -> ark_post_init(model) (repack once into the kernel layout) -> forward.

    import ark
    layer = ark.QuantLinear(bits=4, group_size=128, infeatures=4096, outfeatures=4096, bias=True)
    layer.load_state_dict(tensors, strict=False)
    ark.ark_post_init(layer)
    y = layer(x)
"""

from ._extension import _C
from .formats import PACKING_FORMATS, layout_of
from .moe import QuantMoE
from .qlinear import QuantLinear, ark_post_init
from .quantize import dequantize_weight, quantize_weight

ArkError = _C.ArkError  # a ValueError subclass raised for every argument the C++ library rejects
post_init = ark_post_init

__all__ = [
    "ArkError",
    "PACKING_FORMATS",
    "QuantLinear",
    "QuantMoE",
    "ark_post_init",
    "dequantize_weight",
    "layout_of",
    "post_init",
    "quantize_weight",
]
