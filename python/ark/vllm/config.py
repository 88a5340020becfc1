"""ArkConfig: the quantization config vLLM knows as "ark".

Which layers are quantized, and how, is decided by ark's C++ QuantConfig (_C.resolve_quant_config), the rules
ark's runtime and the transformers loader follow (AutoRound's: block_name_to_quantize, extra_config, GPTQ's
dynamic, modules_to_not_convert). vLLM fuses q/k/v and gate/up into one layer; its prefix (".qkv_proj") is
expanded through the model's packed_modules_mapping, and the parts must agree on one scheme.

When vLLM gives the checkpoint's location (maybe_update_config), every layer name is read from the safetensors
headers and resolved at once, as the runtime does; otherwise each layer is resolved from its own names.
"""

import json
import os

import torch
from vllm.model_executor.layers.quantization.base_config import QuantizationConfig

from ..hf import layer_schemes
from . import claim as _claim
from .linear import ArkLinearMethod
from .moe import ArkMoEMethod



def _ark_takes_cuda():
    """Whether this ark build runs on CUDA tensors (built with its CUDA backend: python/ark/_cuda.py)."""
    from .. import _cuda  # noqa: PLC0415

    return _cuda.available()


def _device_type():
    from vllm.platforms import current_platform  # noqa: PLC0415

    if current_platform.is_cpu():
        return "cpu"
    if current_platform.is_cuda():
        return "cuda"
    # vLLM's CUDA wheel on a machine without a GPU gets the "unspecified" platform; ark still runs on the CPU.
    kind = getattr(current_platform, "device_type", "") or ""
    return "cpu" if kind in ("", "cpu") and not torch.cuda.is_available() else kind


