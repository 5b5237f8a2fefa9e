"""Simulated ``atom.plugin``."""
