"""Simulated ``aiter.jit``: the JIT build machinery and chip information."""
