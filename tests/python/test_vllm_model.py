"""The vLLM plugin on whole checkpoints: vLLM's own engine configuration claims an `ark make-model` checkpoint for
"ark" (no --quantization given), and vLLM's model loader (get_model: the model class, its stacked-parameter
mapping that fuses q/k/v and gate/up, the safetensors iterator, process_weights_after_loading) builds it with
ArkLinearMethod on every quantized layer (a quantized lm_head too) and vLLM's own method on the unquantized
ones. Every linear layer of
every decoder block is then checked against the weights that scripts/reference_model.py (independent of ark)
decodes from the checkpoint.

The full forward pass is not run: vLLM's CPU worker needs vLLM's CPU kernels (torch.ops._C), which the PyPI
wheel (a CUDA build) lacks; see docs/INTEGRATIONS.md. Needs vLLM: skipped where it is not installed (CI).
"""

import os
import pathlib
import socket
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available():
    # vLLM's CUDA wheel on a machine without a GPU finds no platform; its CPU platform is chosen by name.
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
vllm = pytest.importorskip("vllm", reason="vLLM is not installed (CI); run with the vLLM venv of "
                           "docs/INTEGRATIONS.md")

import ark.vllm  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import reference_model  # noqa: E402

ARK = os.environ.get("ARK_BIN", str(REPO / "build" / "ark"))
SIZE = ["--hidden", "128", "--heads", "4", "--kv-heads", "2", "--intermediate", "256", "--layers", "2",
        "--vocab", "160"]
CASES = {
    "qwen2-gptq-v1-int4-sym-qkv-bias": ["--arch", "qwen2"],
    "llama-awq-int4-asym-shards-unquantized-down": ["--arch", "llama", "--format", "auto_round:auto_awq", "--asym",
                                                    "--shards", "2", "--unquantized", "model.layers.1.mlp.down_proj"],
    "qwen3-gptq-v2-int3-g32-asym-quantized-lm-head": ["--arch", "qwen3", "--format", "auto_round", "--bits", "3",
                                                      "--group-size", "32", "--asym", "--quantize-lm-head"],
}
PARTS = {"self_attn.qkv_proj": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
         "self_attn.o_proj": ["self_attn.o_proj"], "mlp.gate_up_proj": ["mlp.gate_proj", "mlp.up_proj"],
         "mlp.down_proj": ["mlp.down_proj"]}


@pytest.fixture(scope="module")
def distributed():
    from vllm.config import DeviceConfig, VllmConfig, set_current_vllm_config  # noqa: PLC0415
    from vllm.distributed import parallel_state  # noqa: PLC0415

    ark.vllm.register()
    with set_current_vllm_config(VllmConfig(device_config=DeviceConfig(device="cpu"))):
        if not parallel_state.model_parallel_is_initialized():
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            parallel_state.init_distributed_environment(1, 0, f"tcp://127.0.0.1:{port}", 0, "gloo")
            parallel_state.initialize_model_parallel(1, 1)
    yield


@pytest.mark.parametrize("case", sorted(CASES))
def test_vllm_loads_the_checkpoint_through_ark(distributed, tmp_path, case):
    from vllm.config import set_current_vllm_config  # noqa: PLC0415
    from vllm.engine.arg_utils import EngineArgs  # noqa: PLC0415
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod  # noqa: PLC0415
    from vllm.model_executor.model_loader import get_model  # noqa: PLC0415

    from ark.vllm.linear import ArkLinearMethod  # noqa: PLC0415

    if not pathlib.Path(ARK).exists():
        pytest.fail(f"{ARK} is missing: build first or set ARK_BIN")
    model_dir = tmp_path / "model"
    subprocess.run([ARK, "make-model", "--out", str(model_dir), "--seed", str(7 + sorted(CASES).index(case)),
                    *SIZE, *CASES[case]], check=True, capture_output=True)
    cfg = EngineArgs(model=str(model_dir), dtype="float32", enforce_eager=True, max_model_len=64,
                     skip_tokenizer_init=True).create_engine_config()
    assert cfg.model_config.quantization == "ark", "vLLM must pick ark for the checkpoint by itself"
    cfg.quant_config.compute = "exact"
    # vLLM gave the checkpoint's location: every layer was resolved at once from the safetensors headers.
    assert cfg.quant_config._schemes, "maybe_update_config did not resolve the checkpoint's layers"
    with set_current_vllm_config(cfg):
        model = get_model(vllm_config=cfg)

    ref = reference_model.Reference(model_dir)
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(5, 256, generator=gen)
    checked = 0
    for i, layer in enumerate(ref.layers):
        block = model.model.layers[i]
        for fused, parts in PARTS.items():
            vllm_layer = block.get_submodule(fused)
            weights = [layer[p] for p in parts]
            unquantized = [f"model.layers.{i}.{p}" in CASES[case] for p in parts]
            expected = UnquantizedLinearMethod if all(unquantized) else ArkLinearMethod
            if any(unquantized) and not all(unquantized):
                pytest.fail(f"{case}: test case splits the fused layer {fused}")  # vLLM would refuse it too
            assert isinstance(vllm_layer.quant_method, expected), (fused, vllm_layer.quant_method)
            w = torch.cat([torch.as_tensor(wb[0], dtype=torch.float64) for wb in weights], 0)
            bias = [wb[1] for wb in weights]
            k = w.shape[1]
            xin = x[:, :k].contiguous()
            want = xin.to(torch.float64) @ w.T
            if bias[0] is not None:
                want += torch.cat([torch.as_tensor(b, dtype=torch.float64) for b in bias])
            out = vllm_layer(xin)
            got = (out[0] if isinstance(out, tuple) else out).to(torch.float64)
            if isinstance(out, tuple) and out[1] is not None:
                got = got + out[1].to(torch.float64)
            err = (got - want).abs().max().item()
            scale = (xin.to(torch.float64).abs() @ w.abs().T).max().item()
            assert err <= 2e-5 * scale, f"{case}: layer {i} {fused}: max error {err:.3g} (scale {scale:.3g})"
            checked += 1
    assert checked == 4 * len(ref.layers)
    if "--quantize-lm-head" in CASES[case]:
        # The vocabulary (160) is padded to vLLM's 64-multiple; the padding's logits come out 0.
        head = model.lm_head
        assert isinstance(head.quant_method, ArkLinearMethod)
        w = torch.as_tensor(ref.lm_head, dtype=torch.float64)
        xin = x[:, : w.shape[1]].contiguous()
        got = head.quant_method.apply(head, xin, None).to(torch.float64)
        want = xin.to(torch.float64) @ w.T
        scale = (xin.to(torch.float64).abs() @ w.abs().T).max().item()
        assert (got[:, : w.shape[0]] - want).abs().max().item() <= 2e-5 * scale
        assert got.shape[1] >= w.shape[0] and bool((got[:, w.shape[0]:] == 0).all())
