"""auto_round_extension.ark: ark's QuantLinear under the import path of the ARK proposal's example."""

from ark import QuantLinear, ark_post_init

__all__ = ["QuantLinear", "ark_post_init"]
