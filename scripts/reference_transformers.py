#!/usr/bin/env python3
"""ark against Hugging Face transformers on the same checkpoints: each case is a tiny random checkpoint from
`ark make-model`; its weights are dequantized (scripts/reference_model.py's decoder, independent of ark) into an
fp32 transformers checkpoint, run by AutoModelForCausalLM in float32 (eager attention), and compared with
`ark generate --prompt-ids --logits-out` in exact mode: max |logit difference| over every prompt position, and
greedy tokens (16 new tokens, EOS ignored) must be identical.

MoE cases (Qwen2-MoE, Qwen3-MoE, Mixtral) build the transformers model from its config and load the
dequantized weights with load_state_dict, mapped onto whatever module layout the installed transformers has:
transformers 5 fuses each layer's experts into 3-D parameters (mlp.experts.gate_up_proj [E, 2I, H] = gate rows
then up rows, mlp.experts.down_proj [E, H, I]); earlier versions keep one Linear per expert
(mlp.experts.<e>.gate_proj, or Mixtral's block_sparse_moe.experts.<e>.w1 / w3 / w2). Experts and attention run
their "eager" implementations.

Needs transformers with a torch it accepts. Debian's torch 1.13 works with transformers <= 4.49 (Qwen2, Llama;
Qwen3 arrived in 4.51, which needs torch.distributed.tensor, i.e. torch >= 2.x), so Qwen3 is checked where a newer
torch exists (the GPU machine). Cases whose architecture the installed transformers lacks are reported as
skipped. Prints one JSON line per case; exits non-zero on a mismatch.

    python scripts/reference_transformers.py --ark build/ark [--cases all] [--workdir DIR]
    python scripts/reference_transformers.py --step prepare --workdir W   (here; then on a machine with a newer
    python scripts/reference_transformers.py --step compare --workdir W    torch, e.g. for Qwen3)

--step autoround (needs the auto-round package) checks checkpoints the real AutoRound exports rather than
make-model's: tiny random Qwen3-MoE / Qwen2-MoE / Mixtral models from transformers, quantized by AutoRound in RTN
mode (iters=0), then ark (exact mode) against the float64 reference on the exported tensors (same tolerance as
above, greedy identical) and against AutoRound's own inference in transformers (it runs in fp16, so the check
there is max |difference| <= 1e-2 x max |logit| and the same argmax at every prompt position).

    python scripts/reference_transformers.py --ark build/ark --step autoround [--workdir DIR]
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference_model  # noqa: E402

CASES = {
    "qwen2-gptq-v1-int4-sym": ["--arch", "qwen2", "--tied"],
    "qwen2-gptq-v2-int8-asym": ["--arch", "qwen2", "--format", "auto_round:gptqmodel", "--bits", "8", "--asym"],
    "llama-awq-int4-asym-llama3-rope": ["--arch", "llama", "--format", "auto_round:auto_awq", "--asym",
                                        "--llama3-rope-scaling", "--max-position-embeddings", "256"],
    "llama-gptq-v1-int2-unquantized-layer": ["--arch", "llama", "--bits", "2", "--group-size", "16",
                                             "--unquantized", "model.layers.0.mlp.down_proj"],
    "qwen3-gptq-v2-int3-quantized-lm-head": ["--arch", "qwen3", "--format", "auto_round", "--bits", "3",
                                             "--quantize-lm-head"],
    "qwen3-gptq-v1-int4-tied": ["--arch", "qwen3", "--tied"],
    "qwen3-moe-gptq-v1-int4": ["--preset", "tiny-qwen3-moe"],
    "qwen3-moe-awq-int4-asym-not-renormalized": ["--preset", "tiny-qwen3-moe", "--format", "auto_round:auto_awq",
                                                 "--asym", "--norm-topk-prob", "false", "--experts-per-tok", "3"],
    "qwen2-moe-gptq-v2-int8-shared-expert-dense-layer": ["--preset", "tiny-qwen2-moe", "--format",
                                                         "auto_round:gptqmodel", "--bits", "8"],
    "qwen2-moe-gptq-v1-int3-sparse-step-2": ["--preset", "tiny-qwen2-moe", "--bits", "3", "--mlp-only-layers",
                                             "0", "--decoder-sparse-step", "2", "--layers", "4"],
    "mixtral-gptq-v1-int4": ["--preset", "tiny-mixtral", "--experts", "8"],
    "mixtral-w123-names-int2": ["--preset", "tiny-mixtral", "--moe-names", "w123", "--bits", "2",
                                "--group-size", "16"],
    "mixtral-block-sparse-moe-names-awq-int4": ["--preset", "tiny-mixtral", "--moe-names", "block_sparse_moe",
                                                "--format", "auto_round:auto_awq"],
}
# Exact ties in the router: ark and scripts/reference_model.py give them to the lower expert id; torch.topk
# leaves them unspecified (on CPU it often takes the higher id), so this case is expected to differ from
# transformers and is run only when named.
TIE_CASES = {
    "qwen3-moe-router-ties": ["--preset", "tiny-qwen3-moe", "--router-ties", "--experts-per-tok", "3"],
}
SIZE = ["--hidden", "128", "--heads", "4", "--kv-heads", "2", "--intermediate", "256", "--layers", "3",
        "--vocab", "512"]
# MoE presets keep their own layer counts and expert sizes; hidden 128 as above.
MOE_SIZE = ["--hidden", "128", "--heads", "4", "--kv-heads", "2", "--vocab", "512", "--moe-intermediate", "64"]
NEW_TOKENS = 16


def hf_checkpoint(model_dir, out_dir):
    """fp32 transformers checkpoint with the dequantized weights of `model_dir`."""
    import torch  # noqa: PLC0415
    from safetensors.torch import save_file  # noqa: PLC0415

    ref = reference_model.Reference(model_dir)
    cfg = json.loads((pathlib.Path(model_dir) / "config.json").read_text())
    cfg.pop("quantization_config", None)
    cfg["torch_dtype"] = "float32"
    t = {"model.embed_tokens.weight": ref.embed, "model.norm.weight": ref.norm}
    names = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
             "mlp.up_proj", "mlp.down_proj"]
    for i, L in enumerate(ref.layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = L["in_norm"]
        t[p + "post_attention_layernorm.weight"] = L["post_norm"]
        if L["q_norm"] is not None:
            t[p + "self_attn.q_norm.weight"] = L["q_norm"]
            t[p + "self_attn.k_norm.weight"] = L["k_norm"]
        for n in names:
            w, b = L[n]
            t[p + n + ".weight"] = w
            if b is not None:
                t[p + n + ".bias"] = b
    if ref.lm_head is not ref.embed:
        t["lm_head.weight"] = ref.lm_head
        cfg["tie_word_embeddings"] = False
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in t.items()},
              str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(cfg, indent=2))


def moe_state(ref, keys):
    """The dequantized MoE tensors under the names of the transformers model whose state-dict keys are `keys`."""
    t = {}
    for i, L in enumerate(ref.layers):
        if "router" not in L:
            continue
        p = f"model.layers.{i}."
        ex = L["experts"]
        if p + "mlp.experts.gate_up_proj" in keys:  # transformers 5: fused [E, 2I, H] and [E, H, I]
            t[p + "mlp.experts.gate_up_proj"] = np.stack([np.concatenate([g, u], axis=0) for g, u, _ in ex])
            t[p + "mlp.experts.down_proj"] = np.stack([d for _, _, d in ex])
            t[p + "mlp.gate.weight"] = L["router"]
        elif p + "block_sparse_moe.experts.0.w1.weight" in keys:  # Mixtral before transformers 5
            for e, (g, u, d) in enumerate(ex):
                for n, w in (("w1", g), ("w3", u), ("w2", d)):
                    t[f"{p}block_sparse_moe.experts.{e}.{n}.weight"] = w
            t[p + "block_sparse_moe.gate.weight"] = L["router"]
        else:  # one Linear per expert (Qwen MoE before transformers 5)
            for e, (g, u, d) in enumerate(ex):
                for n, w in (("gate_proj", g), ("up_proj", u), ("down_proj", d)):
                    t[f"{p}mlp.experts.{e}.{n}.weight"] = w
            t[p + "mlp.gate.weight"] = L["router"]
        if L["shared"] is not None:
            for n, w in zip(("gate_proj", "up_proj", "down_proj"), L["shared"]):
                t[f"{p}mlp.shared_expert.{n}.weight"] = w
            t[p + "mlp.shared_expert_gate.weight"] = L["shared_gate"]
    return t


def hf_moe_model(model_dir):
    """A transformers MoE model in float32 holding the dequantized weights of `model_dir`."""
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    ref = reference_model.Reference(model_dir)
    cfg = json.loads((pathlib.Path(model_dir) / "config.json").read_text())
    cfg.pop("quantization_config", None)
    cfg["torch_dtype"] = "float32"
    arch = cfg["architectures"][0]
    config = transformers.AutoConfig.for_model(**{k: v for k, v in cfg.items() if k != "architectures"})
    cls = getattr(transformers, arch)
    try:
        model = cls._from_config(config, attn_implementation="eager", experts_implementation="eager",
                                 torch_dtype=torch.float32)
    except (TypeError, ValueError):  # transformers before experts_implementation
        model = cls._from_config(config, attn_implementation="eager", torch_dtype=torch.float32)
    keys = set(model.state_dict())
    t = {"model.embed_tokens.weight": ref.embed, "model.norm.weight": ref.norm}
    for i, L in enumerate(ref.layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = L["in_norm"]
        t[p + "post_attention_layernorm.weight"] = L["post_norm"]
        if L["q_norm"] is not None:
            t[p + "self_attn.q_norm.weight"] = L["q_norm"]
            t[p + "self_attn.k_norm.weight"] = L["k_norm"]
        for n, wb in L.items():
            if n.startswith(("self_attn.", "mlp.")) and isinstance(wb, tuple):
                t[p + n + ".weight"] = wb[0]
                if wb[1] is not None:
                    t[p + n + ".bias"] = wb[1]
    t.update(moe_state(ref, keys))
    if "lm_head.weight" in keys:  # tied models list it too, as the embedding's tensor
        t["lm_head.weight"] = ref.lm_head
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in t.items()}
    unexpected = set(state) - keys
    missing = keys - set(state)
    if unexpected or missing:
        raise SystemExit(f"{model_dir}: tensors not mapped onto {arch}: unexpected {sorted(unexpected)[:5]}, "
                         f"missing {sorted(missing)[:5]}")
    model.load_state_dict(state, strict=True)
    return model.float().eval()


def prepare_case(ark, name, flags, work, seed):
    """The ark side: checkpoint, prompt, ark's logits and greedy tokens, all under work/name."""
    d = work / name
    model = d / "model"
    size = MOE_SIZE if "--preset" in flags else SIZE
    subprocess.run([ark, "make-model", "--out", str(model), "--seed", str(seed), *size, *flags], check=True,
                   capture_output=True)
    rng = np.random.default_rng(seed)
    ids = [int(x) for x in rng.integers(0, 512, size=24)]
    out = subprocess.run([ark, "generate", "--model", str(model), "--prompt-ids", ",".join(map(str, ids)),
                          "--logits-out", str(d / "ark_logits.bin"), "--max-tokens", str(NEW_TOKENS), "--mode",
                          "exact", "--ignore-eos", "--no-stats"], check=True, capture_output=True, text=True)
    (d / "ark.json").write_text(json.dumps({"ids": ids, "tokens": json.loads(out.stdout)}))


