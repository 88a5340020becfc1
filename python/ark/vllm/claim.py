"""Which checkpoints the vLLM plugin takes: the rules of ArkConfig.override_quantization_method, without vLLM.

vLLM asks every registered quantization config, custom ones first, whether it wants a checkpoint's
quantization_config; the first that answers with a name serves it. ark answers "ark" only when all hold:

  1. the user asked for no method, or for "ark" itself (`--quantization gptq_marlin` keeps vLLM's own path);
  2. the checkpoint is an integer AutoRound, GPTQ or AWQ export (quant_method auto-round, gptq or awq);
  3. ark parses its quantization_config: bits 2/3/4/8, integer data type, weight-only, a known packing format
     (the C++ QuantConfig decides, so the plugin accepts exactly what the runtime accepts);
  4. ark runs on the device vLLM runs on (CPU; CUDA once ark's CUDA backend takes CUDA tensors);
  5. the model has no routed experts (ark's MoE is not exposed to Python yet: vLLM's own MoE path keeps the
     whole checkpoint rather than splitting it between two methods);
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
    if experts and not explicit:
        reasons.append(f"the model has {experts} routed experts per MoE layer and ark's MoE is not served yet")
    if not reasons:
        return NAME
    if explicit:
        raise ValueError("--quantization ark cannot serve this checkpoint: " + "; ".join(reasons))
    return None
