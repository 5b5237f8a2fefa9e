"""Numerics: formats, layouts, dequantization references and comparison metrics."""
