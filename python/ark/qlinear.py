"""QuantLinear: a weight-only quantized nn.Linear over ark's C++ kernels.

Life cycle (AutoRound's QuantLinear contract):
  1. construct: buffers with exactly the on-disk shapes and dtypes of the packing format, so load_state_dict
     takes checkpoint tensors as they are;
  2. load_state_dict (strict or not);
  3. ark_post_init(model): every ark QuantLinear is repacked once into the kernel layout; the checkpoint buffers
     are then dropped, so the packed copy is the only resident one (state_dict() rebuilds the on-disk tensors
     from it on demand);
  4. forward, from any number of threads (the GIL is released while the kernel runs).

Buffers (N = outfeatures, K = infeatures, b = bits, G = ceil(K / group_size)):
  GPTQ layouts: qweight int32 [K*b/32, N], qzeros int32 [G, N*b/32], scales [G, N], g_idx int32 [K]
  AWQ layout:   qweight int32 [K, N/8],    qzeros int32 [G, N/8],    scales [G, N]
  bias [N] when bias=True; scales and bias have dtype weight_dtype.
"""

import torch
from torch import nn

from . import _cuda
from . import _raw
from . import ops as _ops
from ._backward import QuantLinearFunction
from ._extension import _C
from .formats import has_g_idx, layout_of
from .quantize import dequantize_weight as _dequantize

_INT_BUFFERS = ("qweight", "qzeros", "g_idx")
_COMPUTE_MODES = ("auto", "exact", "int8")


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: {value} must be at least {minimum}")


