"""auto_round_extension.ark.qlinear: QuantLinear and ark_post_init where the ARK proposal imports them."""

from ark.qlinear import QuantLinear, ark_post_init

__all__ = ["QuantLinear", "ark_post_init"]
