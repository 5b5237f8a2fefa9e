"""Simulated ``atom.model_loader``."""
