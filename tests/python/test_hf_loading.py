"""ark.hf.from_pretrained: a transformers model whose quantized Linears are ark.QuantLinear (python/ark/hf.py).

Each case is a tiny random checkpoint from `ark make-model`. The loaded model, in exact compute mode and fp32,
must give (a) the logits and greedy tokens of ark's own runtime (`ark generate --mode exact`), and (b) the
logits of transformers' own forward over the weights dequantized by scripts/reference_model.py (independent of
ark) into an fp32 checkpoint. Tolerance as in docs/RUNTIME.md: 1e-4 x max |logit| over every prompt position;
greedy tokens identical. Also: every quantized layer became an ark.QuantLinear, and malformed checkpoints are
refused with the tensor named.

Needs transformers (with a torch it accepts). The project venv keeps transformers 4.49.0 in a folder of its own
(tokenizers pins conflict): test_hf_side.py runs this file with it in a subprocess, in CI. docs/INTEGRATIONS.md
records runs with transformers 4.49 / torch 1.13, 5.20 / torch 2.14 and 5.24 / torch 2.15.
"""

import json
import os
import pathlib
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

transformers = pytest.importorskip(
    "transformers",
    reason="transformers is not importable here (the project venv pins tokenizers 0.22.1, which no transformers "
    "that runs on torch 1.13 accepts): test_hf_side.py runs this file with transformers from .venv/hf-side",
)

import ark  # noqa: E402
import ark.hf  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import reference_transformers  # noqa: E402

ARK = os.environ.get("ARK_BIN", str(REPO / "build" / "ark"))
SIZE = ["--hidden", "64", "--heads", "4", "--kv-heads", "2", "--intermediate", "96", "--layers", "2",
        "--vocab", "160"]
CASES = {
    "qwen2-gptq-v1-int4-sym-tied": ["--arch", "qwen2", "--tied"],
    "llama-awq-int4-asym-attention-bias": ["--arch", "llama", "--format", "auto_round:auto_awq", "--asym",
                                           "--attention-bias"],
    "llama-gptq-v2-int3-g16-asym-shards-unquantized-layer": [
        "--arch", "llama", "--format", "auto_round", "--bits", "3", "--group-size", "16", "--asym", "--shards",
        "2", "--unquantized", "model.layers.1.mlp.up_proj"],
    "qwen2-gptq-v1-int8-per-channel-f16": ["--arch", "qwen2", "--bits", "8", "--group-size", "-1", "--dtype",
                                           "f16"],
    "qwen3-gptq-v1-int2-g16-quantized-lm-head": ["--arch", "qwen3", "--bits", "2", "--group-size", "16",
                                                 "--quantize-lm-head"],
}
NEW_TOKENS = 6


def run_seed():
    if not hasattr(run_seed, "value"):
        env = os.environ.get("ARK_TEST_SEED")
        run_seed.value = int(env) if env else random.SystemRandom().randrange(1 << 31)
    return run_seed.value


@pytest.fixture(autouse=True)
def report_seed():
    print(f"hf loading tests: seed {run_seed()} (replay with ARK_TEST_SEED={run_seed()})")
    yield


@pytest.fixture(scope="module")
def ark_exe():
    if not pathlib.Path(ARK).exists():
        pytest.fail(f"{ARK} is missing: build first (bash scripts/setup.sh) or set ARK_BIN")
    return ARK


def make_model(ark_exe, out, seed, flags):
    subprocess.run([ark_exe, "make-model", "--out", str(out), "--seed", str(seed), *SIZE, *flags], check=True,
                   capture_output=True)
    return out


