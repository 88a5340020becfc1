"""`ark quantize` and `ark perplexity` against independent float64 NumPy code (scripts/reference_model.py, which
shares no code with ark), on a tiny random-weight fp16 Qwen2 from `ark make-model --format none` with a small
byte-level BPE tokenizer trained here by tools/train_default_model.py's own tokenizer step.

- quantize: every packing format and bits 2/3/4/8, sym/asym, grouped and per-channel. The dequantized weights
  (read by the NumPy decoder) lie within one quantization step of the float ones (a half step before clamping;
  the mean error near a quarter step), what is not quantized is byte-identical, config.json carries
  quantization_config, tokenizer files are copied; ark's logits on the result equal the NumPy forward pass of
  the result (exact mode, <= 1e-4 of the largest logit).
- perplexity: each window's summed negative log-likelihood equals the NumPy forward pass's, float and int4.
- bad input to quantize, perplexity and make-model is refused with a message.
"""

import json
import pathlib
import random
import struct
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tools"))
import perplexity_transformers  # noqa: E402
import reference_model  # noqa: E402
import train_default_model  # noqa: E402

HELDOUT = REPO / "tests" / "data" / "heldout_en.txt"
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj"]


def run(ark, *args, ok=True):
    r = subprocess.run([ark, *map(str, args)], capture_output=True, text=True, timeout=120)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def header(path):
    raw = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


@pytest.fixture(scope="module")
def text():
    docs = HELDOUT.read_text(encoding="utf-8").split("\n\n")
    return "\n\n".join(docs[:6])


@pytest.fixture(scope="module")
def float_model(tmp_path_factory, ark_bin, text):
    seed = random.SystemRandom().randrange(1 << 30)
    print(f"make-model seed {seed}")
    work = tmp_path_factory.mktemp("quality")
    tok_dir = work / "tok"
    tok_dir.mkdir()
    tok = train_default_model.train_tokenizer(text.split("\n"), 384)
    tok.save(str(tok_dir / "tokenizer.json"))
    (tok_dir / "tokenizer_config.json").write_text(json.dumps(train_default_model.tokenizer_config(tok)))
    d = work / "float"
    run(ark_bin, "make-model", "--out", d, "--arch", "qwen2", "--hidden", 128, "--intermediate", 256, "--layers", 2,
        "--heads", 4, "--kv-heads", 2, "--vocab", 384, "--tied", "--format", "none", "--dtype", "f16",
        "--max-position-embeddings", 128, "--tokenizer", tok_dir, "--seed", seed)
    return d


QUANT_CASES = [
    ("auto_round:auto_gptq", 4, 32, False),
    ("auto_round:auto_gptq", 4, 128, True),
    ("auto_round:gptqmodel", 8, -1, True),
    ("auto_round:auto_awq", 4, 64, True),
    ("auto_round", 3, 64, False),
    ("auto_round:auto_gptq", 2, 64, True),
]


