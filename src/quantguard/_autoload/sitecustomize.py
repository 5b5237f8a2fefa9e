"""Put on PYTHONPATH by ``quantguard run``: enable from the environment, then chain to the next sitecustomize."""

import importlib.machinery
import importlib.util
import os
import sys

try:
    from quantguard._bootstrap import enable_from_environment

    enable_from_environment()
finally:
    _here = os.path.dirname(os.path.abspath(__file__))
    _rest = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    _spec = importlib.machinery.PathFinder.find_spec("sitecustomize", _rest)
    if _spec is not None and _spec.origin and os.path.dirname(os.path.abspath(_spec.origin)) != _here:
        _module = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_module)
