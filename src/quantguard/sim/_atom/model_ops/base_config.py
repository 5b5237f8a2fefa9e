"""Simulated ``atom.model_ops.base_config``: the base of ATOM's quant methods."""

from abc import ABC

from torch import nn

__all__ = ["QuantizeMethodBase"]


class QuantizeMethodBase(ABC):  # noqa: B024 - as in ATOM
    """How one layer's weights are prepared and applied for its quantization scheme."""

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        """Prepare ``layer``'s loaded weights for the kernels; called by the loader after the layer's own."""
        return None
