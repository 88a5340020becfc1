"""ArkLinearMethod: vLLM's linear-method contract over an ark.QuantLinear.

create_weights registers the checkpoint tensors with vLLM's own parameter classes, so vLLM's weight loaders
place every shard: q/k/v into QKVParallelLinear, gate/up into MergedColumnParallelLinear (their packed
dimensions declared, so offsets along a packed axis are divided by the pack factor), and one tensor-parallel
rank's rows or columns (input_dim / output_dim). Shapes, with K and N this rank's input and output sizes,
b bits, G = K / group_size groups (1 per-channel):

  GPTQ layouts  qweight [K*b/32, N] packed along K   qzeros [G, N*b/32] packed along N   scales [G, N]   g_idx [K]
  AWQ layout    qweight [K, N/8]    packed along N   qzeros [G, N/8]    packed along N   scales [G, N]

qzeros are registered for symmetric schemes too (exports carry them; ark checks they hold the symmetric point).
Per-channel scales and zeros are replicated over a row split (vLLM's ChannelQuantScaleParameter).

process_weights_after_loading builds one ark.QuantLinear from the loaded tensors, packs it once and frees the
raw parameters; apply runs it through the registered operator ark::quant_linear (python/ark/ops.py), so vLLM's
torch.compile sees one opaque node with a fake implementation, and adds the `bias` vLLM passes (None on tensor
-parallel ranks other than 0 of a row-parallel layer, which is why the bias is never packed into the layer).
"""

import math
from fractions import Fraction

import torch
from vllm.model_executor.layers.linear import LinearMethodBase
from vllm.model_executor.parameter import (
    ChannelQuantScaleParameter,
    GroupQuantScaleParameter,
    PackedColumnParameter,
    PackedvLLMParameter,
    RowvLLMParameter,
)

from .. import ops
from ..formats import has_g_idx, layout_of
from ..qlinear import QuantLinear

_RAW = ("qweight", "qzeros", "scales", "g_idx")


def _pack_factor(bits):
    f = Fraction(32, bits)
    return int(f) if f.denominator == 1 else f


