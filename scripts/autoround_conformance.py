#!/usr/bin/env python3
"""Checks ark's reading of real AutoRound exports against AutoRound itself.

For each case it builds a tiny random Llama model, quantizes it with the real AutoRound in RTN mode (iters=0,
disable_opt_rtn=True) and exports it in one packing format, then runs `ark dequant` on the export and compares
ark's fp32 weights [N, K] with what the tool meant, in two independent ways:

  1. levels: while AutoRound packs each layer, this script records the layer's fake-quantized weight W_qdq and its
     scale s (fp32, before the exporter rounds it to fp16). The integer level the tool chose for each weight is
     round(W_qdq / s); ark's level is ark_W / s16, exact because ark_W = s16 * (q - z) with few enough bits to be
     exact in fp32. Both must be equal for every weight, and the stored s16 must be fp16(s).
  2. decoder: the export is loaded back with transformers + AutoRound's own inference code (backend "torch") and
     each QuantLinear's dense weight is read out by a forward on an identity matrix. That decoder computes
     s16 * (q - z) in fp16, so fp16(ark_W) must equal it bit for bit.

It also checks that ark quantizes exactly the layers AutoRound quantized (quantization_config resolution,
including extra_config / dynamic for mixed-bit exports).

AutoRound needs torch >= 2 (see docs/CONFORMANCE.md), so this runs from its own virtual environment, not in CI:

  python3 -m venv /work/ar-venv && /work/ar-venv/bin/pip install auto-round==0.16.1
  /work/ar-venv/bin/python scripts/autoround_conformance.py --ark build/ark

Exit status 0 when every case passes. Random weights are seeded; the seed is printed and can be set with
--seed or ARK_TEST_SEED.
"""

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing can be downloaded; fail fast instead of retrying

import numpy as np  # noqa: E402
import torch  # noqa: E402

# (name, export format, bits, group_size, sym, layer_config overrides, expected quantization_config fields)
CASES = [
    ("ar_sym_w4_g128", "auto_round", 4, 128, True, None, {"packing_format": "auto_round:auto_gptq"}),
    ("ar_sym_w4_g32", "auto_round", 4, 32, True, None, {"packing_format": "auto_round:auto_gptq"}),
    ("ar_sym_w2_g32", "auto_round", 2, 32, True, None, {"packing_format": "auto_round:auto_gptq"}),
    ("ar_sym_w3_g128", "auto_round", 3, 128, True, None, {"packing_format": "auto_round:auto_gptq"}),
    ("ar_sym_w8_gm1", "auto_round", 8, -1, True, None, {"packing_format": "auto_round:auto_gptq"}),
    ("ar_asym_w2_g32", "auto_round", 2, 32, False, None, {"packing_format": "auto_round"}),
    ("ar_asym_w3_g128", "auto_round", 3, 128, False, None, {"packing_format": "auto_round"}),
    # AutoRound 0.16 refuses 8-bit asym for this format unless AR_ALLOW_W8_ASYM=1 (its serving kernels lack it);
    # the packing itself is the same as for 2 and 3 bits, so the check sets it.
    ("ar_asym_w8_gm1", "auto_round", 8, -1, False, None, {"packing_format": "auto_round"}),
    ("ar_asym_w4_g32", "auto_round", 4, 32, False, None, {}),
    ("ar_awq_asym_w4_g32", "auto_round:auto_awq", 4, 32, False, None, {"packing_format": "auto_round:auto_awq"}),
    ("awq_asym_w4_g128", "auto_awq", 4, 128, False, None, {"quant_method": "awq"}),
    ("gptq_sym_w4_g128", "auto_gptq", 4, 128, True, None, {"quant_method": "gptq"}),
    ("gptq_asym_w4_g32", "auto_gptq", 4, 32, False, None, {"quant_method": "gptq"}),
    # Mixed schemes: per-layer overrides land in extra_config (auto_round) or dynamic (auto_gptq), and a quantized
    # lm_head sits outside the quantized blocks.
    (
        "ar_asym_mixed",
        "auto_round",
        2,
        64,
        False,
        {
            "model.layers.0.mlp.down_proj": {"bits": 8, "group_size": 32},
            "model.layers.1.self_attn.q_proj": {"bits": 16},
            "lm_head": {"bits": 8, "group_size": 64, "sym": False},
        },
        {"packing_format": "auto_round"},
    ),
    (
        "gptq_sym_mixed",
        "auto_gptq",
        4,
        128,
        True,
        {
            "model.layers.0.mlp.up_proj": {"bits": 8, "group_size": 32},
            "model.layers.1.self_attn.v_proj": {"bits": 16},
        },
        {"quant_method": "gptq"},
    ),
]


