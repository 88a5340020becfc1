"""The default model that ships with the repository (models/ark-brown-14m-int4, see its README.md): `ark generate`
without --model runs it, and ark's numbers on it match the independent float64 NumPy forward pass
(scripts/reference_model.py, which shares no code with ark).

- the directory is what its README says: int4 g128 sym auto_round:auto_gptq, fp16 tied embeddings, <= 25 MB;
- `ark generate` with no --model: greedy text equals the prompt followed by the reference's greedy tokens decoded
  by the `tokenizers` library; sampling with a seed replays exactly and another seed gives other text;
- ARK_DEFAULT_MODEL points it elsewhere, and a missing default is a clear error;
- a bad sampling flag (or generation_config value), a chat-only flag without --chat, or a prompt too long for
  --max-model-len is refused by name before any text prints;
- `ark perplexity` over a few windows of the held-out text: each window's summed negative log-likelihood equals
  the reference's, and the perplexity is that of a trained model (far below the vocabulary's 4096).
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import perplexity_transformers  # noqa: E402
import reference_model  # noqa: E402

MODEL = REPO / "models" / "ark-brown-14m-int4"
HELDOUT = REPO / "tests" / "data" / "heldout_en.txt"
PROMPT = "The jury said"  # the README's quick start prompt; its greedy margins are >= 0.07 logits over 16 tokens


def run(ark, *args, ok=True, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "ARK_DEFAULT_MODEL"}
    env.update(env_extra or {})
    r = subprocess.run([ark, *map(str, args)], capture_output=True, text=True, timeout=120, env=env)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def reference():
    return reference_model.Reference(MODEL)


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer  # noqa: PLC0415

    return Tokenizer.from_file(str(MODEL / "tokenizer.json"))


def test_shipped_directory_is_what_its_readme_says():
    cfg = json.loads((MODEL / "config.json").read_text())
    qc = cfg["quantization_config"]
    assert (qc["bits"], qc["group_size"], qc["sym"], qc["packing_format"]) == (4, 128, True, "auto_round:auto_gptq")
    assert cfg["architectures"] == ["Qwen2ForCausalLM"] and cfg["tie_word_embeddings"]
    tensors = reference_model.read_checkpoint(MODEL)
    assert tensors["model.embed_tokens.weight"].dtype == np.float16
    assert "lm_head.weight" not in tensors
    assert sum(f.stat().st_size for f in MODEL.iterdir()) <= 25 * 1000 * 1000
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "README.md"):
        assert (MODEL / f).is_file(), f


def test_generate_without_model_is_the_reference_greedy_text(ark_bin, reference, tokenizer):
    ids = tokenizer.encode(PROMPT).ids
    want = reference.greedy(ids, 16)
    r = run(ark_bin, "generate", "--prompt", PROMPT, "--max-tokens", 16, "--temperature", 0, "--mode", "exact",
            "--ignore-eos", "--threads", 2)
    assert r.stdout == PROMPT + tokenizer.decode(want) + "\n", (r.stdout, want)
    assert "int4 g128 sym" in r.stderr, r.stderr
    # The same with the default compute mode (int8 activations where the CPU has VNNI): the margins are wide.
    r = run(ark_bin, "generate", "--prompt", PROMPT, "--max-tokens", 16, "--temperature", 0, "--ignore-eos")
    assert r.stdout == PROMPT + tokenizer.decode(want) + "\n", (r.stdout, want)


def test_generate_without_model_samples_reproducibly(ark_bin):
    args = ["generate", "--prompt", PROMPT, "--max-tokens", 40, "--temperature", 0.8, "--no-stats"]
    a = run(ark_bin, *args, "--seed", 1).stdout
    b = run(ark_bin, *args, "--seed", 1).stdout
    c = run(ark_bin, *args, "--seed", 2).stdout
    assert a == b and a != c, (a, c)
    assert a.startswith(PROMPT) and len(a.split()) >= 20, a  # 40 tokens of words, not a few bytes


def test_default_model_override_and_missing(ark_bin, tmp_path):
    # ARK_DEFAULT_MODEL wins over the source tree's copy: a two-layer random model with the shipped tokenizer.
    tiny = tmp_path / "tiny"
    run(ark_bin, "make-model", "--out", tiny, "--arch", "qwen2", "--hidden", 64, "--intermediate", 128, "--layers",
        2, "--heads", 2, "--kv-heads", 1, "--vocab", 4096, "--tied", "--tokenizer", MODEL, "--seed", 3)
    r = run(ark_bin, "generate", "--prompt", PROMPT, "--max-tokens", 4, env_extra={"ARK_DEFAULT_MODEL": str(tiny)})
    assert "2 layers" in r.stderr and r.stdout.startswith(PROMPT), r.stderr
    r = run(ark_bin, "generate", "--prompt", PROMPT, "--max-tokens", 4, env_extra={"ARK_DEFAULT_MODEL": ""})
    assert "8 layers" in r.stderr, r.stderr  # empty: the source tree's copy
    missing = tmp_path / "nowhere"
    r = run(ark_bin, "generate", "--prompt", PROMPT, ok=False, env_extra={"ARK_DEFAULT_MODEL": str(missing)})
    assert r.returncode == 1 and "ARK_DEFAULT_MODEL" in r.stderr and str(missing) in r.stderr, r.stderr
    assert "--model" in r.stderr  # says the way out


def test_perplexity_on_heldout_matches_float64_reference(ark_bin, reference, tokenizer, tmp_path):
    # ctx below kernel_switch_threshold (128): the decode kernels, exact in fp32. At 128 and more the prefill
    # GEMMs may round activations to bf16 (docs/KERNELS.md), which moves logits by ~1e-3 of their size.
    ctx, windows = 96, 4
    js = tmp_path / "ppl.json"
    run(ark_bin, "perplexity", "--model", MODEL, "--file", HELDOUT, "--ctx", ctx, "--max-windows", windows,
        "--mode", "exact", "--threads", 2, "--json-out", js)
    got = json.loads(js.read_text())
    ids = np.asarray(tokenizer.encode(HELDOUT.read_text(encoding="utf-8"), add_special_tokens=False).ids)
    assert got["tokens"] == len(ids)
    starts = perplexity_transformers.window_starts(len(ids), ctx, 0, windows)
    assert [w["start"] for w in got["windows"]] == starts
    nll, scored = 0.0, 0
    for w, s in zip(got["windows"], starts):
        want, n = perplexity_transformers.window_nll(reference.logits(list(ids[s : s + ctx])), ids[s : s + ctx],
                                                     ctx // 2)
        assert w["scored"] == n == ctx - ctx // 2 - 1
        assert abs(w["nll_sum"] - want) <= 1e-5 * want, (w, want)
        nll, scored = nll + want, scored + n
    assert abs(got["perplexity"] / np.exp(nll / scored) - 1) <= 1e-5
    assert 20 < got["perplexity"] < 300, got["perplexity"]  # trained: a random model of 4096 tokens is in the 1000s


def test_bad_sampling_flags_are_refused_before_any_work(ark_bin, tmp_path):
    # Values a user can type that the "flag left out" defaults once swallowed (a negative or NaN temperature, a
    # negative top-k, a seed that wrapped around), and ones refused only after the prompt was echoed.
    for flags, named in [(["--temperature", -1], "--temperature -1"), (["--temperature", "nan"], "--temperature nan"),
                         (["--top-k", -2], "--top-k -2"), (["--top-p", 2], "--top-p 2"), (["--top-p", 0], "--top-p 0"),
                         (["--max-tokens", 0], "--max-tokens 0"), (["--seed", -1], "--seed"),
                         (["--system", "be brief"], "--system needs --chat"),
                         (["--no-think"], "--no-think needs --chat")]:
        r = run(ark_bin, "generate", "--prompt", PROMPT, *flags, ok=False)
        assert r.returncode != 0 and r.stdout == "", (flags, r.stdout)
        assert named in r.stderr and "loaded in" not in r.stderr, (flags, r.stderr)
    # A prompt that with --max-tokens does not fit --max-model-len: refused before the prompt is echoed.
    r = run(ark_bin, "generate", "--prompt", PROMPT, "--max-model-len", 4, "--max-tokens", 10, ok=False)
    assert r.returncode == 1 and r.stdout == "" and "more than --max-model-len 4" in r.stderr, (r.stdout, r.stderr)
    # generation_config.json's own sampling values: refused as its, and a flag overrides them.
    tiny = tmp_path / "tiny"
    run(ark_bin, "make-model", "--out", tiny, "--arch", "qwen2", "--hidden", 64, "--intermediate", 128, "--layers",
        2, "--heads", 2, "--kv-heads", 1, "--vocab", 4096, "--tied", "--tokenizer", MODEL, "--seed", 3)
    gen = json.loads((tiny / "generation_config.json").read_text())
    gen.update(do_sample=True, temperature=0.7, top_p=0.0)
    (tiny / "generation_config.json").write_text(json.dumps(gen))
    r = run(ark_bin, "generate", "--model", tiny, "--prompt", PROMPT, "--max-tokens", 3, ok=False)
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert "generation_config.json" in r.stderr and "--top-p 0" in r.stderr, r.stderr
    r = run(ark_bin, "generate", "--model", tiny, "--prompt", PROMPT, "--max-tokens", 3, "--top-p", 0.5)
    assert r.stdout.startswith(PROMPT), r.stdout
