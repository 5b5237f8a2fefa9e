"""Name the model layer a guarded call came from.

``quantguard.attach(model)`` registers forward pre-hooks (and always-called
forward hooks) on the model's modules; while a module's forward runs, its
qualified name (``model.layers.3.self_attn.o_proj``) is the innermost entry of
a per-task stack that events read.  Without ``attach`` events carry the
callsite only.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = ["current_layer", "LayerHooks"]

_STACK: ContextVar[tuple[str, ...]] = ContextVar("quantguard_layer_stack", default=())


def _is_compiling() -> bool:
    import torch

    return torch.compiler.is_compiling()


def current_layer() -> str | None:
    stack = _STACK.get()
    return stack[-1] if stack else None


class LayerHooks:
    """Handles of the hooks one ``attach`` call registered; ``remove()`` takes them off."""

    def __init__(self, model: Any, prefix: str = "") -> None:
        self.handles: list[Any] = []
        self.model = model
        for name, module in model.named_modules():
            qualified = ".".join(part for part in (prefix, name) if part) or type(module).__name__
            self.handles.append(module.register_forward_pre_hook(self._enter(qualified)))
            self.handles.append(module.register_forward_hook(self._leave, always_call=True))

    @staticmethod
    def _enter(name: str) -> Any:
        def hook(module: Any, args: Any) -> None:
            if _is_compiling():
                return  # a context variable would break the graph; compiled calls carry their callsite
            _STACK.set(_STACK.get() + (name,))

        return hook

    @staticmethod
    def _leave(module: Any, args: Any, output: Any) -> None:
        if _is_compiling():
            return
        stack = _STACK.get()
        if stack:
            _STACK.set(stack[:-1])

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