class QuantLinear(nn.Module):
    """y = x @ W.T + bias, W held packed at 2, 3, 4 or 8 bits (see the module docstring for the buffers)."""

    def __init__(
        self,
        bits,
        group_size,
        infeatures,
        outfeatures,
        bias,
        kernel_switch_threshold=128,
        trainable=False,
        weight_dtype=torch.bfloat16,
        *,
        sym=True,
        packing_format="auto_round:auto_gptq",
        compute="auto",
    ):
        super().__init__()
        _check_int("infeatures", infeatures, 1)
        _check_int("outfeatures", outfeatures, 1)
        _check_int("bits", bits, 1)
        if bits not in (2, 3, 4, 8):
            raise ValueError(f"bits: {bits} is not supported (expected 2, 3, 4 or 8)")
        _check_int("group_size", group_size, -1)
        if group_size != -1 and not 1 <= group_size <= infeatures:
            raise ValueError(f"group_size: {group_size} must be -1 or in [1, infeatures={infeatures}]")
        _check_int("kernel_switch_threshold", kernel_switch_threshold, 1)
        if weight_dtype not in _raw.FLOAT_DTYPES:
            raise TypeError(
                f"weight_dtype: {weight_dtype} is not torch.bfloat16, torch.float16 or torch.float32"
            )
        if compute not in _COMPUTE_MODES:
            raise ValueError(f"compute: {compute!r} is not one of {_COMPUTE_MODES}")
        self.bits = bits
        self.group_size = group_size
        self.infeatures = infeatures
        self.outfeatures = outfeatures
        self.kernel_switch_threshold = kernel_switch_threshold
        self.trainable = bool(trainable)
        self.weight_dtype = weight_dtype
        self.sym = bool(sym)
        self.packing_format = packing_format
        self.compute = compute
        self._layout = layout_of(packing_format)
        # Raises ark.ArkError (a ValueError) when the format cannot store this shape, naming the rule.
        self._shapes = _C.packed_shapes(bits, group_size, self.sym, self._layout, infeatures, outfeatures)
        self._layer = None  # the packed C++ layer, after post_init
        self._dropped = False  # checkpoint buffers released after post_init
        self._scales_dtype = weight_dtype
        self._register_checkpoint_buffers()
        if bias:
            b = torch.zeros(outfeatures, dtype=weight_dtype)
            if self.trainable:
                self.bias = nn.Parameter(b)
            else:
                self.register_buffer("bias", b)
        else:
            self.bias = None

    # --- buffers -------------------------------------------------------------------------------------------

    def _checkpoint_names(self):
        names = ("qweight", "qzeros", "scales")
        return names + ("g_idx",) if has_g_idx(self._layout) else names

    def _expected(self, name):
        """(shape, dtype) of a checkpoint buffer; dtype None for scales and bias (any float type loads)."""
        if name == "bias":
            return [self.outfeatures], None
        return list(self._shapes[name]), (torch.int32 if name in _INT_BUFFERS else None)

    def _register_checkpoint_buffers(self, values=None):
        for name in self._checkpoint_names():
            if values is not None:
                t = values[name]
            elif name == "scales":
                t = torch.zeros(self._shapes[name], dtype=self._scales_dtype)
            elif name == "g_idx":
                g = self.infeatures if self.group_size == -1 else self.group_size
                t = (torch.arange(self.infeatures, dtype=torch.int32) // g).to(torch.int32)
            else:
                t = torch.zeros(self._shapes[name], dtype=torch.int32)
            self.register_buffer(name, t)
        self._dropped = False

    def _check_loaded(self, name, t):
        shape, dtype = self._expected(name)
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if dtype is not None and t.dtype != dtype:
            raise TypeError(f"{name}: expected dtype {dtype} (on-disk {self.packing_format}), got {t.dtype}")
        if dtype is None and t.dtype not in _raw.FLOAT_DTYPES:
            raise TypeError(f"{name}: expected a float16, bfloat16 or float32 tensor, got {t.dtype}")
        if list(t.shape) != shape:
            raise ValueError(
                f"{name}: expected shape {shape} for a {self.infeatures}->{self.outfeatures} int{self.bits} "
                f"group_size={self.group_size} {self.packing_format} layer, got {list(t.shape)}"
            )

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        names = list(self._checkpoint_names()) + (["bias"] if self.bias is not None else [])
        present = [n for n in names if prefix + n in state_dict]
        for n in present:
            self._check_loaded(n, state_dict[prefix + n])
        if present:
            if self._dropped:
                # Bring back the on-disk buffers (from the packed copy) so a partial load keeps the rest.
                self._register_checkpoint_buffers(self._rebuild_checkpoint())
            self._layer = None  # new weights: post_init must repack
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self._dropped:
            # Same keys in the same order as before post_init: the checkpoint tensors, then the bias.
            rest = {k: destination.pop(k) for k in list(destination) if k == prefix + "bias"}
            for name, t in self._rebuild_checkpoint().items():
                destination[prefix + name] = t
            destination.update(rest)

    def _rebuild_checkpoint(self):
        """The on-disk tensors, re-encoded from the packed layer (bit-exact with what was loaded)."""
        out = {
            "qweight": torch.empty(self._shapes["qweight"], dtype=torch.int32),
            "qzeros": torch.empty(self._shapes["qzeros"], dtype=torch.int32),
            "scales": torch.empty(self._shapes["scales"], dtype=self._scales_dtype),
        }
        if has_g_idx(self._layout):
            out["g_idx"] = torch.empty([self.infeatures], dtype=torch.int32)
        self._layer.export_checkpoint(
            self._layout,
            _raw.dtype_name(self._scales_dtype),
            _raw.raw(out["qweight"]),
            _raw.raw(out["qzeros"]),
            _raw.raw(out["scales"]),
            _raw.raw(out["g_idx"]) if "g_idx" in out else None,
        )
        return out

    def _checkpoint_tensors(self):
        if self._dropped:
            return self._rebuild_checkpoint()
        return {n: getattr(self, n) for n in self._checkpoint_names()}

    # --- copy and pickle ------------------------------------------------------------------------------------
    # The packed C++ layer cannot be copied or pickled; the checkpoint tensors stand in for it and a packed
    # layer is packed again on the other side (copy.deepcopy, torch.save of a whole model, multiprocessing).

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_repack"] = state.pop("_layer") is not None
        state["_layer"] = None
        if self._dropped:
            state["_buffers"] = dict(self._buffers)
            state["_buffers"].update(self._rebuild_checkpoint())
            state["_dropped"] = False
        return state

    def __setstate__(self, state):
        repack = state.pop("_repack", False)
        super().__setstate__(state)
        if repack:
            self.post_init()

    # --- post_init -----------------------------------------------------------------------------------------

    @property
    def _bias_in_kernel(self):
        # A trainable layer adds its bias in torch so autograd sees it; otherwise the kernel fuses it.
        return self.bias is not None and not self.trainable

    def post_init(self):
        """Packs the loaded checkpoint tensors once; a second call without a new load does nothing."""
        if self._layer is not None:
            return self
        if self.qweight.device.type == "cuda":
            _cuda.post_init(self)  # packs on that GPU (python/ark/_cuda.py)
            self._handle = _ops.register(self)
            return self
        for name in self._checkpoint_names():
            if getattr(self, name).device.type != "cpu":
                raise ValueError(f"{name}: ark runs on CPU; the buffer is on {getattr(self, name).device}")
        layer = _C.Layer(
            self.infeatures,
            self.outfeatures,
            self.bits,
            self.group_size,
            self.sym,
            self._bias_in_kernel,
            has_g_idx(self._layout),
            self.kernel_switch_threshold,
            self.compute,
        )
        t = {n: getattr(self, n).contiguous() for n in self._checkpoint_names()}
        layer.load_checkpoint(
            self._layout,
            _raw.raw(t["qweight"]),
            _raw.raw(t["qzeros"]),
            _raw.raw(t["scales"]),
            _raw.raw(t["g_idx"]) if "g_idx" in t else None,
        )
        if self._bias_in_kernel:
            layer.load_bias(_raw.raw(self.bias.detach().contiguous()))
        layer.post_init()
        self._layer = layer
        # The handle lets the registered operator ark::quant_linear (ops.py) reach this layer from a compiled graph.
        self._handle = _ops.register(self)
        self._scales_dtype = self.scales.dtype
        for name in self._checkpoint_names():
            self._buffers[name] = None
        self._dropped = True
        return self

    # --- forward -------------------------------------------------------------------------------------------

    def _run(self, x):
        """The kernel on x [..., K] (no autograd, no Python-side bias)."""
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.infeatures)
        if not x2.is_contiguous():
            x2 = x2.contiguous()
        y = torch.empty((x2.shape[0], self.outfeatures), dtype=x.dtype)
        if x2.shape[0] > 0:
            self._layer.forward(_raw.raw(x2), _raw.raw(y))
        return y.reshape(*lead, self.outfeatures)

    def forward(self, x):
        if self._layer is None:
            raise RuntimeError(
                f"ark QuantLinear {self.infeatures}->{self.outfeatures}: not packed; call "
                "ark_post_init(model) after load_state_dict and before forward"
            )
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if _cuda.is_cuda_layer(self._layer):
            return _ops.call(x, self._handle, self.outfeatures)  # _cuda.forward, bias included
        if x.device.type != "cpu":
            raise ValueError(f"x: ark runs on CPU tensors, got one on {x.device}")
        if x.dtype not in _raw.FLOAT_DTYPES:
            raise TypeError(f"x: dtype {x.dtype} is not supported (expected float32, bfloat16 or float16)")
        if x.dim() == 0 or x.shape[-1] != self.infeatures:
            raise ValueError(f"x: expected shape [..., {self.infeatures}], got {list(x.shape)}")
        if torch.is_grad_enabled() and x.requires_grad:
            # Through autograd even when not trainable, so backward raises instead of silently losing grad_x.
            y = QuantLinearFunction.apply(x, self)
        else:
            y = _ops.call(x, self._handle, self.outfeatures)
        if self.bias is not None and not self._bias_in_kernel:
            y = y + self.bias.to(y.dtype)
        return y

    # --- inspection ----------------------------------------------------------------------------------------

    def dequantize_weight(self):
        """The dense fp32 weight [outfeatures, infeatures] (built on demand; nothing is cached)."""
        return _dequantize(
            self._checkpoint_tensors(),
            self.bits,
            self.group_size,
            self.sym,
            self.packing_format,
            self.infeatures,
            self.outfeatures,
        )

    def describe(self):
        """What the C++ layer chose: ISA, kernels per regime, compute mode, packed size."""
        return self._layer.describe() if self._layer is not None else "not packed (call ark_post_init)"

    def kernel_name(self, m):
        """The kernel a forward of m rows runs (after post_init)."""
        if self._layer is None:
            raise RuntimeError("kernel_name: call ark_post_init(model) first")
        return self._layer.kernel_name(m)

    @property
    def packed_bytes(self):
        return self._layer.packed_bytes if self._layer is not None else 0

    def extra_repr(self):
        return (
            f"infeatures={self.infeatures}, outfeatures={self.outfeatures}, bits={self.bits}, "
            f"group_size={self.group_size}, sym={self.sym}, packing_format={self.packing_format!r}, "
            f"bias={self.bias is not None}, trainable={self.trainable}, packed={self._layer is not None}"
        )


def ark_post_init(model):
    """Packs every ark QuantLinear in `model` (a module, or a QuantLinear itself) once; returns `model`."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"ark_post_init: expected a torch.nn.Module, got {type(model).__name__}")
    for m in model.modules():
        if isinstance(m, QuantLinear):
            m.post_init()
    return model
