"""ark as a vLLM plugin: AutoRound / GPTQ / AWQ integer checkpoints served by ark's kernels.

vLLM finds `register` through the `vllm.general_plugins` entry point (pyproject.toml) in every process it
starts; it registers the quantization config "ark" (config.py), which then claims the checkpoints it can serve
(claim.py) or is asked for with `--quantization ark`. Calling register again does nothing.

Importing this package needs no vLLM; register() imports it.
"""

_registered = False


def register():
    """Registers the "ark" quantization config with vLLM (idempotent)."""
    global _registered
    if _registered:
        return
    from vllm.model_executor.layers.linear import register_weight_loader_v2_supported_method  # noqa: PLC0415
    from vllm.model_executor.layers.quantization import (  # noqa: PLC0415
        QUANTIZATION_METHODS,
        get_quantization_config,
        register_quantization_config,
    )

    from .claim import NAME  # noqa: PLC0415
    from .config import ArkConfig  # noqa: PLC0415
    from .linear import ArkLinearMethod  # noqa: PLC0415

    # Parameters are vLLM's own parameter classes: the layers must call their loaders (weight_loader_v2).
    register_weight_loader_v2_supported_method(ArkLinearMethod)
    if NAME not in QUANTIZATION_METHODS or get_quantization_config(NAME) is not ArkConfig:
        register_quantization_config(NAME)(ArkConfig)
    _registered = True


__all__ = ["register"]
