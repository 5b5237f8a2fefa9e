"""Simulated ``atom.models``: only the load-time weight conversions of the models that AITER checks reach."""