def _vocab_loader(layer):
    """Loader for a quantized ParallelLMHead. vLLM's vocab-parallel loader places rows of a [vocab, hidden]
    weight; the packed tensors hold the vocabulary along columns (dim 1), so this one cuts this rank's
    vocabulary columns (in words where they are packed along it) and zero-fills the padding columns, whose
    logits then come out 0 and are never sampled (vLLM masks the padded vocabulary)."""

    def load(param, loaded_weight, *args):
        dim = getattr(param, "output_dim", None)
        if dim is None:
            param.data.copy_(loaded_weight)  # g_idx: along the hidden size, the same on every rank
            return
        start = layer.shard_indices.org_vocab_start_index
        size = layer.shard_indices.org_vocab_end_index - start
        if getattr(param, "packed_dim", None) == dim:
            start, size = int(start // param.packed_factor), int(size // param.packed_factor)
        part = loaded_weight.narrow(dim, start, size)
        param.data.narrow(dim, 0, size).copy_(part)
        param.data.narrow(dim, size, param.data.shape[dim] - size).zero_()

    return load


def _same_for_every_shard(weight_loader, prefix):
    """g_idx's loader: fused layers keep one g_idx, so every part (q, k, v / gate, up) must bring the same one.
    GPTQ exports agree (the parts share their input, hence its act-order permutation); anything else would
    silently mis-group the other parts, so it is an error."""

    def load(param, loaded_weight, *args, **kwargs):
        before = param.data.clone() if getattr(param, "ark_loaded", False) else None
        weight_loader(param, loaded_weight, *args, **kwargs)
        if before is not None and not torch.equal(before, param.data):
            raise ValueError(f"ark: {prefix}: the fused parts of this layer have different g_idx (act-order "
                             "permutations); a fused layer can apply only one")
        param.ark_loaded = True

    return load


class ArkLinearMethod(LinearMethodBase):
    """One quantized linear layer (fused or not, any tensor-parallel rank) on ark's kernels."""

    def __init__(self, bits, group_size, sym, packing_format, desc_act=False, compute="auto"):
        self.bits = bits
        self.group_size = group_size
        self.sym = sym
        self.packing_format = packing_format
        self.layout = layout_of(packing_format)
        self.desc_act = desc_act
        self.compute = compute

    def __repr__(self):
        return (f"ArkLinearMethod(bits={self.bits}, group_size={self.group_size}, sym={self.sym}, "
                f"packing_format={self.packing_format!r})")

    def create_weights(self, layer, input_size_per_partition, output_partition_sizes, input_size, output_size,
                       params_dtype, **extra_weight_attrs):
        K, N = input_size_per_partition, sum(output_partition_sizes)
        prefix = getattr(layer, "prefix", "") or type(layer).__name__
        weight_loader = extra_weight_attrs["weight_loader"]
        if hasattr(layer, "shard_indices"):
            weight_loader = _vocab_loader(layer)  # a quantized lm_head (ParallelLMHead)
        row_split = input_size != K
        b, g = self.bits, self.group_size
        if g != -1 and K % g != 0:
            raise ValueError(f"ark: {prefix}: this rank's {K} input features are not a multiple of group_size {g}; "
                             "choose a tensor-parallel size that splits the input at group boundaries")
        if row_split and self.desc_act and g != -1:
            raise ValueError(f"ark: {prefix}: act-order (desc_act) checkpoints cannot be split along the input "
                             "(row-parallel tensor parallelism) yet; serve them with tensor_parallel_size=1")
        per_word = 8 if self.layout == "awq" else None
        for n in output_partition_sizes:
            # Fused shards start on whole int32 words of the N-packed tensors, or vLLM's offsets would be wrong.
            if (per_word and n % per_word) or (not per_word and (n * b) % 32):
                raise ValueError(f"ark: {prefix}: output partition of {n} features does not fill whole int32 words "
                                 f"of the {self.packing_format} {b}-bit zero points; expected a multiple of "
                                 f"{per_word or 32 // math.gcd(32, b)}")
        G = 1 if g == -1 else K // g
        pf = _pack_factor(b)
        if self.layout == "awq":
            qweight = PackedvLLMParameter(data=torch.empty(K, N // 8, dtype=torch.int32), input_dim=0, output_dim=1,
                                          packed_dim=1, packed_factor=8, weight_loader=weight_loader)
            zeros_cols, zeros_factor = N // 8, 8
        else:
            qweight = PackedvLLMParameter(data=torch.empty(K * b // 32, N, dtype=torch.int32), input_dim=0,
                                          output_dim=1, packed_dim=0, packed_factor=pf, weight_loader=weight_loader)
            zeros_cols, zeros_factor = N * b // 32, pf
        zeros = torch.empty(G, zeros_cols, dtype=torch.int32)
        scales = torch.empty(G, N, dtype=params_dtype)
        if g == -1:
            qzeros = PackedColumnParameter(data=zeros, output_dim=1, packed_dim=1, packed_factor=zeros_factor,
                                           weight_loader=weight_loader)
            scale_param = ChannelQuantScaleParameter(data=scales, output_dim=1, weight_loader=weight_loader)
        else:
            qzeros = PackedvLLMParameter(data=zeros, input_dim=0, output_dim=1, packed_dim=1,
                                         packed_factor=zeros_factor, weight_loader=weight_loader)
            scale_param = GroupQuantScaleParameter(data=scales, input_dim=0, output_dim=1,
                                                   weight_loader=weight_loader)
        layer.register_parameter("qweight", qweight)
        layer.register_parameter("qzeros", qzeros)
        layer.register_parameter("scales", scale_param)
        if has_g_idx(self.layout):
            # Pre-filled with this rank's trivial groups, so exports that omit g_idx load as they should.
            first = getattr(layer, "tp_rank", 0) * K if row_split else 0
            group = input_size if g == -1 else g
            trivial = (torch.arange(first, first + K, dtype=torch.int64) // group).to(torch.int32)
            loader = _same_for_every_shard(weight_loader, prefix)
            layer.register_parameter("g_idx", RowvLLMParameter(data=trivial, input_dim=0, weight_loader=loader))
        layer.ark_shape = (K, N)
        layer.ark_row_offset = (getattr(layer, "tp_rank", 0) * K) if row_split else 0

    def process_weights_after_loading(self, layer):
        K, N = layer.ark_shape
        t = {name: getattr(layer, name).data for name in _RAW if hasattr(layer, name)}
        if "g_idx" in t:
            g = K if self.group_size == -1 else self.group_size
            first = layer.ark_row_offset // g if self.group_size != -1 else 0
            local = t["g_idx"].to(torch.int64) - first
            if local.min() < 0 or local.max() >= (1 if self.group_size == -1 else K // g):
                raise ValueError(f"ark: {getattr(layer, 'prefix', '')}: g_idx names groups outside this rank's "
                                 f"{K // g} groups (act-order over a split input is not supported)")
            t["g_idx"] = local.to(torch.int32)
        q = QuantLinear(self.bits, self.group_size, K, N, False, weight_dtype=t["scales"].dtype, sym=self.sym,
                        packing_format=self.packing_format, compute=self.compute)
        q.load_state_dict({k: v.cpu() for k, v in t.items()}, strict=True)
        if t["qweight"].device.type == "cuda":
            q = q.to(t["qweight"].device)  # packs on that GPU (python/ark/_cuda.py); not run here: no GPU
        q.post_init()
        for name in t:
            delattr(layer, name)  # the packed copy is the only one kept
        # Kept outside the module tree (no parameters, nothing for vLLM to load, move or compile into).
        layer.__dict__["_ark_linear"] = q
        layer.ark_handle = q._handle
        layer.ark_out_features = N

    def apply(self, layer, x, bias=None):
        return ops.call(x, layer.ark_handle, layer.ark_out_features, bias)
