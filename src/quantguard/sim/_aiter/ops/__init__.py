"""Simulated ``aiter.ops``: kernel front ends grouped by family."""
