"""Simulated ``aiter.jit.utils``."""
