"""Simulated ``aiter.jit.utils.torch_guard``: entry points as ``torch.ops.aiter.*`` custom ops.

As in AITER, ``torch_compile_guard`` turns a function into a torch custom op
so that ``torch.compile`` can trace around it, and hands back an opaque
``wrapper_custom(*args, **kwargs)`` (no ``functools.wraps``) whose closure
holds the op name ``loadName``:

* the schema is ``torch.library.infer_schema(fn, mutates_args=...)``
  (``"unknown"``, the default, marks every tensor argument as mutated);
* a function whose first parameter is not annotated ``Tensor`` gets a
  leading ``Tensor dummy`` argument, which ``wrapper_custom`` fills with
  ``torch.empty(1, device=device)`` and the kernel drops;
* an ``int``/``bool``/``float`` return becomes ``(Tensor, T)`` in the schema
  and ``wrapper_custom`` returns the second element;
* the kernel is registered for the CPU and CUDA dispatch keys; the fake
  (``torch.compile``'s shape function) is ``gen_fake``, else the function
  itself.

Unlike AITER, the op definitions outlive this module (the simulator is
installed many times per process): :mod:`quantguard.sim._custom_ops` defines
each op once and routes it to the function of the current import. AITER's
lists of ops it leaves unwrapped or gives hand-written schemas name nothing
the simulator models, so they are not reproduced.
"""

import inspect

import torch

from quantguard.sim import _custom_ops

__all__ = ["torch_compile_guard"]

_SCALAR_RETURNS = (int, bool, float)


def _first_parameter_is_tensor(signature):
    parameters = list(signature.parameters.values())
    return bool(parameters) and parameters[0].annotation is torch.Tensor


def _op_schema(calling_func, mutates_args, input_is_tensor, return_non_tensor):
    """AITER's schema: inferred, with the dummy and the scalar-return adjustments."""
    inferred = torch.library.infer_schema(calling_func, mutates_args=mutates_args)
    inputs, outputs = (part.strip() for part in inferred.split("->", 1))
    if not input_is_tensor:
        inputs = "(Tensor dummy)" if inputs == "()" else "(Tensor dummy, " + inputs[1:]
    if return_non_tensor:
        outputs = f"(Tensor, {outputs})"
    return f"{inputs} -> {outputs}"


def torch_compile_guard(mutates_args="unknown", device="cpu", calling_func_=None, gen_fake=None):
    """Register ``calling_func_`` (default: the decorated function) as ``torch.ops.aiter.<name>``.

    ``device`` is where the dummy tensor (and the placeholder of a scalar
    return) is allocated. The decorated function is what the op's kernel runs.
    """

    def decorator(func):
        calling_func = calling_func_ if calling_func_ is not None else func
        signature = inspect.signature(calling_func)
        input_is_tensor = _first_parameter_is_tensor(signature)
        return_non_tensor = signature.return_annotation in _SCALAR_RETURNS
        loadName = calling_func.__name__
        schema = _op_schema(calling_func, mutates_args, input_is_tensor, return_non_tensor)
        shape_func = gen_fake if gen_fake is not None else calling_func

        def run(impl, args, kwargs):
            if return_non_tensor:
                return torch.empty(1, device=device), impl(*args, **kwargs)
            return impl(*args, **kwargs)

        if input_is_tensor:

            def kernel(*args, **kwargs):
                return run(func, args, kwargs)

            def fake(*args, **kwargs):
                return run(shape_func, args, kwargs)

        else:

            def kernel(dummy, *args, **kwargs):
                return run(func, args, kwargs)

            def fake(dummy, *args, **kwargs):
                return run(shape_func, args, kwargs)

        _custom_ops.register(loadName, schema, _custom_ops.OpEntry(schema, calling_func, kernel, fake))

        def wrapper_custom(*args, **kwargs):
            result = (
                getattr(torch.ops.aiter, loadName)(*args, **kwargs)
                if input_is_tensor
                else getattr(torch.ops.aiter, loadName)(torch.empty(1, device=device), *args, **kwargs)
            )
            return result[1] if return_non_tensor else result

        return wrapper_custom

    return decorator
