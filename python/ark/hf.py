"""Hugging Face transformers loading: an AutoRound / GPTQ / AWQ checkpoint as a transformers model on ark's kernels.

    import ark.hf
    model = ark.hf.from_pretrained("path/to/checkpoint")       # AutoModelForCausalLM, quantized Linears -> ark
    out = model.generate(input_ids, max_new_tokens=32)         # transformers' generate, unchanged

The model is built from config.json with its quantization_config removed (so transformers applies no quantizer
of its own) and with every parameter on the meta device (no dense weight is ever allocated for a layer that
stays quantized). Then every Linear that the quantization_config quantizes (per extra_config,
block_name_to_quantize, GPTQ's dynamic, exactly the rules ark's runtime follows: _C.resolve_quant_config over
include/ark/quant_config.h) is replaced by an ark.QuantLinear that loads the checkpoint's own tensors; every
other tensor loads as it is (cast to `torch_dtype`); then ark_post_init packs each layer once.

Checked against the checkpoint: a quantized layer without its tensors, a `.qweight` that the config leaves
unquantized, unexpected or missing tensors are errors naming the tensor, before anything is packed.
"""

import contextlib
import json
import pathlib

import torch
from torch import nn

from ._extension import _C
from .qlinear import QuantLinear, ark_post_init

# ark's layout name -> the AutoRound packing_format that QuantLinear takes for it.
_PACKING_FORMAT = {"gptq-v1": "auto_round:auto_gptq", "gptq-v2": "auto_round", "awq": "auto_round:auto_awq"}
_QUANT_TENSORS = ("qweight", "qzeros", "scales", "g_idx")
# Tensors some exports carry that the model recomputes (RoPE's inverse frequencies): ignored, as the runtime does.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def quantization_config(model_dir):
    """The checkpoint's quantization_config (config.json's, else quantization_config.json), or None."""
    d = pathlib.Path(model_dir)
    cfg = json.loads((d / "config.json").read_text())
    if "quantization_config" in cfg:
        return cfg["quantization_config"]
    extra = d / "quantization_config.json"
    return json.loads(extra.read_text()) if extra.exists() else None


def layer_schemes(quant_config, layer_names):
    """{layer name: (bits, group_size, sym, packing_format)} of the layers `quant_config` quantizes."""
    if quant_config is None:
        return {}
    resolved = _C.resolve_quant_config(json.dumps(quant_config), list(layer_names))
    return {name: (b, g, s, _PACKING_FORMAT[layout]) for name, (b, g, s, layout) in resolved.items()}