def compare_case(name, work):
    """The transformers side, from what prepare_case left (so it can run on another machine)."""
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    d = work / name
    model = d / "model"
    arch = json.loads((model / "config.json").read_text())["architectures"][0]
    if not hasattr(transformers, arch):
        return {"case": name, "status": "skipped", "why": f"transformers {transformers.__version__} lacks {arch}"}
    saved = json.loads((d / "ark.json").read_text())
    ids, ark_tokens = saved["ids"], saved["tokens"]
    if reference_model.moe_config(json.loads((model / "config.json").read_text())) is not None:
        hf = hf_moe_model(model)
    else:
        hf_dir = d / "hf"
        hf_checkpoint(model, hf_dir)
        hf = getattr(transformers, arch).from_pretrained(str(hf_dir), torch_dtype=torch.float32,
                                                         attn_implementation="eager")
        hf.eval()
    with torch.no_grad():
        want = hf(torch.tensor([ids])).logits[0].numpy()
        # Greedy by hand: generate() imports torch.distributed.fsdp, which torch 1.13 cannot import on
        # Python 3.11; argmax over the full-sequence forward is what greedy generate() computes.
        seq = list(ids)
        for _ in range(NEW_TOKENS):
            seq.append(int(hf(torch.tensor([seq])).logits[0, -1].argmax()))
    hf_tokens = seq[len(ids):]
    got = np.fromfile(d / "ark_logits.bin", dtype=np.float32).reshape(want.shape)
    err = float(np.abs(got - want).max())
    scale = float(np.abs(want).max())
    ok = err <= 1e-4 * scale and ark_tokens == hf_tokens
    return {"case": name, "status": "ok" if ok else "MISMATCH", "max_abs_diff": err, "max_abs_logit": scale,
            "greedy_equal": ark_tokens == hf_tokens, "transformers": transformers.__version__,
            "torch": torch.__version__}


