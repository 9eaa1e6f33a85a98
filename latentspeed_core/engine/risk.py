"""Standard risk checks (placeholder)."""


def register_standard(register) -> None:
    pass