def greedy(model, ids, n):
    """transformers' generate (greedy, EOS ignored) on torch 2; on torch 1.13 generate() cannot run under
    Python 3.11 (it imports torch.distributed.fsdp, whose dataclasses 3.11 rejects), so the same greedy
    decoding is done by hand there: argmax of the full-sequence forward, token by token."""
    if int(torch.__version__.split(".")[0]) < 2:
        seq = list(ids)
        for _ in range(n):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
        return seq[len(ids):]
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    out = model.generate(torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return [int(t) for t in out[0, len(ids):]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_ark_runtime_and_dequantized_transformers(ark_exe, tmp_path, case):
    seed = run_seed() + sorted(CASES).index(case)
    model_dir = make_model(ark_exe, tmp_path / "model", seed, CASES[case])
    arch = json.loads((model_dir / "config.json").read_text())["architectures"][0]
    if not hasattr(transformers, arch):
        pytest.skip(f"transformers {transformers.__version__} has no {arch}")
    rng = np.random.default_rng(seed)
    ids = [int(x) for x in rng.integers(0, 160, size=9)]

    logits_file = tmp_path / "ark.bin"
    out = subprocess.run([ark_exe, "generate", "--model", str(model_dir), "--prompt-ids", ",".join(map(str, ids)),
                          "--logits-out", str(logits_file), "--max-tokens", str(NEW_TOKENS), "--mode", "exact",
                          "--ignore-eos", "--no-stats"], check=True, capture_output=True, text=True)
    ark_tokens = json.loads(out.stdout)

    model = ark.hf.from_pretrained(model_dir, compute="exact", attn_implementation="eager")
    qweights = [k for k in _tensor_names(model_dir) if k.endswith(".qweight")]
    swapped = [n for n, m in model.named_modules() if isinstance(m, ark.QuantLinear)]
    assert sorted(swapped) == sorted(k[: -len(".qweight")] for k in qweights)
    with torch.no_grad():
        got = model(torch.tensor([ids])).logits[0].to(torch.float64)
        tokens = greedy(model, ids, NEW_TOKENS)

    runtime = torch.from_numpy(np.fromfile(logits_file, dtype=np.float32).reshape(got.shape)).to(torch.float64)
    reference_transformers.hf_checkpoint(model_dir, tmp_path / "dense")
    dense = getattr(transformers, arch).from_pretrained(str(tmp_path / "dense"), attn_implementation="eager")
    with torch.no_grad():
        want = dense.float().eval()(torch.tensor([ids])).logits[0].to(torch.float64)
    scale = want.abs().max().item()
    err_ref = (got - want).abs().max().item()
    err_rt = (got - runtime).abs().max().item()
    print(f"{case}: max |ark.hf - dequantized transformers| = {err_ref:.3g}, max |ark.hf - ark generate| = "
          f"{err_rt:.3g}, max |logit| = {scale:.3g}; transformers {transformers.__version__}, torch "
          f"{torch.__version__}")
    assert err_ref <= 1e-4 * scale, f"{case}: logits differ from dequantized transformers by {err_ref}"
    assert err_rt <= 1e-4 * scale, f"{case}: logits differ from ark generate by {err_rt}"
    assert tokens == ark_tokens, f"{case}: greedy tokens {tokens} != ark generate's {ark_tokens}"


def _tensor_names(model_dir):
    from safetensors import safe_open  # noqa: PLC0415

    names = []
    for f in sorted(pathlib.Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as h:
            names += list(h.keys())
    return names


def _rewrite(model_dir, edit):
    """Applies edit(tensors) to a single-file checkpoint."""
    from safetensors.torch import load_file, save_file  # noqa: PLC0415

    f = pathlib.Path(model_dir) / "model.safetensors"
    t = load_file(str(f))
    edit(t)
    save_file(t, str(f))


def test_missing_quantized_tensor_is_named(ark_exe, tmp_path):
    model_dir = make_model(ark_exe, tmp_path / "m", run_seed(), ["--arch", "llama"])
    _rewrite(model_dir, lambda t: t.pop("model.layers.0.mlp.down_proj.scales"))
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.down_proj\.scales"):
        ark.hf.from_pretrained(model_dir)


def test_qweight_of_an_unquantized_layer_is_refused(ark_exe, tmp_path):
    model_dir = make_model(ark_exe, tmp_path / "m", run_seed(), ["--arch", "llama"])
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["quantization_config"]["extra_config"] = {"model.layers.1.self_attn.o_proj": {"bits": 16}}
    (model_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"model\.layers\.1\.self_attn\.o_proj\.qweight is stored"):
        ark.hf.from_pretrained(model_dir)


def test_missing_unquantized_tensor_is_named(ark_exe, tmp_path):
    model_dir = make_model(ark_exe, tmp_path / "m", run_seed(), ["--arch", "qwen2"])
    _rewrite(model_dir, lambda t: t.pop("model.norm.weight"))
    with pytest.raises(ValueError, match=r"model\.norm\.weight"):
        ark.hf.from_pretrained(model_dir)


def test_wrong_tensor_shape_is_named(ark_exe, tmp_path):
    model_dir = make_model(ark_exe, tmp_path / "m", run_seed(), ["--arch", "qwen2"])
    name = "model.layers.0.self_attn.q_proj.qweight"
    _rewrite(model_dir, lambda t: t.__setitem__(name, t[name][:-1].contiguous()))
    with pytest.raises(ValueError, match="qweight: expected shape"):
        ark.hf.from_pretrained(model_dir)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: runs on the GPU machine")
def test_cuda_model_matches_cpu(ark_exe, tmp_path):
    from ark import _cuda  # noqa: PLC0415

    if not _cuda.available():
        pytest.skip("ark was built without its CUDA backend")
    model_dir = make_model(ark_exe, tmp_path / "m", run_seed(), ["--arch", "qwen2"])
    ids = torch.tensor([[3, 14, 15, 92, 65, 35, 89, 79]])
    cpu = ark.hf.from_pretrained(model_dir, compute="exact", attn_implementation="eager")
    gpu = ark.hf.from_pretrained(model_dir, torch_dtype=torch.float16, device="cuda", attn_implementation="eager")
    assert all(isinstance(m._layer, _cuda._C.CudaLayer) for m in gpu.modules() if isinstance(m, ark.QuantLinear))
    with torch.no_grad():
        want = cpu(ids).logits[0].to(torch.float64)
        got = gpu(ids.cuda()).logits[0].to(torch.float64).cpu()
    scale = want.abs().max().item()
    err = (got - want).abs().max().item()
    print(f"cuda fp16 vs cpu fp32: max |logit difference| {err:.3g}, max |logit| {scale:.3g}")
    assert err <= 2e-2 * scale, f"fp16 CUDA logits differ by {err} (scale {scale})"
