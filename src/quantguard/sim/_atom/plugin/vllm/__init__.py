"""Simulated ``atom.plugin.vllm``."""