class _Checkpoint:
    """Every tensor of a checkpoint directory's safetensors files, read on demand (memory-mapped)."""

    def __init__(self, model_dir):
        from safetensors import safe_open  # noqa: PLC0415  (only loaders need it)

        files = sorted(pathlib.Path(model_dir).glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{model_dir}: no *.safetensors file")
        self._handles = [safe_open(str(f), framework="pt") for f in files]
        self.where = {}
        for f, h in zip(files, self._handles):
            for name in h.keys():
                if name in self.where:
                    raise ValueError(f"{model_dir}: tensor {name} is stored twice ({f.name} and another shard)")
                self.where[name] = h

    def __contains__(self, name):
        return name in self.where

    def get(self, name):
        return self.where[name].get_tensor(name)


@contextlib.contextmanager
def _parameters_on_meta():
    """Every nn.Parameter created inside lands on the meta device; buffers (RoPE tables) stay real."""
    original = nn.Module.register_parameter

    def register(module, name, param):
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(param.data.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


def _set_tensor(model, name, value):
    module_name, _, leaf = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    if leaf in module._parameters:
        module._parameters[leaf] = nn.Parameter(value, requires_grad=False)
    elif leaf in module._buffers:
        module._buffers[leaf] = value
    else:
        raise ValueError(f"checkpoint tensor {name}: the model has no parameter or buffer of that name")


def from_pretrained(model_dir, torch_dtype=torch.float32, compute="auto", kernel_switch_threshold=128, device=None,
                    **kwargs):
    """The transformers model of `model_dir` with ark.QuantLinear in place of every quantized Linear.

    torch_dtype: the dtype of every unquantized tensor and of the activations (ark computes on CPU in fp32,
    bf16 or fp16; on CUDA in fp16 or bf16). compute: ark's compute mode for every CPU layer ("auto", "exact" or
    "int8"; docs/KERNELS.md). device: where the model runs ("cuda" packs every layer on the GPU, with ark's
    CUDA backend); the CPU by default. Other keyword arguments go to AutoModelForCausalLM.from_config (e.g.
    attn_implementation="eager").
    """
    import transformers  # noqa: PLC0415  (optional dependency: only this loader needs it)

    model_dir = pathlib.Path(model_dir)
    qcfg = quantization_config(model_dir)
    config = transformers.AutoConfig.from_pretrained(str(model_dir))
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # ark applies it; transformers must not apply a quantizer of its own
    ckpt = _Checkpoint(model_dir)
    with _parameters_on_meta():
        model = transformers.AutoModelForCausalLM.from_config(config, **kwargs)

    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    schemes = layer_schemes(qcfg, linears)
    for name in linears:
        if name + ".qweight" in ckpt and name not in schemes:
            raise ValueError(
                f"{model_dir}: {name}.qweight is stored but quantization_config leaves {name} unquantized"
            )
    claimed = set()
    for name, (bits, group_size, sym, packing_format) in schemes.items():
        linear = model.get_submodule(name)
        for t in ("qweight", "qzeros", "scales"):
            if name + "." + t not in ckpt:
                raise ValueError(f"{model_dir}: quantized layer {name} has no tensor {name}.{t}")
        scales = ckpt.get(name + ".scales")
        q = QuantLinear(
            bits, group_size, linear.in_features, linear.out_features, linear.bias is not None,
            kernel_switch_threshold=kernel_switch_threshold, weight_dtype=scales.dtype, sym=sym,
            packing_format=packing_format, compute=compute,
        )
        state = {t: ckpt.get(f"{name}.{t}") for t in _QUANT_TENSORS if f"{name}.{t}" in ckpt}
        if linear.bias is not None:
            if name + ".bias" not in ckpt:
                raise ValueError(f"{model_dir}: quantized layer {name} has a bias in the model but no {name}.bias")
            state["bias"] = ckpt.get(name + ".bias")
        if "g_idx" in state and "g_idx" not in dict(q.named_buffers()):
            del state["g_idx"]  # AWQ carries none; a stray one is not used
        try:
            # g_idx may be absent (exports without act-order omit it): QuantLinear then keeps k // group_size.
            result = q.load_state_dict(state, strict=False)
        except (ValueError, TypeError, RuntimeError) as e:
            raise type(e)(f"{model_dir}: layer {name}: {e}") from e
        if set(result.missing_keys) - {"g_idx"} or result.unexpected_keys:
            raise ValueError(f"{model_dir}: layer {name}: missing {result.missing_keys}, unexpected "
                             f"{result.unexpected_keys}")
        claimed.update(f"{name}.{t}" for t in list(_QUANT_TENSORS) + ["bias"])
        parent_name, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, leaf, q)

    for key in ckpt.where:
        if key in claimed or key.endswith(_IGNORED_SUFFIXES):
            continue
        value = ckpt.get(key)
        if value.is_floating_point():
            value = value.to(torch_dtype)
        _set_tensor(model, key, value)

    lm_head = model.get_output_embeddings()
    if getattr(model.config, "tie_word_embeddings", False) and isinstance(lm_head, nn.Linear):
        model.tie_weights()
    missing = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if missing:
        raise ValueError(f"{model_dir}: the checkpoint has no tensor for {missing[:5]} ({len(missing)} in all)")
    if device is not None:
        model.to(device)  # before packing: a QuantLinear packs where its checkpoint buffers are
    ark_post_init(model)
    return model.eval()


__all__ = ["from_pretrained", "layer_schemes", "quantization_config"]
