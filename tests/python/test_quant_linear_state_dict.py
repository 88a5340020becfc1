"""state_dict before and after post_init: the on-disk tensors, bit-exact, rebuilt from the packed layer."""

import pytest
import torch

import ark
from quant_linear_reference import report_seed  # noqa: F401 (autouse: prints the seed)
from quant_linear_reference import case_id, generator, make_checkpoint, random_input

K, N = 160, 64

CASES = [
    (2, 32, True, "auto_round:auto_gptq", False),
    (3, 64, False, "auto_round", True),
    (4, 128, True, "auto_round:auto_gptq", True),
    (4, 40, False, "auto_round:auto_awq", False),
    (8, -1, False, "auto_round:auto_gptq", False),
    (8, 32, True, "auto_round:gptqmodel", False),
]


def make(bits, group, sym, fmt, **kw):
    return ark.QuantLinear(bits, group, K, N, True, sym=sym, packing_format=fmt, **kw)


@pytest.mark.parametrize("bits,group,sym,fmt,act_order", CASES)
@pytest.mark.parametrize("weight_dtype", [torch.float16, torch.bfloat16])
def test_round_trip(bits, group, sym, fmt, act_order, weight_dtype):
    gen = generator(case_id("state_dict", bits, group, sym, fmt, act_order, str(weight_dtype)))
    t = make_checkpoint(ark, gen, bits, group, sym, fmt, K, N, act_order=act_order, bias=True)
    t["scales"] = t["scales"].to(weight_dtype)
    t["bias"] = t["bias"].to(weight_dtype)
    layer = make(bits, group, sym, fmt, weight_dtype=weight_dtype)
    layer.load_state_dict(t)
    before = layer.state_dict()
    assert set(before) == set(t)
    for k in t:
        assert torch.equal(before[k], t[k]), k

    ark.ark_post_init(layer)
    # One resident copy: the checkpoint buffers are gone, rebuilt on demand.
    assert layer.qweight is None and layer.scales is None
    after = layer.state_dict()
    assert list(after) == list(before) or set(after) == set(before)
    for k in t:
        assert after[k].dtype == t[k].dtype and after[k].shape == t[k].shape, k
        assert torch.equal(after[k], t[k]), f"{k} differs after post_init"

    # A fresh layer loaded from the saved state computes exactly the same outputs.
    clone = make(bits, group, sym, fmt, weight_dtype=weight_dtype)
    clone.load_state_dict(after)
    ark.ark_post_init(clone)
    x = random_input(gen, (3, K), torch.float32)
    assert torch.equal(layer(x), clone(x))


def test_reload_after_post_init_needs_post_init_again():
    gen = generator(case_id("reload"))
    a = make_checkpoint(ark, gen, 4, 32, True, "auto_round:auto_gptq", K, N, bias=True)
    b = make_checkpoint(ark, gen, 4, 32, True, "auto_round:auto_gptq", K, N, bias=True)
    layer = make(4, 32, True, "auto_round:auto_gptq", weight_dtype=torch.float16)
    layer.load_state_dict(a)
    ark.ark_post_init(layer)
    x = random_input(gen, (2, K), torch.float32)
    ya = layer(x)
    # A partial load keeps the other tensors (rebuilt from the packed layer) and unpacks the layer.
    layer.load_state_dict({"scales": b["scales"]}, strict=False)
    with pytest.raises(RuntimeError, match="post_init"):
        layer(x)
    assert torch.equal(layer.qweight, a["qweight"]) and torch.equal(layer.scales, b["scales"])
    layer.load_state_dict(b)
    ark.ark_post_init(layer)
    fresh = make(4, 32, True, "auto_round:auto_gptq", weight_dtype=torch.float16)
    fresh.load_state_dict(b)
    ark.ark_post_init(fresh)
    assert torch.equal(layer(x), fresh(x)) and not torch.equal(layer(x), ya)


def test_post_init_twice_is_a_no_op():
    gen = generator(case_id("twice"))
    layer = make(4, 32, True, "auto_round", weight_dtype=torch.float16)
    layer.load_state_dict(make_checkpoint(ark, gen, 4, 32, True, "auto_round", K, N, bias=True))
    model = torch.nn.Sequential(layer)
    assert ark.post_init(model) is model
    packed = layer._layer
    ark.ark_post_init(model)
    assert layer._layer is packed


def test_deepcopy_and_pickle_repack():
    import copy
    import io

    gen = generator(case_id("copy"))
    t = make_checkpoint(ark, gen, 4, 32, True, "auto_round:auto_gptq", K, N, bias=True)
    layer = make(4, 32, True, "auto_round:auto_gptq", weight_dtype=torch.float16)
    layer.load_state_dict(t)
    model = ark.ark_post_init(torch.nn.Sequential(layer))
    x = random_input(gen, (3, K), torch.float32)
    y = model(x)
    twin = copy.deepcopy(model)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf)
    for other in (twin, loaded):
        assert other[0]._layer is not None and other[0]._layer is not layer._layer
        assert torch.equal(other(x), y)
        for k, v in other.state_dict().items():
            assert torch.equal(v, t[k.split(".", 1)[1]]), k
    assert torch.equal(model(x), y)  # the original is untouched
