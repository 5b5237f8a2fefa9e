"""Simulated ``atom.utils``."""