AUTOROUND_CASES = {  # name: transformers config class and fields, AutoRound's scheme
    "autoround-qwen3-moe-int4-sym": (
        "Qwen3MoeConfig", dict(num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, moe_intermediate_size=32,
                               intermediate_size=96), dict(bits=4, group_size=32, sym=True)),
    # int4 asym exports in the AWQ layout, for which AutoRound 0.16.1 has no CPU inference (its "fake" module
    # fails): checked against the float64 reference only
    "autoround-qwen3-moe-int4-asym-awq": (
        "Qwen3MoeConfig", dict(num_experts=8, num_experts_per_tok=3, norm_topk_prob=False, moe_intermediate_size=32,
                               intermediate_size=96), dict(bits=4, group_size=32, sym=False)),
    "autoround-qwen2-moe-int2-g16-asym-shared-expert-dense-layer": (
        "Qwen2MoeConfig", dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                               shared_expert_intermediate_size=64, intermediate_size=96, mlp_only_layers=[1]),
        dict(bits=2, group_size=16, sym=False)),
    "autoround-mixtral-int4-sym": (
        "MixtralConfig", dict(num_local_experts=4, num_experts_per_tok=2, intermediate_size=64),
        dict(bits=4, group_size=32, sym=True)),
}


def autoround_case(ark, name, work, seed):
    """A tiny random MoE model quantized by the real AutoRound; ark against the float64 reference and against
    AutoRound's inference on the export."""
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    from auto_round import AutoRound  # noqa: PLC0415
    from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: PLC0415

    cfg_cls, fields, scheme = AUTOROUND_CASES[name]
    torch.manual_seed(seed)
    cfg = getattr(transformers, cfg_cls)(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, head_dim=16, vocab_size=512, **fields)
    cfg.architectures = [cfg_cls.replace("Config", "ForCausalLM")]  # AutoRound's export copies it from here
    model = getattr(transformers, cfg.architectures[0])(cfg)
    with torch.no_grad():  # weights of unit-scale activations (the default init leaves near-uniform logits)
        for n, prm in model.named_parameters():
            if prm.dim() >= 2:
                prm.normal_(0, 1.0 / prm.shape[-1] ** 0.5)
            elif "norm" in n:
                prm.uniform_(0.8, 1.2)
    # AutoRound wants a tokenizer even in RTN mode: a word-level one over the 512 ids.
    t = Tokenizer(models.WordLevel({f"w{i}": i for i in range(511)} | {"<unk>": 511}, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>", eos_token="<unk>")
    d = work / name
    ar = AutoRound(model, tok, iters=0, disable_opt_rtn=True, device_map="cpu", **scheme)
    ar.quantize_and_save(str(d / "export"), format="auto_round")
    export = next(p.parent for p in (d / "export").rglob("config.json"))

    ids = [int(x) for x in np.random.default_rng(seed).integers(0, 512, size=24)]
    out = subprocess.run([ark, "generate", "--model", str(export), "--prompt-ids", ",".join(map(str, ids)),
                          "--logits-out", str(d / "ark_logits.bin"), "--max-tokens", str(NEW_TOKENS), "--mode",
                          "exact", "--ignore-eos", "--no-stats"], check=True, capture_output=True, text=True)
    ark_tokens = json.loads(out.stdout)
    ref = reference_model.Reference(export)
    want = ref.logits(ids)
    got = np.fromfile(d / "ark_logits.bin", dtype=np.float32).reshape(want.shape)
    scale = float(np.abs(want).max())
    err_ref = float(np.abs(got - want).max())
    greedy_ref = ark_tokens == ref.greedy(ids, NEW_TOKENS)

    r = {"case": name, "max_abs_diff_reference": err_ref, "greedy_equal_reference": greedy_ref,
         "max_abs_logit": scale,
         "packing_format": json.loads((export / "config.json").read_text())["quantization_config"]["packing_format"],
         "transformers": transformers.__version__}
    ok = err_ref <= 1e-4 * scale and greedy_ref
    try:
        hf = transformers.AutoModelForCausalLM.from_pretrained(str(export), device_map="cpu", dtype=torch.float32)
        with torch.no_grad():
            theirs = hf(torch.tensor([ids])).logits[0].float().numpy()
    except Exception as e:  # noqa: BLE001 - AutoRound's CPU inference lacks some layouts
        r["autoround_inference"] = f"unavailable: {type(e).__name__}: {e}"[:160]
    else:
        r["autoround_dtype"] = str(next(hf.parameters()).dtype)
        r["max_abs_diff_autoround"] = float(np.abs(got - theirs).max())
        r["argmax_equal_autoround"] = bool((got.argmax(axis=1) == theirs.argmax(axis=1)).all())
        ok = ok and r["max_abs_diff_autoround"] <= 1e-2 * scale and r["argmax_equal_autoround"]
    r["status"] = "ok" if ok else "MISMATCH"
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ark", default="build/ark")
    ap.add_argument("--cases", default="all", help="comma-separated case names, or all")
    ap.add_argument("--workdir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--step", choices=["both", "prepare", "compare", "autoround"], default="both",
                    help="prepare: the ark side only; compare: the transformers side of a prepared workdir; "
                         "autoround: MoE checkpoints exported by the real AutoRound")
    a = ap.parse_args()
    cases = {**CASES, **TIE_CASES}
    names = list(CASES) if a.cases == "all" else a.cases.split(",")
    work = pathlib.Path(a.workdir or tempfile.mkdtemp(prefix="ark_vs_hf_"))
    bad = 0
    if a.step == "autoround":
        names = list(AUTOROUND_CASES) if a.cases == "all" else a.cases.split(",")
        for i, n in enumerate(names):
            r = autoround_case(a.ark, n, work, a.seed + i)
            print(json.dumps(r), flush=True)
            bad += r["status"] == "MISMATCH"
        sys.exit(1 if bad else 0)
    for i, n in enumerate(names):
        if a.step in ("both", "prepare"):
            prepare_case(a.ark, n, cases[n], work, a.seed + i)
        if a.step in ("both", "compare"):
            r = compare_case(n, work)
            if n in TIE_CASES and r["status"] == "MISMATCH":
                r["status"] = "differs on exact ties (expected, see TIE_CASES)"
            print(json.dumps(r), flush=True)
            bad += r["status"] == "MISMATCH"
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
