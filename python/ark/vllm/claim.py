"""Which checkpoints the vLLM plugin takes: the rules of ArkConfig.override_quantization_method, without vLLM.

vLLM asks every registered quantization config, custom ones first, whether it wants a checkpoint's
quantization_config; the first that answers with a name serves it. ark answers "ark" only when all hold:

  1. the user asked for no method, or for "ark" itself (`--quantization gptq_marlin` keeps vLLM's own path);
  2. the checkpoint is an integer AutoRound, GPTQ or AWQ export (quant_method auto-round, gptq or awq);
  3. ark parses its quantization_config: bits 2/3/4/8, integer data type, weight-only, a known packing format
     (the C++ QuantConfig decides, so the plugin accepts exactly what the runtime accepts);
  4. ark runs on the device vLLM runs on (CPU; CUDA once ark's CUDA backend takes CUDA tensors);
  5. a model with routed experts has experts ark's MoE method (moe.py) takes: the hidden and expert
     intermediate sizes in whole groups and whole int32 words of packed codes (at tensor
     parallel size 1; a split that breaks this is refused when the layer is built), on the CPU (ark's fused MoE
     has no CUDA path yet). An MoE layer whose experts
     mix schemes (per-layer overrides) still defers to vLLM's own MoE method, layer by layer;
  6. ARK_VLLM_CLAIM is not "0" (an operator's switch to keep vLLM's own path without editing commands).

With `--quantization ark` the user asked for ark: rules 2-5 then raise ark.ArkError / ValueError naming the
reason instead of declining silently.
"""

import json
import os

NAME = "ark"
QUANT_METHODS = ("auto-round", "intel/auto-round", "gptq", "awq")
# config.json keys that give a model's routed-expert count (Qwen2/3-MoE, Mixtral, DeepSeek).
_EXPERT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts")


def scheme_error(hf_quant_cfg):
    """None when ark can serve this quantization_config, else the reason (a sentence)."""
    if not isinstance(hf_quant_cfg, dict):
        return f"quantization_config is a {type(hf_quant_cfg).__name__}, not an object"
    method = str(hf_quant_cfg.get("quant_method", "")).lower()
    if method not in QUANT_METHODS:
        return f"quant_method {method!r} is not one ark serves (expected one of {list(QUANT_METHODS)})"
    from .._extension import _C  # noqa: PLC0415  (the claim rules above need no extension)

    try:
        _C.resolve_quant_config(json.dumps(hf_quant_cfg), [])
    except ValueError as e:
        return str(e)
    return None


def expert_count(hf_config):
    """Routed experts per MoE layer of a transformers config (object or dict), 0 for a dense model."""
    if hf_config is None:
        return 0
    get = hf_config.get if isinstance(hf_config, dict) else lambda k, d=None: getattr(hf_config, k, d)
    for key in _EXPERT_KEYS:
        value = get(key, None)
        if isinstance(value, int) and value > 0:
            return value
    text = get("text_config", None)
    return expert_count(text) if text is not None else 0


def _get(cfg, key):
    if cfg is None:
        return None
    value = cfg.get(key) if isinstance(cfg, dict) else getattr(cfg, key, None)
    if value is None:
        text = cfg.get("text_config") if isinstance(cfg, dict) else getattr(cfg, "text_config", None)
        return _get(text, key) if text is not None else None
    return value


def moe_scheme_error(hf_quant_cfg, hf_config):
    """None when ark's vLLM MoE method takes the routed experts of this checkpoint's default scheme, else why."""
    bits = int(hf_quant_cfg.get("bits", 4))
    group = int(hf_quant_cfg.get("group_size", 128))
    fmt = str(hf_quant_cfg.get("packing_format") or hf_quant_cfg.get("quant_method", "")).lower()
    awq = "awq" in fmt  # (ark's parser already holds AWQ packing to 4 bits)
    hidden = _get(hf_config, "hidden_size")
    inter = _get(hf_config, "moe_intermediate_size") or _get(hf_config, "intermediate_size")
    for name, k in (("hidden_size", hidden), ("expert intermediate size", inter)):
        if not isinstance(k, int):
            continue
        if group > 0 and k % group:
            return f"{name} {k} is not a multiple of group_size {group}"
        if (awq and k % 8) or (not awq and (k * bits) % 32):
            return f"{name} {k} does not fill whole int32 words of {bits}-bit codes"
    return None


def device_supported(device_type, ark_takes_cuda):
    """ark's kernels run on `device_type` ("cpu", "cuda", ...)."""
    if device_type == "cpu":
        return True
    return device_type == "cuda" and ark_takes_cuda


def claim(hf_quant_cfg, user_quant, hf_config=None, device_type="cpu", ark_takes_cuda=False, environ=None):
    """"ark" when ark should serve the checkpoint, else None (see the module docstring for the rules)."""
    environ = os.environ if environ is None else environ
    if user_quant not in (None, NAME):
        return None
    explicit = user_quant == NAME
    if not explicit and environ.get("ARK_VLLM_CLAIM", "1") == "0":
        return None
    reasons = []
    why = scheme_error(hf_quant_cfg)
    if why:
        reasons.append(why)
    if not device_supported(device_type, ark_takes_cuda):
        reasons.append(f"ark has no kernels for device {device_type!r} in this build")
    experts = expert_count(hf_config)
    if experts and not why:
        moe_why = moe_scheme_error(hf_quant_cfg, hf_config)
        if device_type != "cpu":
            moe_why = f"ark's fused MoE runs on the CPU only, not on {device_type!r}"
        if moe_why:
            reasons.append(f"the model's {experts} routed experts per MoE layer: {moe_why}")
    if not reasons:
        return NAME
    if explicit:
        raise ValueError("--quantization ark cannot serve this checkpoint: " + "; ".join(reasons))
    return None
