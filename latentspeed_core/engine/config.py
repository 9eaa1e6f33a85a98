"""Engine config (placeholder)."""

from ..config import load_yaml


def load_config(path, registry):
    return load_yaml(path)
