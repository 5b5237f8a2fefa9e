"""Simulated ``atom.model_ops``."""
