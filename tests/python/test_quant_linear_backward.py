"""trainable=True: gradients to the input and to the bias match autograd through the dequantized weight."""

import pytest
import torch

import ark
from quant_linear_reference import report_seed  # noqa: F401 (autouse: prints the seed)
from quant_linear_reference import case_id, decode_reference, generator, make_checkpoint, random_input

K, N = 192, 96


CASES = [(4, 32, True, "auto_round:auto_gptq"), (3, 64, False, "auto_round"), (4, 48, False, "auto_round:auto_awq")]


@pytest.mark.parametrize("bits,group,sym,fmt", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_backward_matches_autograd_on_dequantized_reference(bits, group, sym, fmt, dtype):
    gen = generator(case_id("backward", bits, group, sym, fmt, str(dtype)))
    t = make_checkpoint(ark, gen, bits, group, sym, fmt, K, N, bias=True)
    layer = ark.QuantLinear(bits, group, K, N, True, trainable=True, weight_dtype=torch.float32, sym=sym,
                            packing_format=fmt, compute="exact")
    layer.load_state_dict(t)
    assert isinstance(layer.bias, torch.nn.Parameter) and layer.bias.requires_grad
    w = decode_reference({k: v for k, v in t.items()}, bits, group, fmt, K, N).to(torch.float32)
    ark.ark_post_init(layer)

    x = random_input(gen, (2, 5, K), dtype).requires_grad_(True)
    y = layer(x)
    assert y.requires_grad
    probe = torch.randn(y.shape, generator=gen).to(dtype)  # a non-uniform upstream gradient
    (y * probe).sum().backward()

    x_ref = x.detach().to(torch.float32).requires_grad_(True)
    b_ref = layer.bias.detach().clone().requires_grad_(True)
    y_ref = torch.nn.functional.linear(x_ref, w, b_ref)
    (y_ref * probe.to(torch.float32)).sum().backward()

    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert x.grad.dtype == dtype
    gx, gb = x_ref.grad, b_ref.grad
    torch.testing.assert_close(x.grad.to(torch.float32), gx, rtol=tol, atol=tol * gx.abs().max().item())
    torch.testing.assert_close(layer.bias.grad, gb, rtol=tol, atol=tol * gb.abs().max().item())


def test_frozen_weights_and_no_grad_path():
    gen = generator(case_id("frozen"))
    t = make_checkpoint(ark, gen, 4, 32, True, "auto_round:auto_gptq", K, N, bias=True)
    layer = ark.QuantLinear(4, 32, K, N, True, trainable=True, sym=True)
    layer.load_state_dict(t)
    ark.ark_post_init(layer)
    assert [n for n, p in layer.named_parameters()] == ["bias"]  # quantized weights are not parameters
    with torch.no_grad():
        y = layer(random_input(gen, (3, K), torch.float32).requires_grad_(True))
    assert not y.requires_grad


def test_backward_through_a_frozen_layer_raises():
    gen = generator(case_id("not_trainable"))
    layer = ark.QuantLinear(4, 32, K, N, False, sym=True)
    layer.load_state_dict(make_checkpoint(ark, gen, 4, 32, True, "auto_round:auto_gptq", K, N))
    ark.ark_post_init(layer)
    y = layer(random_input(gen, (2, K), torch.float32).requires_grad_(True))
    with pytest.raises(RuntimeError, match="trainable=True"):
        y.sum().backward()
