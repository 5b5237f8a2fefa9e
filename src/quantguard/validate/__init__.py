"""Offline validations behind ``quantguard validate``: quant, ckfree, accuracy."""
