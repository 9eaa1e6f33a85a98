"""Standard feature calculators (placeholder)."""


def register_standard(register) -> None:
    pass
