"""Simulated ``atom.model_loader.loader``: checkpoint tensors into layers, then post-processing.

Post-processing follows ATOM main: for each module, the layer's own
``process_weights_after_loading()`` and then its quant method's
``process_weights_after_loading(module)``; for MoE layers the quant method is
what normalizes and shuffles the experts.  ATOM visits parents first; the
simulator visits children first because its MLA core reads the already
dense ``kv_b_proj`` weight (ATOM's MLA post-processes that projection itself).
"""

from collections.abc import Mapping

import torch
from atom.model_ops.base_config import QuantizeMethodBase
from torch import nn

__all__ = ["load_model", "process_weights_after_loading"]


def process_weights_after_loading(model: nn.Module) -> None:
    """Run every layer's and every quant method's post-load step, in ATOM main's order."""
    for module in reversed(list(model.modules())):
        if hasattr(module, "process_weights_after_loading"):
            module.process_weights_after_loading()
        quant_method = getattr(module, "quant_method", None)
        if isinstance(quant_method, QuantizeMethodBase):
            quant_method.process_weights_after_loading(module)


def load_model(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> nn.Module:
    """Copy each ``name -> tensor`` through its module's ``weight_loader``, then post-process."""
    for name, tensor in weights.items():
        module_name, _, attribute = name.rpartition(".")
        module = model.get_submodule(module_name)
        module.weight_loader(getattr(module, attribute), tensor)
    process_weights_after_loading(model)
    return model