class ArkConfig(QuantizationConfig):
    """An AutoRound / GPTQ / AWQ integer checkpoint served by ark's kernels."""

    def __init__(self, quant_config):
        super().__init__()
        why = _claim.scheme_error(quant_config)
        if why:
            raise ValueError(f"ark cannot serve this checkpoint: {why}")
        self.full_config = dict(quant_config)
        self.desc_act = bool(quant_config.get("desc_act", False))
        self._text = json.dumps(self.full_config)
        self._schemes = None  # every layer's scheme, when the checkpoint's layer names are known
        self._mapper = None
        # ark's compute mode for every layer: auto, exact or int8 (docs/KERNELS.md).
        self.compute = os.environ.get("ARK_VLLM_COMPUTE", "auto")

    def __repr__(self):
        return f"ArkConfig({self.full_config.get('quant_method')}, bits={self.full_config.get('bits')})"

    @classmethod
    def get_name(cls):
        return _claim.NAME

    @classmethod
    def get_supported_act_dtypes(cls):
        return [torch.bfloat16, torch.float16, torch.float32]

    @classmethod
    def get_min_capability(cls):
        return 0  # ark's CPU kernels need no GPU; its CUDA backend checks its own requirements

    @staticmethod
    def get_config_filenames():
        return ["quantization_config.json", "quantize_config.json"]

    @classmethod
    def from_config(cls, config):
        return cls(config)

    @classmethod
    def override_quantization_method(cls, hf_quant_cfg, user_quant, hf_config=None):
        return _claim.claim(hf_quant_cfg, user_quant, hf_config, _device_type(), _ark_takes_cuda())

    @staticmethod
    def get_checkpoint_weight_mapper():
        # vLLM's default drops g_idx (its kernels ignore act-order); ark applies it, so it must load.
        from vllm.model_executor.models.utils import WeightsMapper  # noqa: PLC0415

        return WeightsMapper()

    def apply_vllm_mapper(self, hf_to_vllm_mapper):
        self._mapper = hf_to_vllm_mapper

    def maybe_update_config(self, model_name, hf_config=None, revision=None):
        try:
            from vllm.transformers_utils.config import get_safetensors_params_metadata  # noqa: PLC0415

            names = get_safetensors_params_metadata(model_name, revision=revision)
        except Exception:  # noqa: BLE001  (no readable index: fall back to per-layer resolution)
            return
        layers = sorted({n.rsplit(".", 1)[0] for n in names if n.endswith((".qweight", ".weight"))})
        if layers:
            schemes = layer_schemes(self.full_config, layers)
            # A layer stored as a plain weight is 16-bit whatever the rules say: exports leave some Linears
            # (an MoE router's gate, for one) unquantized without naming them in extra_config.
            packed = {n.rsplit(".", 1)[0] for n in names if n.endswith(".qweight")}
            self._schemes = {n: s for n, s in schemes.items() if n in packed}

    # --- per layer ------------------------------------------------------------------------------------------

    def _checkpoint_names(self, prefix):
        """The checkpoint layer names behind a vLLM prefix (q/k/v behind qkv_proj, ...)."""
        base, _, leaf = prefix.rpartition(".")
        parts = self.packed_modules_mapping.get(leaf)
        if not parts:
            return [prefix]
        return [f"{base}.{p}" if base else p for p in parts]

    def _lookup(self, names):
        if self._schemes is not None:
            schemes = self._schemes
            if self._mapper is not None:
                schemes = self._mapper.apply_dict(dict(schemes))
            return {n: schemes[n] for n in names if n in schemes}
        return layer_schemes(self.full_config, names)

    def layer_scheme(self, prefix):
        """(bits, group_size, sym, packing_format) of the vLLM layer `prefix`, or None when unquantized."""
        names = self._checkpoint_names(prefix)
        found = self._lookup(names)
        if not found:
            return None
        schemes = {found.get(n) for n in names}
        if len(schemes) != 1:
            detail = ", ".join(f"{n}: {found.get(n) or 'unquantized'}" for n in names)
            raise ValueError(f"ark: vLLM fuses {names} into {prefix}, but their quantization differs ({detail}); "
                             "a fused layer needs one scheme")
        return schemes.pop()

    def get_quant_method(self, layer, prefix):
        from vllm.model_executor.layers.linear import LinearBase, UnquantizedLinearMethod  # noqa: PLC0415
        from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead  # noqa: PLC0415

        if _is_moe(layer):
            # ark's fused MoE is CPU-only: on a GPU the experts stay with vLLM's own method.
            scheme = self.experts_scheme(layer, prefix) if _device_type() == "cpu" else None
            if scheme is None:
                return self._vllm_own().get_quant_method(layer, prefix)
            bits, group_size, sym, packing_format = scheme
            return ArkMoEMethod(layer.moe_config, bits, group_size, sym, packing_format, compute=self.compute)
        if not isinstance(layer, (LinearBase, ParallelLMHead)):
            return None
        scheme = self.layer_scheme(prefix)
        if scheme is None:
            return UnquantizedLinearMethod() if isinstance(layer, LinearBase) else None
        bits, group_size, sym, packing_format = scheme
        return ArkLinearMethod(bits, group_size, sym, packing_format, desc_act=self.desc_act, compute=self.compute)

    def experts_scheme(self, layer, prefix):
        """The one (bits, group_size, sym, packing_format) of every routed expert linear of the RoutedExperts
        layer `prefix`, or None when ark's MoE method cannot take them (some unquantized, or schemes that differ:
        vLLM stacks all experts in one tensor of one shape); such a layer defers to vLLM's own method."""
        n = layer.moe_config.num_logical_experts or layer.global_num_experts
        leaves = [x for x in (layer.ckpt_gate_proj_name, layer.ckpt_up_proj_name, layer.ckpt_down_proj_name) if x]
        names = [f"{prefix}.{e}.{leaf}" for e in range(n) for leaf in leaves]
        found = self._lookup(names)
        schemes = {found.get(x) for x in names}
        if len(schemes) != 1 or None in schemes:
            return None
        return schemes.pop()

    def _vllm_own(self):
        """vLLM's own config for this checkpoint: MoE layers ark cannot take defer to it."""
        from vllm.model_executor.layers.quantization import get_quantization_config  # noqa: PLC0415

        method = str(self.full_config.get("quant_method", "")).lower()
        name = {"gptq": "gptq", "awq": "awq"}.get(method, "inc")
        own = get_quantization_config(name).from_config(self.full_config)
        own.packed_modules_mapping = self.packed_modules_mapping
        return own


def _is_moe(layer):
    try:
        from vllm.model_executor.layers.fused_moe import RoutedExperts  # noqa: PLC0415
    except ImportError:
        return False
    return isinstance(layer, RoutedExperts)
