"""The ARK proposal's example, verbatim, on a real state_dict made by ark's quantizer."""

import torch

import ark
from quant_linear_reference import report_seed  # noqa: F401 (autouse: prints the seed)
from quant_linear_reference import case_id, decode_reference, generator, make_checkpoint


def test_rfc_example_runs_verbatim():
    gen = generator(case_id("rfc"))
    layer_tensors = make_checkpoint(ark, gen, 4, 128, True, "auto_round:auto_gptq", 4096, 4096, bias=True)
    state_dict = {"fc1." + k: v for k, v in layer_tensors.items()}

    # --- the example, as the proposal writes it ---
    import torch
    from auto_round_extension.ark import QuantLinear
    from auto_round_extension.ark.qlinear import ark_post_init
    class DemoModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = QuantLinear(bits=4, group_size=128, infeatures=4096, outfeatures=4096, bias=True)
        def forward(self, x):
            return self.fc1(x)
    model = DemoModel()
    model.load_state_dict(state_dict, strict=False)
    model = ark_post_init(model)
    y = model(torch.randn(1, 16, 4096, device="cpu", dtype=torch.float32))
    # --- end of the example ---

    assert y.shape == (1, 16, 4096) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    assert isinstance(model.fc1, ark.QuantLinear)

    # The same model on a seeded input against dequantize-then-matmul. The default weight_dtype is bf16, so the
    # fp16 scales and bias were rounded to bf16 on load: the reference uses the loaded (rounded) values.
    x = torch.randn(1, 16, 4096, generator=gen)
    loaded = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in layer_tensors.items()}
    loaded["scales"] = layer_tensors["scales"].to(torch.bfloat16)
    w = decode_reference(loaded, 4, 128, "auto_round:auto_gptq", 4096, 4096)
    ref = x.reshape(16, 4096).double() @ w.T + layer_tensors["bias"].to(torch.bfloat16).double()
    err = (model(x).reshape(16, 4096).double() - ref).abs().max().item()
    # int8 activations (the auto mode here) move each x_k by up to max|x| / 254 of its group: the error is a
    # small fraction of the output scale, far from what a wrong layout would give.
    assert err < 0.02 * ref.abs().max().item(), err