@pytest.mark.parametrize("fmt,bits,group,asym", QUANT_CASES, ids=lambda v: str(v))
def test_quantize_round_trip(ark_bin, float_model, tmp_path, fmt, bits, group, asym):
    out = tmp_path / "q"
    args = ["quantize", "--model", float_model, "--out", out, "--bits", bits, "--group-size", group, "--format", fmt]
    r = run(ark_bin, *args, *(["--asym"] if asym else []))
    assert "14 linears quantized" in r.stdout, r.stdout

    cfg = json.loads((out / "config.json").read_text())
    qc = cfg["quantization_config"]
    assert (qc["bits"], qc["group_size"], qc["sym"], qc["packing_format"]) == (bits, group, not asym, fmt)
    assert qc["quant_method"] == "auto-round" and qc["data_type"] == "int"
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (out / f).read_bytes() == (float_model / f).read_bytes(), f
    run(ark_bin, "inspect", "--model", out)

    # Not quantized: byte-identical (embedding, norms, biases), same dtype.
    fh, fdata = header(float_model / "model.safetensors")
    qh, qdata = header(out / "model.safetensors")
    for name, e in fh.items():
        if name == "__metadata__" or any(name.endswith(n + ".weight") for n in LINEARS):
            continue
        q = qh[name]
        assert q["dtype"] == e["dtype"] and q["shape"] == e["shape"], name
        assert fdata[slice(*e["data_offsets"])] == qdata[slice(*q["data_offsets"])], name
    assert not any(n.endswith("proj.weight") for n in qh), "a linear was left as .weight"

    # Quantized: within a step of the float weight (half a step unless clamped), read by the NumPy decoder.
    ft = reference_model.read_checkpoint(float_model)
    qt = reference_model.read_checkpoint(out)
    for i in range(2):
        for n in LINEARS:
            m = f"model.layers.{i}.{n}"
            w = ft[m + ".weight"].astype(np.float64)
            N, K = w.shape
            deq = reference_model.dequantize(qt, m, bits, group, reference_model.LAYOUTS[fmt], K, N)
            g = K if group == -1 else group
            step = np.repeat(np.abs(qt[m + ".scales"].astype(np.float64)).T, g, axis=1)[:, :K]  # [N, K]
            err = np.abs(deq - w) / step
            assert err.max() <= 1.0 + 1e-3, (m, err.max())
            assert 0.15 < err.mean() < 0.35, (m, err.mean())  # rounding error is uniform over half a step

    # ark reads its own output as the independent decoder does.
    ids = [int(x) for x in np.random.default_rng(bits * 100 + group).integers(0, 384, size=12)]
    logits_file = tmp_path / "logits.bin"
    run(ark_bin, "generate", "--model", out, "--prompt-ids", ",".join(map(str, ids)), "--max-tokens", 1,
        "--mode", "exact", "--logits-out", logits_file, "--no-stats")
    got = np.fromfile(logits_file, dtype=np.float32).reshape(len(ids), -1)
    want = reference_model.Reference(out).logits(ids)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def reference_windows(model_dir, text, ctx, stride, max_windows):
    from tokenizers import Tokenizer  # noqa: PLC0415

    ids = np.asarray(Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode(text, add_special_tokens=False).ids)
    ref = reference_model.Reference(model_dir)
    out = []
    for s in perplexity_transformers.window_starts(len(ids), ctx, stride, max_windows):
        nll, n = perplexity_transformers.window_nll(ref.logits(list(ids[s : s + ctx])), ids[s : s + ctx], ctx // 2)
        out.append((s, nll, n))
    return len(ids), out


@pytest.mark.parametrize("quantized", [False, True], ids=["fp16", "int4-g32"])
def test_perplexity_matches_float64_reference(ark_bin, float_model, tmp_path, text, quantized):
    model = float_model
    if quantized:
        model = tmp_path / "q"
        run(ark_bin, "quantize", "--model", float_model, "--out", model, "--bits", 4, "--group-size", 32)
    text_file = tmp_path / "t.txt"
    text_file.write_text(text, encoding="utf-8")
    ctx, stride, windows = 48, 40, 5
    js = tmp_path / "ppl.json"
    r = run(ark_bin, "perplexity", "--model", model, "--file", text_file, "--ctx", ctx, "--stride", stride,
            "--max-windows", windows, "--mode", "exact", "--json-out", js, "--threads", 2)
    assert "perplexity" in r.stdout
    got = json.loads(js.read_text())
    n_tokens, want = reference_windows(model, text, ctx, stride, windows)
    assert got["tokens"] == n_tokens
    assert [(w["start"], w["scored"]) for w in got["windows"]] == [(s, n) for s, _, n in want]
    assert all(n == ctx - ctx // 2 - 1 for _, _, n in want)
    for w, (_, nll, _) in zip(got["windows"], want):
        assert abs(w["nll_sum"] - nll) <= 1e-5 * abs(nll), (w, nll)
    # Random weights give peaked, confidently wrong logits (mean nll ~ 30): compare log-perplexities.
    mean_nll = sum(x for _, x, _ in want) / sum(n for _, _, n in want)
    assert abs(np.log(got["perplexity"]) - mean_nll) <= 1e-5 * mean_nll
    assert f"{got['perplexity']:.4f}" in r.stdout


def test_refusals(ark_bin, float_model, tmp_path):
    q = tmp_path / "q"
    run(ark_bin, "quantize", "--model", float_model, "--out", q, "--bits", 4, "--group-size", 64)
    cases = [
        (["quantize", "--model", q, "--out", tmp_path / "qq"], "already quantized"),
        (["quantize", "--model", float_model, "--out", tmp_path / "x", "--bits", 5], "bits 5"),
        (["quantize", "--model", float_model, "--out", tmp_path / "x", "--group-size", 0], "group size 0"),
        (["quantize", "--model", float_model, "--out", tmp_path / "x", "--format", "gguf"], "format 'gguf'"),
        (["quantize", "--model", float_model, "--out", tmp_path / "x", "--bits", 8, "--format",
          "auto_round:auto_awq"], "4-bit weights only"),
        (["quantize", "--model", float_model, "--out", float_model], "input directory"),
        (["quantize", "--model", tmp_path / "missing", "--out", tmp_path / "x"], "missing"),
    ]
    short = tmp_path / "short.txt"
    short.write_text("just a few words")
    cases += [
        (["perplexity", "--model", float_model, "--file", short], "fewer than one window"),
        (["perplexity", "--model", float_model, "--file", short, "--ctx", 2], "at least 4"),
        (["perplexity", "--model", float_model, "--file", HELDOUT, "--ctx", 512, "--max-windows", 1],
         "max_model_len"),
        (["perplexity", "--model", float_model, "--file", tmp_path / "nope.txt"], "cannot open"),
    ]
    # make-model: a size flag given as 0 is refused by name (it once meant "the preset's value").
    cases += [
        (["make-model", "--out", tmp_path / "x", "--arch", "qwen2", "--layers", 0], "layers 0 must be positive"),
        (["make-model", "--out", tmp_path / "x", "--arch", "qwen2", "--vocab", 0], "vocab 0 must be positive"),
        (["make-model", "--out", tmp_path / "x", "--arch", "qwen2", "--shards", 0], "shards must be >= 1"),
        (["make-model", "--out", tmp_path / "x", "--arch", "qwen2", "--bits", 0], "bits 0"),
    ]
    for args, needle in cases:
        r = run(ark_bin, *args, ok=False)
        assert r.returncode != 0 and needle in r.stderr, (args, r.stderr)
    assert not (tmp_path / "x").exists()
