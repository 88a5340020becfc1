#!/usr/bin/env python3
"""The perplexity `ark perplexity` computes, computed with Hugging Face transformers on the same windows, so the
two can be compared (issue 7 asks for agreement within 0.5% on the fp16 and the int4 default model).

Windows (as ark/perplexity.h and llama.cpp): the file is tokenized whole with no special tokens; windows of ctx
tokens start at 0, stride, 2*stride, ... (stride defaults to ctx; a tail shorter than ctx is dropped); each runs
on its own, and only the predictions of tokens first+1 .. ctx-1 of the window are scored, first = ctx // 2.
Logits come from the model in float32; -log softmax is taken in float64.

How the model is loaded:
  an unquantized checkpoint: AutoModelForCausalLM in float32 (fp16 / bf16 weights widened exactly);
  a quantized one, --load dequant (default): its weights dequantized by scripts/reference_model.py (a NumPy
    decoder that shares no code with ark) into an fp32 transformers checkpoint in a temporary folder;
  a quantized one, --load auto-round: transformers with AutoRound's own CPU backend (needs auto-round).

    python scripts/perplexity_transformers.py --model DIR --file TEXT [--ctx 256] [--stride S] [--max-windows W]
        [--load dequant|auto-round] [--ark-json F]   (F: `ark perplexity --json-out F`; compares and exits 1 when
                                                       the perplexities differ by more than --tolerance, 0.5%)
"""

import argparse
import json
import math
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def window_starts(n, ctx, stride, max_windows):
    stride = stride or ctx
    starts = list(range(0, n - ctx + 1, stride)) if n >= ctx else []
    return starts[:max_windows] if max_windows else starts


def window_nll(logits, ids, first):
    """Sum of -log p over positions first .. ctx-2 predicting ids[first+1 ..]: logits [ctx, vocab] float64."""
    rows = logits[first:-1]
    mx = rows.max(axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(rows - mx).sum(axis=1))
    targets = ids[first + 1 :]
    return float((lse - rows[np.arange(len(targets)), targets]).sum()), len(targets)


def load_model(model_dir, how, workdir):
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    cfg = json.loads((pathlib.Path(model_dir) / "config.json").read_text())
    if "quantization_config" not in cfg:
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), "float32 (as stored, widened)"
    if how == "auto-round":
        import auto_round  # noqa: PLC0415, F401  (transformers hands "auto-round" checkpoints to it)

        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, device_map="cpu")
        return model, "transformers + auto-round's backend"
    import reference_transformers  # noqa: PLC0415

    reference_transformers.hf_checkpoint(model_dir, workdir)
    model = AutoModelForCausalLM.from_pretrained(workdir, dtype=torch.float32)
    return model, "dequantized by scripts/reference_model.py to float32"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--stride", type=int, default=0)
    ap.add_argument("--max-windows", type=int, default=0)
    ap.add_argument("--load", choices=["dequant", "auto-round"], default="dequant")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8, help="windows per forward pass")
    ap.add_argument("--ark-json", help="ark perplexity --json-out output to compare against")
    ap.add_argument("--tolerance", type=float, default=0.005, help="relative perplexity difference allowed")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    if args.ctx < 4:
        sys.exit("error: --ctx must be at least 4")

    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    from transformers import AutoTokenizer  # noqa: PLC0415

    if args.threads:
        torch.set_num_threads(args.threads)
    text = pathlib.Path(args.file).read_text(encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(args.model)
    ids = np.asarray(tok(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
    starts = window_starts(len(ids), args.ctx, args.stride, args.max_windows)
    if not starts:
        sys.exit(f"error: {len(ids)} tokens, fewer than one window of {args.ctx}")
    first = args.ctx // 2
    with tempfile.TemporaryDirectory() as work:
        model, how = load_model(args.model, args.load, work)
        model.eval()
        windows, t0 = [], time.time()
        with torch.no_grad():
            for b in range(0, len(starts), args.batch):
                chunk = starts[b : b + args.batch]
                x = torch.from_numpy(np.stack([ids[s : s + args.ctx] for s in chunk]))
                logits = model(input_ids=x).logits.double().numpy()
                for s, row in zip(chunk, logits):
                    nll, n = window_nll(row, ids[s : s + args.ctx], first)
                    windows.append({"start": s, "nll_sum": nll, "scored": n})
                print(f"\r{len(windows)}/{len(starts)} windows", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    nll = sum(w["nll_sum"] for w in windows)
    scored = sum(w["scored"] for w in windows)
    result = {
        "model": args.model,
        "file": args.file,
        "tokens": int(len(ids)),
        "ctx": args.ctx,
        "stride": args.stride or args.ctx,
        "loaded": how,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "perplexity": math.exp(nll / scored),
        "nll_sum": nll,
        "scored": scored,
        "seconds": time.time() - t0,
        "windows": windows,
    }
    print(
        f"transformers perplexity {result['perplexity']:.4f} over {scored} scored tokens in {len(windows)} windows "
        f"of {args.ctx} ({how}; transformers {transformers.__version__}, torch {torch.__version__})"
    )
    if args.json_out:
        pathlib.Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n")
    if args.ark_json:
        ark = json.loads(pathlib.Path(args.ark_json).read_text())
        same = ark["scored"] == scored and [w["start"] for w in ark["windows"]] == [w["start"] for w in windows]
        rel = ark["perplexity"] / result["perplexity"] - 1
        worst = max(
            (abs(a["nll_sum"] - b["nll_sum"]) / max(b["scored"], 1) for a, b in zip(ark["windows"], windows)),
            default=0.0,
        )
        ok = same and abs(rel) <= args.tolerance
        print(
            f"ark perplexity {ark['perplexity']:.4f} ({ark.get('quantization', '?')}, mode {ark.get('mode', '?')}): "
            f"{100 * rel:+.3f}% vs transformers; largest per-window mean-nll difference {worst:.2e}; "
            f"same windows: {same}; {'OK' if ok else 'MISMATCH'} (tolerance {100 * args.tolerance:.2f}%)"
        )
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
