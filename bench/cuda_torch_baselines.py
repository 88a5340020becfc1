"""torch baselines for bench/cuda_linear_bench.cu, on the same shapes and the same method: bf16 F.linear
(cuBLAS) and torch._weight_int4pack_mm (PyTorch's int4 g128 kernel), weights rotated over more than 200 MB,
each timed loop one CUDA graph of one call per copy. Prints CSV: K,N,M,torch_bf16_us,torch_int4_us.

    python3 bench/cuda_torch_baselines.py [--quick]
"""

import sys

import torch
import torch.nn.functional as F

ROTATE = 200 << 20
SHAPES = [(4096, 4096), (4096, 11008), (11008, 4096), (8192, 8192), (8192, 28672), (28672, 8192)]
MS = [1, 16, 32, 64, 128, 256, 1024]


def time_graph(calls, reps):
    """Mean seconds per call of a captured graph holding every call of `calls` once."""
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for c in calls:  # warm-up outside capture (lazy init, workspace)
            c()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=stream):
        for c in calls:
            c()
    g.replay()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        g.replay()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) * 1e-3 / (reps * len(calls))


def int4_weights(n, k, group, copies):
    """Packed int4 weights and scale/zero tensors for torch._weight_int4pack_mm, or None if unsupported."""
    try:
        out = []
        for _ in range(copies):
            q = torch.randint(0, 16, (n, k), dtype=torch.int32, device="cuda")
            packed_u8 = ((q[:, ::2] << 4) | q[:, 1::2]).to(torch.uint8)
            wp = torch._convert_weight_to_int4pack(packed_u8, 8)
            sz = torch.rand(k // group, n, 2, device="cuda", dtype=torch.bfloat16)
            out.append((wp, sz))
        return out
    except Exception as e:  # noqa: BLE001 - report and go on: the baseline is optional
        print(f"# torch int4 unavailable: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def main():
    quick = "--quick" in sys.argv
    shapes = [(4096, 4096), (8192, 28672)] if quick else SHAPES
    ms = [1, 16, 256] if quick else MS
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("K,N,M,torch_bf16_us,torch_int4_us")
    for k, n in shapes:
        bcopies = ROTATE // (n * k * 2) + 2
        wb = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02 for _ in range(bcopies)]
        qcopies = ROTATE // (n * k // 2) + 2
        w4 = int4_weights(n, k, 128, qcopies)
        for m in ms:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            reps = 3 if m >= 256 else 10
            t_bf16 = time_graph([lambda w=w: F.linear(x, w) for w in wb], reps)
            t_int4 = float("nan")
            if w4 is not None:
                try:
                    t_int4 = time_graph(
                        [lambda p=p: torch._weight_int4pack_mm(x, p[0], 128, p[1]) for p in w4], reps
                    )
                except Exception as e:  # noqa: BLE001
                    print(f"# torch int4 M={m}: {type(e).__name__}: {e}", file=sys.stderr)
            print(f"{k},{n},{m},{t_bf16 * 1e6:.2f},{t_int4 * 1e6:.2f}", flush=True)
        del wb, w4
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
