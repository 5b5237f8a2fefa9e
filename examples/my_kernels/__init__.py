"""A stand-in for your own kernel package (``custom_contract.py`` guards it)."""
