"""python -m ark.bench: ark.QuantLinear against torch baselines measured in the same run.

Per shape (M rows through an N x K layer) it times
  ark        ark.QuantLinear (packed, post_init'ed), input in --dtype;
  bf16       torch.nn.functional.linear with a dense bf16 weight (what the quantized layer replaces);
  deq+mm     dequantize the on-disk tensors with torch ops, then F.linear (what a pure-torch QuantLinear does
             on every call);
  ark-lib    auto_round_kernel's QuantLinear (PyPI auto-round-lib, Intel's ARK) on the same tensors, when it
             is installed;
and prints median times, the ratios to ark, and ark's weight bytes / time. It never passes or fails on time.
Weights are real RTN checkpoints from ark's quantizer. Several copies of each layer are rotated so that
decode-sized runs (M small) read weights from memory rather than from the last-level cache.
"""

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import ark

from ._raw import FLOAT_DTYPES
from .formats import layout_of

_AWQ_SHIFT = [0, 16, 4, 20, 8, 24, 12, 28]  # bit offset of column c (mod 8) in an AWQ word


def _unpack_stream(words, count, bits):
    """Values of the bit streams running down dim 0 of int32 words (any bits, 3 included): int64 [count, C]."""
    u = words.to(torch.int64) & 0xFFFFFFFF
    i = torch.arange(count)
    first, shift = (i * bits) // 32, (i * bits) % 32
    lo = u[first] >> shift[:, None]
    nxt = torch.clamp(first + 1, max=u.shape[0] - 1)
    hi = (u[nxt] << (32 - shift)[:, None]) * (shift + bits > 32)[:, None]
    return (lo | hi) & ((1 << bits) - 1)


def _unpack_words(words, bits, dim):
    """Whole-word unpacking for 2/4/8 bits (int32 shifts, as torch QuantLinear backends do it): the 32/bits
    values of each word expand along `dim` (0: down the rows, 1: along the columns)."""
    shifts = torch.arange(0, 32, bits, dtype=torch.int32)
    if dim == 0:
        v = (words.unsqueeze(1) >> shifts[None, :, None]) & ((1 << bits) - 1)
        return v.reshape(-1, words.shape[1])
    v = (words.unsqueeze(2) >> shifts[None, None, :]) & ((1 << bits) - 1)
    return v.reshape(words.shape[0], -1)


def torch_dequantize(t, bits, group_size, fmt, k, n, dtype):
    """Dense weight, transposed ([K, N]), from on-disk tensors with torch ops only: the deq+mm baseline's
    per-call work."""
    layout = layout_of(fmt)
    g = k if group_size == -1 else group_size
    if layout == "awq":
        shift = torch.tensor(_AWQ_SHIFT, dtype=torch.int32)
        codes = ((t["qweight"].unsqueeze(2) >> shift) & 15).reshape(k, n)
        zeros = ((t["qzeros"].unsqueeze(2) >> shift) & 15).reshape(-1, n)
        grp = torch.arange(k) // g
    else:
        if bits == 3:
            codes, zeros = _unpack_stream(t["qweight"], k, 3), _unpack_stream(t["qzeros"].T, n, 3).T
        else:
            codes, zeros = _unpack_words(t["qweight"], bits, 0), _unpack_words(t["qzeros"], bits, 1)
        if layout == "gptq-v1":
            zeros = zeros + 1
        grp = t["g_idx"].to(torch.int64)
    return t["scales"].to(dtype)[grp] * (codes - zeros[grp]).to(dtype)


