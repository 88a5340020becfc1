"""Bad input gives ValueError / TypeError naming the argument or buffer and what was expected; never a crash."""

import pytest
import torch

import ark
from quant_linear_reference import report_seed  # noqa: F401 (autouse: prints the seed)
from quant_linear_reference import case_id, generator, make_checkpoint, random_input

K, N = 128, 64


def packed_layer(gen, fmt="auto_round:auto_gptq"):
    layer = ark.QuantLinear(4, 32, K, N, True, sym=True, packing_format=fmt)
    layer.load_state_dict(make_checkpoint(ark, gen, 4, 32, True, fmt, K, N, bias=True))
    return ark.ark_post_init(layer)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(bits=5), ValueError, "bits"),
        (dict(bits=4.0), TypeError, "bits"),
        (dict(group_size=0), ValueError, "group_size"),
        (dict(group_size=K + 1), ValueError, "group_size"),
        (dict(infeatures=0), ValueError, "infeatures"),
        (dict(infeatures=100), ValueError, "in_features"),  # GPTQ 4-bit: K must be a multiple of 8
        (dict(bits=3, outfeatures=48), ValueError, "out_features"),  # 3-bit qzeros: N a multiple of 32
        (dict(packing_format="auto_round:auto_awq", bits=2), ValueError, "bits"),  # AWQ is 4-bit only
        (dict(packing_format="auto_round:auto_awq", outfeatures=60), ValueError, "out_features"),
        (dict(packing_format="marlin"), ValueError, "packing_format"),
        (dict(weight_dtype=torch.int32), TypeError, "weight_dtype"),
        (dict(compute="fast"), ValueError, "compute"),
        (dict(kernel_switch_threshold=0), ValueError, "kernel_switch_threshold"),
    ],
)
def test_bad_construction(kwargs, exc, match):
    args = dict(bits=4, group_size=32, infeatures=K, outfeatures=N, bias=False)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        ark.QuantLinear(**args)


def test_bad_state_dict_shapes_and_dtypes():
    gen = generator(case_id("bad_state"))
    good = make_checkpoint(ark, gen, 4, 32, True, "auto_round:auto_gptq", K, N, bias=True)
    layer = ark.QuantLinear(4, 32, K, N, True, sym=True)
    bad_cases = [
        ("qweight", good["qweight"][:-1], ValueError, r"qweight: expected shape \[16, 64\]"),
        ("qweight", good["qweight"].to(torch.int64), TypeError, "qweight: expected dtype torch.int32"),
        ("qweight", good["qweight"].float(), TypeError, "qweight"),
        ("qzeros", good["qzeros"].T.contiguous(), ValueError, "qzeros: expected shape"),
        ("scales", good["scales"].to(torch.int32), TypeError, "scales"),
        ("scales", good["scales"][:, :-1], ValueError, r"scales: expected shape \[4, 64\]"),
        ("g_idx", good["g_idx"][:-1], ValueError, "g_idx"),
        ("bias", torch.zeros(N + 1), ValueError, "bias"),
    ]
    for key, value, exc, match in bad_cases:
        with pytest.raises(exc, match=match):
            layer.load_state_dict({**good, key: value})
    # An out-of-range g_idx has the right shape and dtype; packing rejects it, naming g_idx.
    layer.load_state_dict({**good, "g_idx": torch.full((K,), 7, dtype=torch.int32)})
    with pytest.raises(ValueError, match="g_idx"):
        ark.ark_post_init(layer)
    assert isinstance(ark.ArkError("x"), ValueError)


def test_bad_forward_inputs():
    gen = generator(case_id("bad_forward"))
    unpacked = ark.QuantLinear(4, 32, K, N, False)
    with pytest.raises(RuntimeError, match="ark_post_init"):
        unpacked(torch.randn(1, K))
    layer = packed_layer(gen)
    with pytest.raises(ValueError, match=rf"x: expected shape \[..., {K}\]"):
        layer(random_input(gen, (2, K + 1), torch.float32))
    with pytest.raises(ValueError, match="x: expected shape"):
        layer(torch.tensor(1.0))
    with pytest.raises(TypeError, match="x: dtype torch.int32"):
        layer(torch.ones(2, K, dtype=torch.int32))
    with pytest.raises(TypeError, match="x: dtype torch.float64"):
        layer(torch.ones(2, K, dtype=torch.float64))
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        layer([1.0] * K)
    with pytest.raises(TypeError, match="ark_post_init"):
        ark.ark_post_init("not a module")


def test_extension_rejects_bad_raw_tensors():
    # The binding checks every raw tuple before reading through its pointer.
    layer = ark._C.Layer(K, N, 4, 32, True, False, False, 128)
    with pytest.raises(ValueError, match="post_init"):
        x, y = torch.ones(1, K), torch.empty(1, N)
        layer.forward((x.data_ptr(), (1, K), (K, 1), "F32"), (y.data_ptr(), (1, N), (N, 1), "F32"))
    with pytest.raises(ValueError, match="qweight: expected a contiguous tensor"):
        q = torch.zeros(N, K // 8, dtype=torch.int32)
        layer.load_checkpoint("gptq-v1", (q.data_ptr(), (K // 8, N), (1, K // 8), "I32"), None, None)
    with pytest.raises(ValueError, match="unknown dtype"):
        layer.load_bias((0, (N,), (1,), "Q8"))
    with pytest.raises(ValueError, match="layout"):
        ark._C.packed_shapes(4, 32, True, "gguf", K, N)