def build_model(seed, hidden, intermediate, vocab):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).float()
    # Spread the weights beyond the init's narrow normal so groups see different ranges, a few outliers, and
    # rows whose extremes are one-signed (zero points away from the middle).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.mul_(torch.exp(torch.randn(p.shape[0], 1) * 0.5))
                p.add_(torch.randn(p.shape[0], 1) * 0.01 * (torch.rand(p.shape[0], 1) < 0.2))
                idx = torch.randint(0, p.numel(), (max(1, p.numel() // 500),))
                p.view(-1)[idx] *= 6.0
    return model


class PackRecorder:
    """Records each layer's fake-quantized weight, scale and zero point as AutoRound hands them to its packer."""

    MODULES = [
        "auto_round.export.export_to_autoround.export",
        "auto_round.export.export_to_awq.export",
        "auto_round.export.export_to_autogptq.export",
    ]

    def __init__(self):
        self.layers = {}
        self._saved = []

    def __enter__(self):
        import importlib

        for mod_name in self.MODULES:
            mod = importlib.import_module(mod_name)
            original = mod.pack_layer

            def wrapped(name, model, *args, __original=original, **kwargs):
                layer = model.get_submodule(name)
                if isinstance(layer, torch.nn.Linear) and hasattr(layer, "scale"):
                    zp = layer.zp
                    self.layers[name] = {
                        "qdq": layer.weight.detach().float().clone(),
                        "dtype": str(layer.weight.dtype),
                        "scale": layer.scale.detach().clone(),
                        "zp": zp.detach().clone() if isinstance(zp, torch.Tensor) else zp,
                        "bits": int(layer.bits),
                        "group_size": int(layer.group_size),
                        "sym": bool(layer.sym),
                    }
                return __original(name, model, *args, **kwargs)

            mod.pack_layer = wrapped
            self._saved.append((mod, original))
        return self

    def __exit__(self, *exc):
        for mod, original in self._saved:
            mod.pack_layer = original


def export(case, model, tokenizer, out_dir):
    from auto_round import AutoRound

    name, fmt, bits, group_size, sym, layer_config, _ = case
    kwargs = dict(bits=bits, group_size=group_size, sym=sym, iters=0, disable_opt_rtn=True, device_map="cpu")
    if layer_config:
        kwargs["layer_config"] = layer_config
    log = io.StringIO()
    with PackRecorder() as rec, contextlib.redirect_stdout(log):
        ar = AutoRound(model, tokenizer, **kwargs)
        ar.quantize_and_save(out_dir, format=fmt)
    # AutoRound may write into a sub-folder named after the scheme.
    for root, _, files in os.walk(out_dir):
        if "config.json" in files and any(f.endswith(".safetensors") for f in files):
            return root, rec.layers
    raise RuntimeError(f"{name}: no checkpoint found under {out_dir}")


def load_checkpoint_tensors(ckpt):
    from safetensors.torch import load_file

    tensors = {}
    for f in sorted(os.listdir(ckpt)):
        if f.endswith(".safetensors"):
            tensors.update(load_file(os.path.join(ckpt, f)))
    return tensors


def tool_decoder_weights(ckpt, qcfg, tensors):
    """Dense weights as AutoRound's own code decodes them, in fp16 (s16 * (q - z)).

    GPTQ-layout exports load through transformers + AutoRound's inference (backend "torch": its QuantLinear),
    and each layer's weight is read out by a forward on an identity matrix. AutoRound 0.16 has no CPU QuantLinear
    for AWQ without extra kernel packages (its "torch" choice there is a fake layer that expects dense weights),
    so AWQ exports go through its own AWQ dequantizer, auto_round.export.export_to_awq.utils.dequantize_gemm."""
    is_awq = qcfg.get("quant_method") == "awq" or "awq" in str(qcfg.get("packing_format", ""))
    out, kinds = {}, set()
    if is_awq:
        from auto_round.export.export_to_awq.utils import dequantize_gemm

        kinds.add("auto_round.export.export_to_awq.utils.dequantize_gemm")
        for key in tensors:
            if key.endswith(".qweight"):
                layer = key[: -len(".qweight")]
                qweight, qzeros, scales = (tensors[f"{layer}.{t}"] for t in ("qweight", "qzeros", "scales"))
                group_size = qweight.shape[0] // scales.shape[0]
                w = dequantize_gemm(qweight, qzeros, scales, 4, group_size)  # [K, N], in the scales' dtype
                out[layer] = w.float().t().contiguous()
        return out, sorted(kinds)

    from transformers import AutoModelForCausalLM, AutoRoundConfig

    with contextlib.redirect_stdout(io.StringIO()):
        model = AutoModelForCausalLM.from_pretrained(
            ckpt, device_map="cpu", quantization_config=AutoRoundConfig(backend="torch")
        )
    with torch.no_grad():
        for name, mod in model.named_modules():
            if not hasattr(mod, "qweight"):
                continue
            kinds.add(f"{type(mod).__module__}.{type(mod).__name__}")
            k = mod.infeatures if hasattr(mod, "infeatures") else mod.in_features
            bias = getattr(mod, "bias", None)
            eye = torch.eye(k, dtype=torch.float32)
            y = mod(eye)  # [K, N] = I @ W^T (+ bias)
            if bias is not None:
                y = y - bias.float()
            out[name] = y.t().contiguous()
    # Layers the loader did not turn into a QuantLinear (AutoRound's CPU "torch" choice for asymmetric
    # auto_gptq is its fake layer, which expects dense weights): decode them with the same torch QuantLinear
    # classes, built by hand from the checkpoint tensors (zp variant for v1 zeros, plain for v2).
    v1 = qcfg.get("quant_method") == "gptq" or qcfg.get("packing_format") in ("auto_round:auto_gptq", None)
    if v1:
        from auto_round_extension.torch.qlinear_torch_zp import QuantLinear
    else:
        from auto_round_extension.torch.qlinear_torch import QuantLinear
    for key in tensors:
        layer = key[: -len(".qweight")]
        if not key.endswith(".qweight") or layer in out:
            continue
        qweight, qzeros, scales = (tensors[f"{layer}.{t}"] for t in ("qweight", "qzeros", "scales"))
        n = scales.shape[1]
        bits = qzeros.shape[1] * 32 // n
        k = qweight.shape[0] * 32 // bits
        group_size = k // scales.shape[0]
        g_idx = tensors.get(f"{layer}.g_idx")
        # These exports have no act-order; the class's g_idx path slices scales by K, so leave it out.
        if g_idx is not None and not torch.equal(g_idx.long(), torch.arange(k) // group_size):
            continue
        ql = QuantLinear(bits, group_size, k, n, bias=False)
        ql.qweight, ql.qzeros, ql.scales = qweight, qzeros, scales
        ql.post_init()
        kinds.add(f"{QuantLinear.__module__}.QuantLinear (built by hand)")
        with torch.no_grad():
            out[layer] = ql(torch.eye(k, dtype=torch.float32)).t().contiguous()
    return out, sorted(kinds)


def run_case(case, args, tokenizer, seed):
    name, fmt, bits, group_size, sym, layer_config, expect_cfg = case
    work = os.path.join(args.work, name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    t0 = time.time()
    model = build_model(seed, args.hidden, args.intermediate, args.vocab)
    ckpt, recorded = export(case, model, tokenizer, os.path.join(work, "export"))
    qcfg = json.load(open(os.path.join(ckpt, "config.json"))).get("quantization_config", {})
    problems = []
    for key, value in expect_cfg.items():
        if qcfg.get(key) != value:
            problems.append(f"config {key}={qcfg.get(key)!r}, expected {value!r}")

    ark_out = os.path.join(work, "ark_dequant.safetensors")
    proc = subprocess.run(
        [args.ark, "dequant", "--model", ckpt, "--out", ark_out, "--quiet"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return {"case": name, "ok": False, "problems": [f"ark dequant failed: {proc.stderr.strip()}"], "config": qcfg}
    from safetensors.numpy import load_file

    ark = {k[: -len(".weight")]: v for k, v in load_file(ark_out).items()}
    tensors = load_checkpoint_tensors(ckpt)
    decoded, kinds = tool_decoder_weights(ckpt, qcfg, tensors)
    stored_scales = {k[: -len(".scales")]: t for k, t in tensors.items() if k.endswith(".scales")}

    if set(ark) != set(recorded):
        problems.append(f"layers: ark {sorted(set(ark) ^ set(recorded))} differ from the tool's packed layers")
    findings = []  # the tool disagreeing with itself; ark is judged against the file and the packer
    if set(decoded) != set(recorded):
        findings.append(
            f"AutoRound's loader makes QuantLinear layers {sorted(set(decoded) - set(recorded))} with no packed "
            f"tensors in the export; packed but not loaded as such: {sorted(set(recorded) - set(decoded))}"
        )
    claimed = [line for line in proc.stderr.splitlines() if line.startswith("note:")]
    if claimed:
        findings.append("quantization_config claims layers the export stores dense: " + "; ".join(claimed))

    v1_layout = qcfg.get("quant_method") == "gptq" or qcfg.get("packing_format") == "auto_round:auto_gptq"
    worst_step = 0.0
    worst_abs = 0.0
    worst_residual = 0.0
    ties = 0
    dtypes = set()
    n_weights = 0
    schemes = set()
    for layer in sorted(set(ark) & set(recorded)):
        rec = recorded[layer]
        schemes.add((rec["bits"], rec["group_size"], rec["sym"]))
        dtypes.add(f"weight {rec['dtype']}, scale {rec['scale'].dtype}")
        w_ark = torch.from_numpy(ark[layer])  # [N, K] fp32
        qdq = rec["qdq"]
        n, k = qdq.shape
        if tuple(w_ark.shape) != (n, k):
            problems.append(f"{layer}: ark shape {tuple(w_ark.shape)}, tool {(n, k)}")
            continue
        n_weights += n * k
        gs = k if rec["group_size"] == -1 else rec["group_size"]
        scale = rec["scale"].float().reshape(n, -1)
        scale_k = scale.repeat_interleave(gs, dim=1)[:, :k]
        scale16_k = scale_k.half().float()
        # The tool's level for each weight, as its packer computes it from the recorded weight:
        # round(W / s + z) - z in fp32 (clamped to the code range), and ark's.
        zp = rec["zp"]
        zp_k = (zp.float().reshape(n, -1).repeat_interleave(gs, dim=1)[:, :k] if isinstance(zp, torch.Tensor)
                else torch.full((n, k), float(zp)))
        maxq = 2 ** rec["bits"] - 1
        level_tool_f = qdq / scale_k
        level_tool = torch.round(qdq / scale_k + zp_k).clamp(0, maxq) - zp_k
        # Where the quantizer's nearest level and the packer's differ: the recorded weight sits on a tie.
        ties += (torch.round(level_tool_f) != level_tool).sum().item()
        # How far the recorded weight sits from its level: it is stored in the model's dtype (bf16 under AutoRound's
        # default amp), which for 8 bits cannot hold every level exactly, so this is reported, not judged.
        worst_residual = max(worst_residual, (level_tool_f - torch.round(level_tool_f)).abs().max().item())
        level_ark = w_ark / scale16_k
        if not torch.equal(level_ark, torch.round(level_ark)):
            problems.append(f"{layer}: ark weights are not integer multiples of fp16(scale)")
        mismatch = level_ark != level_tool
        mism = mismatch.sum().item()
        if mism:
            # GPTQ v1 stores zero - 1; AutoRound 0.16 clamps the -1 of a zero point 0 to 0, which every v1
            # reader (AutoRound's own decoder included, checked below) reads as zero 1: the whole group is one
            # step off. That is the file, not the reader; anything else is ark's fault.
            zero0 = (zp_k == 0) if v1_layout else torch.zeros_like(mismatch)
            shifted = (level_ark == level_tool - 1) & zero0
            if torch.equal(mismatch, shifted & mismatch) and torch.equal(mismatch, zero0):
                groups = int(zero0.sum().item()) // gs
                findings.append(f"{layer}: {groups} groups with zero point 0 are stored as zero 1 (v1 clamp)")
            else:
                problems.append(f"{layer}: {mism} of {n * k} levels differ from the tool's")
        stored = stored_scales.get(layer)
        if stored is None or not torch.equal(stored.float().t(), scale.half().float()):
            problems.append(f"{layer}: stored scales are not fp16 of the tool's scales")
        worst_step = max(worst_step, ((w_ark - qdq).abs() / scale_k.abs()).max().item())
        worst_abs = max(worst_abs, (w_ark - qdq).abs().max().item())
        # Independent decoder: AutoRound's QuantLinear, in fp16.
        if layer in decoded:
            dec = decoded[layer]
            if tuple(dec.shape) != (n, k):
                problems.append(f"{layer}: tool decoder shape {tuple(dec.shape)}")
            else:
                diff = (w_ark.half().float() != dec).sum().item()
                if diff:
                    d = (w_ark.half().float() - dec).abs().max().item()
                    problems.append(f"{layer}: {diff} weights differ from the tool's decoder (max {d:.3g})")
    return {
        "case": name,
        "format": fmt,
        "ok": not problems,
        "problems": problems,
        "findings": findings,
        "config": {k: qcfg.get(k) for k in ("quant_method", "packing_format", "bits", "group_size", "sym")},
        "extra": sorted((qcfg.get("extra_config") or qcfg.get("dynamic") or {}).keys()),
        "layers": len(ark),
        "weights": n_weights,
        "schemes": sorted(schemes),
        "decoder": kinds,
        "worst_step": worst_step,
        "worst_residual": worst_residual,
        "ties": ties,
        "recorded_dtypes": sorted(dtypes),
        "worst_abs": worst_abs,
        "seconds": time.time() - t0,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ark", default="build/ark", help="the ark program")
    p.add_argument("--work", default="/tmp/ark-autoround-conformance", help="scratch folder for exports")
    p.add_argument("--tokenizer", default=os.path.join(os.path.dirname(__file__), "../../shared/data/tokenizers/llama2"))
    p.add_argument("--cases", default="all", help="comma-separated case names, or 'all'")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--intermediate", type=int, default=512)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--json", help="write the results here too")
    args = p.parse_args()

    seed = args.seed if args.seed is not None else int(os.environ.get("ARK_TEST_SEED", random.randrange(1 << 31)))
    import auto_round
    import transformers
    from transformers import AutoTokenizer

    print(
        f"seed {seed} (replay with --seed {seed}); auto-round {auto_round.__version__}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; model hidden {args.hidden}, intermediate {args.intermediate}"
    )
    tokenizer = AutoTokenizer.from_pretrained(os.path.abspath(args.tokenizer))
    cases = CASES if args.cases == "all" else [c for c in CASES if c[0] in args.cases.split(",")]
    results = []
    os.environ["AR_ALLOW_W8_ASYM"] = "1"
    for i, case in enumerate(cases):
        try:
            r = run_case(case, args, tokenizer, seed + i)
        except Exception as e:  # one broken case must not hide the others
            import traceback

            traceback.print_exc()
            r = {"case": case[0], "ok": False, "problems": [f"{type(e).__name__}: {e}"]}
        results.append(r)
        status = "PASS" if r["ok"] else "FAIL"
        cfg = r.get("config", {})
        print(
            f"{status} {r['case']:<20} {cfg.get('quant_method')}/{cfg.get('packing_format')} "
            f"layers {r.get('layers')} weights {r.get('weights')} max|ark-qdq| {r.get('worst_abs', 0):.3g} "
            f"({r.get('worst_step', 0):.2e} steps) {r.get('seconds', 0):.1f}s"
        )
        if r.get("recorded_dtypes"):
            print(f"    recorded {r['recorded_dtypes']}, grid residual {r['worst_residual']:.3f}, "
                  f"packer/nearest-level ties {r['ties']}, decoder {r['decoder']}")
        for prob in r["problems"][:10]:
            print(f"    {prob}")
        for note in r.get("findings", [])[:10]:
            print(f"    finding: {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seed": seed, "auto_round": auto_round.__version__, "torch": torch.__version__,
                       "transformers": transformers.__version__, "results": results}, f, indent=1, default=str)
    failed = [r["case"] for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