def _median_seconds(fn, min_time):
    fn()  # warm-up
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _copies_for(nbytes, llc_bytes=64 << 20):
    return max(1, min(8, -(-2 * llc_bytes // max(nbytes, 1))))


def _try_ark_lib(args, tensors, k, n):
    """auto_round_kernel's QuantLinear on the same tensors, or (None, reason). Its CPU path computes in fp32
    with compute dtype "auto" and reads only zero points of asymmetric layers (symmetric ones are 2^(b-1))."""
    try:
        from auto_round_kernel import qlinear as lib  # noqa: PLC0415
    except Exception as e:  # not installed, or incompatible with this torch
        return None, f"auto-round-lib not available ({type(e).__name__}: {e})"
    layout = layout_of(args.packing_format)
    if layout == "awq":
        cls = lib.QuantLinearAWQ
    elif layout == "gptq-v1" and not args.sym:
        cls = lib.QuantLinearGPTQ  # zero points stored minus one
    else:
        cls = lib.QuantLinear
    try:
        layer = cls(args.bits, args.group_size, args.sym, k, n, False, weight_dtype=torch.bfloat16)
        own = layer.state_dict()
        layer.load_state_dict({key: v for key, v in tensors.items() if key in own}, strict=False)
        layer.post_init()
        return layer, f"auto-round-lib {getattr(lib.auto_round_kernel, '__version__', '')} {cls.__name__}"
    except Exception as e:
        return None, f"auto-round-lib QuantLinear failed: {type(e).__name__}: {e}"


def _parse_shapes(text):
    out = []
    for item in text.split(","):
        m, n, k = (int(v) for v in item.lower().split("x"))
        out.append((m, n, k))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m ark.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="1x4096x4096,16x4096x4096,128x4096x4096,1x11008x4096,1x4096x11008",
                   help="comma-separated MxNxK (N = out_features, K = in_features)")
    p.add_argument("--bits", type=int, default=4)
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--sym", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--packing-format", default="auto_round:auto_gptq")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--compute", default="auto", choices=["auto", "exact", "int8"])
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: one per CPU)")
    p.add_argument("--min-time", type=float, default=0.5, help="seconds of timing per measurement")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    assert dtype in FLOAT_DTYPES
    # torch gets as many threads as ark's pool uses (one per CPU) unless told otherwise, so ratios compare
    # like with like.
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    torch.manual_seed(args.seed)

    print(f"# ark.bench: {platform.processor() or platform.machine()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), int{args.bits} g{args.group_size} "
          f"{'sym' if args.sym else 'asym'} {args.packing_format}, x {args.dtype}, compute {args.compute}")
    header = (f"{'M':>5} {'N':>6} {'K':>6} | {'ark ms':>8} {'bf16 ms':>8} {'deq+mm ms':>9} {'lib ms':>8} | "
              f"{'bf16/ark':>8} {'deq/ark':>8} {'lib/ark':>8} | {'ark GB/s':>8}  kernel")
    print(header)
    lib_notes = []
    for m, n, k in _parse_shapes(args.shapes):
        w = torch.randn(n, k) * 0.02
        tensors = ark.quantize_weight(w, args.bits, args.group_size, args.sym, args.packing_format)
        copies = _copies_for(n * k * args.bits // 8) if m < 16 else 1
        layers = []
        for _ in range(copies):
            layer = ark.QuantLinear(args.bits, args.group_size, k, n, False, weight_dtype=torch.float16,
                                    sym=args.sym, packing_format=args.packing_format, compute=args.compute)
            layer.load_state_dict(tensors)
            layers.append(ark.ark_post_init(layer))
        dense = [w.to(torch.bfloat16) for _ in range(copies)]
        x = torch.randn(m, k).to(dtype)
        xb = x.to(torch.bfloat16)
        turn = [0]

        def run_ark():
            turn[0] = (turn[0] + 1) % copies
            layers[turn[0]](x)

        def run_bf16():
            turn[0] = (turn[0] + 1) % copies
            F.linear(xb, dense[turn[0]])

        def run_deq():
            torch.matmul(x, torch_dequantize(tensors, args.bits, args.group_size, args.packing_format, k, n, dtype))

        with torch.no_grad():
            t_ark = _median_seconds(run_ark, args.min_time)
            t_bf16 = _median_seconds(run_bf16, args.min_time)
            t_deq = _median_seconds(run_deq, args.min_time)
            lib, why = _try_ark_lib(args, tensors, k, n)
            t_lib = _median_seconds(lambda: lib(x), args.min_time) if lib is not None else None
            if lib is not None:
                # Same tensors, same meaning: the two layers must agree to within their compute modes.
                ya, yl = layers[0](x).float(), lib(x).float()
                why += f"; max |ark - lib| / max |lib| = {((ya - yl).abs().max() / yl.abs().max()).item():.2e}"
        lib_notes.append(f"{m}x{n}x{k}: {why}")
        gbs = layers[0].packed_bytes / t_ark / 1e9
        lib_ms = f"{t_lib * 1e3:8.3f}" if t_lib else f"{'-':>8}"
        lib_ratio = f"{t_lib / t_ark:8.2f}" if t_lib else f"{'-':>8}"
        print(f"{m:>5} {n:>6} {k:>6} | {t_ark * 1e3:8.3f} {t_bf16 * 1e3:8.3f} {t_deq * 1e3:9.3f} {lib_ms} | "
              f"{t_bf16 / t_ark:8.2f} {t_deq / t_ark:8.2f} {lib_ratio} | {gbs:8.2f}  {layers[0].kernel_name(m)}")
    print("# ratios > 1: ark is faster. ark GB/s: packed weight bytes / ark's median time.")
    for note in lib_notes if lib_notes and "not available" not in lib_notes[0] else lib_notes[:1]:
        print(f"# {note}")


if __name__ == "__main__":
    main()
