"""ark.hf.layer_schemes: which layers a quantization_config quantizes, and how (the rules of
include/ark/quant_config.h through _C.resolve_quant_config). The transformers loader and the vLLM plugin both
rely on it; it needs neither."""

import pytest

import ark
import ark.hf

NAMES = [f"model.layers.{i}.{m}" for i in range(3) for m in
         ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
          "mlp.up_proj", "mlp.down_proj")] + ["lm_head", "model.visual.proj"]


def test_default_scheme_applies_to_every_block_layer_not_lm_head():
    cfg = {"quant_method": "auto-round", "bits": 4, "group_size": 128, "sym": True,
           "packing_format": "auto_round:auto_gptq"}
    s = ark.hf.layer_schemes(cfg, NAMES)
    assert "lm_head" not in s
    assert s["model.layers.2.mlp.down_proj"] == (4, 128, True, "auto_round:auto_gptq")
    assert len(s) == 22  # 21 block layers and the visual projection (no block list: every layer but lm_head)


def test_block_list_extra_config_and_unquantized_overrides():
    cfg = {"quant_method": "auto-round", "bits": 4, "group_size": 32, "sym": False, "packing_format": "auto_round",
           "block_name_to_quantize": "model.layers",
           "extra_config": {"model.layers.0.mlp.down_proj": {"bits": 8, "group_size": -1},
                            "model.layers.1.self_attn.o_proj": {"bits": 16},
                            r".*\.2\.self_attn\.[qk]_proj": {"bits": 2, "sym": True},
                            "lm_head": {"bits": 8, "group_size": 64}}}
    s = ark.hf.layer_schemes(cfg, NAMES)
    assert s["model.layers.0.mlp.down_proj"] == (8, -1, False, "auto_round")
    assert "model.layers.1.self_attn.o_proj" not in s
    assert s["model.layers.2.self_attn.q_proj"] == (2, 32, True, "auto_round")
    assert s["model.layers.2.self_attn.k_proj"] == (2, 32, True, "auto_round")
    assert s["model.layers.2.self_attn.v_proj"] == (4, 32, False, "auto_round")
    assert s["lm_head"] == (8, 64, False, "auto_round")
    assert "model.visual.proj" not in s  # outside block_name_to_quantize


def test_gptq_and_awq_configs():
    gptq = {"quant_method": "gptq", "bits": 3, "group_size": 64, "sym": False, "desc_act": True,
            "checkpoint_format": "gptq_v2", "dynamic": {"-:.*down_proj": {}}}
    s = ark.hf.layer_schemes(gptq, NAMES)
    assert s["model.layers.0.q_proj".replace("q_proj", "self_attn.q_proj")] == (3, 64, False, "auto_round")
    assert not any(n.endswith("down_proj") for n in s)
    awq = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}
    assert ark.hf.layer_schemes(awq, NAMES)["model.layers.1.mlp.up_proj"] == (4, 128, False, "auto_round:auto_awq")


def test_no_config_means_nothing_quantized():
    assert ark.hf.layer_schemes(None, NAMES) == {}


@pytest.mark.parametrize("cfg, what", [
    ({"quant_method": "auto-round", "bits": 5, "group_size": 128, "sym": True, "packing_format": "auto_round"},
     "5"),
    ({"quant_method": "auto-round", "bits": 4, "group_size": 128, "sym": True, "data_type": "fp",
      "packing_format": "auto_round"}, "fp"),
    ({"quant_method": "auto-round", "bits": 4, "group_size": 128, "sym": True, "packing_format": "xyz"}, "xyz"),
    ({"quant_method": "auto-round", "bits": 4, "group_size": 128, "sym": True}, "packing_format"),
])
def test_unsupported_configs_are_an_error_naming_the_value(cfg, what):
    with pytest.raises(ark.ArkError, match=what):
        ark.hf.layer_schemes(cfg, NAMES)
