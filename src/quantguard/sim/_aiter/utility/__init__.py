"""Simulated ``aiter.utility``."""
