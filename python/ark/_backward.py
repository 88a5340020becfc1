"""The autograd rule of a trainable QuantLinear: the quantized weight is frozen, so only the input (and a bias
added outside, by plain autograd) gets a gradient: grad_x = grad_y @ W, with W dequantized on demand.

Dequantizing per backward call costs N x K fp32 of transient memory and one pass over the weight; it keeps one
resident copy of the weight (the packed one) and is exact, which LoRA-style fine-tuning needs more than speed.
"""

import torch


class QuantLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, module):
        ctx.module = module
        ctx.x_shape = x.shape
        ctx.x_dtype = x.dtype
        return module._run(x)

    @staticmethod
    def backward(ctx, grad_y):
        module = ctx.module
        if not module.trainable:
            raise RuntimeError(
                f"ark QuantLinear {module.infeatures}->{module.outfeatures} was built with trainable=False; "
                "construct it with trainable=True to backpropagate through it"
            )
        w = module.dequantize_weight()  # [N, K] fp32
        g = grad_y.reshape(-1, w.shape[0]).to(torch.float32)
        grad_x = (g @ w).reshape(ctx.x_shape).to(ctx.x_dtype)
        return grad_x, None
