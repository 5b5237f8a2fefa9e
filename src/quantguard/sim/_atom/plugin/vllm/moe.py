"""Simulated ``atom.plugin.vllm.moe``: the lazy class decorator ATOM main puts on ``FusedMoE``.

The decorator returns a subclass whose ``__new__`` builds an instance of the
*decorated* class (renamed for vLLM's plugin mode on first use), so
``atom.model_ops.moe.FusedMoE`` is the wrapper while every layer is an
instance of the class behind it: a method patched on the wrapper never runs.
"""

__all__ = ["FusedMoEDecoratorForPluginMode"]


def FusedMoEDecoratorForPluginMode(cls):
    """Defer the class's plugin-mode changes to its first instantiation."""
    original_cls = cls
    decorated = {}

    def decorated_class():
        # Plugin mode (not simulated) would rename the class here, once.
        return decorated.setdefault("value", original_cls)

    class LazyMoEWrapper(original_cls):
        def __new__(cls, *args, **kwargs):
            return decorated_class()(*args, **kwargs)

    LazyMoEWrapper.__name__ = original_cls.__name__
    LazyMoEWrapper.__qualname__ = original_cls.__qualname__
    LazyMoEWrapper.__module__ = original_cls.__module__
    return LazyMoEWrapper
