"""AutoRound packing_format names and the on-disk layout each one means (docs/FORMATS.md)."""

# packing_format -> the extension's layout name. v1 stores zero points minus one; v2 stores them as they are.
PACKING_FORMATS = {
    "auto_round:auto_gptq": "gptq-v1",
    "auto_round:gptq": "gptq-v1",
    "auto": "gptq-v1",
    "gptq": "gptq-v1",
    "auto_round": "gptq-v2",
    "auto_round:gptqmodel": "gptq-v2",
    "gptq_v2": "gptq-v2",
    "auto_round:auto_awq": "awq",
    "auto_round:awq": "awq",
    "awq": "awq",
}


def layout_of(packing_format):
    """The layout ("gptq-v1", "gptq-v2" or "awq") of an AutoRound packing_format; ValueError if unknown."""
    if not isinstance(packing_format, str) or packing_format not in PACKING_FORMATS:
        raise ValueError(
            f"packing_format {packing_format!r} is not supported (expected one of {sorted(PACKING_FORMATS)})"
        )
    return PACKING_FORMATS[packing_format]


def has_g_idx(layout):
    """GPTQ layouts carry g_idx (act-order); AWQ has none."""
    return layout != "awq"
