"""The vLLM plugin's claiming rules (python/ark/vllm/claim.py), which need no vLLM: which checkpoints ark takes
from vLLM's own quantization methods, and when it declines so that vLLM's path keeps the checkpoint."""

import pytest

from ark.vllm import claim as c

AUTO_ROUND = {"quant_method": "auto-round", "bits": 4, "group_size": 128, "sym": True, "data_type": "int",
              "packing_format": "auto_round:auto_gptq", "block_name_to_quantize": "model.layers"}
GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True, "desc_act": True,
        "checkpoint_format": "gptq"}
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}


def claim(cfg, user=None, hf_config=None, device="cpu", cuda=False, environ=None):
    return c.claim(cfg, user, hf_config, device, cuda, {} if environ is None else environ)


@pytest.mark.parametrize("cfg", [AUTO_ROUND, GPTQ, AWQ, {**AUTO_ROUND, "quant_method": "intel/auto-round"},
                                 {**AUTO_ROUND, "bits": 2, "packing_format": "auto_round"},
                                 {**AUTO_ROUND, "bits": 3, "sym": False},
                                 {**AUTO_ROUND, "bits": 8, "group_size": -1},
                                 {**AUTO_ROUND, "packing_format": "auto_round:auto_awq", "sym": False}])
def test_integer_checkpoints_are_claimed_on_cpu(cfg):
    assert claim(cfg) == "ark"
    assert claim(cfg, user="ark") == "ark"


@pytest.mark.parametrize("user", ["gptq_marlin", "gptq", "inc", "awq_marlin", "fp8"])
def test_a_user_choice_of_another_method_is_respected(user):
    assert claim(AUTO_ROUND, user=user) is None
    assert claim(GPTQ, user=user) is None


@pytest.mark.parametrize("cfg", [
    {"quant_method": "fp8", "activation_scheme": "dynamic"},
    {**AUTO_ROUND, "data_type": "fp", "bits": 8},
    {**AUTO_ROUND, "act_bits": 8},
    {**AUTO_ROUND, "bits": 5},
    {**AUTO_ROUND, "packing_format": "auto_round:fp8"},
    {**AWQ, "bits": 8},
    {"quant_method": "compressed-tensors"},
    "not a dict",
])
def test_schemes_ark_cannot_serve_are_declined_or_refused_when_asked_for(cfg):
    assert claim(cfg) is None
    with pytest.raises(ValueError, match="--quantization ark cannot serve"):
        claim(cfg, user="ark")


def test_device_rules():
    assert claim(AUTO_ROUND, device="cuda") is None
    assert claim(AUTO_ROUND, device="cuda", cuda=True) == "ark"
    assert claim(AUTO_ROUND, device="xpu", cuda=True) is None
    with pytest.raises(ValueError, match="no kernels for device 'cuda'"):
        claim(AUTO_ROUND, user="ark", device="cuda")


def test_moe_models_are_claimed_when_ark_takes_their_experts():
    class Cfg:
        num_experts = 0
        text_config = {"num_local_experts": 8, "hidden_size": 2048, "intermediate_size": 1408}

    qwen3 = {"num_experts": 128, "hidden_size": 2048, "moe_intermediate_size": 768}
    for hf_config in (qwen3, {"n_routed_experts": 256}, Cfg()):
        assert c.expert_count(hf_config) > 0
        for cfg in (AUTO_ROUND, GPTQ, AWQ, {**AUTO_ROUND, "bits": 2, "group_size": 64, "sym": False}):
            assert claim(cfg, hf_config=hf_config) == "ark"
            assert claim(cfg, user="ark", hf_config=hf_config) == "ark"
    assert claim(AUTO_ROUND, hf_config={"num_experts": 0, "hidden_size": 64}) == "ark"
    # ark's fused MoE has no CUDA path: on a GPU, MoE models stay with vLLM, dense ones do not.
    assert claim(AUTO_ROUND, hf_config=qwen3, device="cuda", cuda=True) is None
    with pytest.raises(ValueError, match="CPU only"):
        claim(AUTO_ROUND, user="ark", hf_config=qwen3, device="cuda", cuda=True)


@pytest.mark.parametrize("cfg,hf_config,why", [
    # 3-bit GPTQ codes of 48 intermediate features fill 4.5 int32 words: the experts' stacks cannot be cut.
    ({**AUTO_ROUND, "bits": 3, "group_size": 16}, {"num_experts": 8, "hidden_size": 64,
                                                   "moe_intermediate_size": 48}, "whole int32 words"),
    ({**AUTO_ROUND, "group_size": 128}, {"num_experts": 8, "hidden_size": 2048, "moe_intermediate_size": 704},
     "not a multiple of group_size 128"),
    ({**AWQ, "group_size": -1}, {"num_local_experts": 8, "hidden_size": 64, "intermediate_size": 36},
     "36 does not fill whole int32 words of 4-bit"),
])
def test_moe_models_whose_experts_ark_cannot_take_stay_with_vllm(cfg, hf_config, why):
    assert claim(cfg, hf_config=hf_config) is None
    with pytest.raises(ValueError, match=why):
        claim(cfg, user="ark", hf_config=hf_config)
    assert claim(cfg, hf_config={**hf_config, "num_experts": 0, "num_local_experts": 0}) == "ark"


def test_operator_switch_turns_automatic_claiming_off():
    assert claim(AUTO_ROUND, environ={"ARK_VLLM_CLAIM": "0"}) is None
    assert claim(AUTO_ROUND, user="ark", environ={"ARK_VLLM_CLAIM": "0"}) == "ark"
    assert claim(AUTO_ROUND, environ={"ARK_VLLM_CLAIM": "1"}) == "ark"


def test_entry_point_is_declared():
    import pathlib  # noqa: PLC0415
    import tomllib  # noqa: PLC0415

    root = pathlib.Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["vllm.general_plugins"]["ark"] == "ark.vllm:register"
    assert "ark.vllm" in project["tool"]["setuptools"]["packages"]
