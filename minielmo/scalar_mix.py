"""ScalarMix: the task-specific weighting of the biLM layers that makes ELMo (Peters et al. 2018, Eq. 1):

    ELMo = gamma * sum_j softmax(s)_j * h_j

Shape legend: B batch · T tokens · D layer width (2P for the biLM)

Checked against: allennlp 0.9.0 modules/scalar_mix.py. Left out: its fixed (non-trainable)
initial weights option; set `weights` directly instead.
"""

import torch
from torch import nn

# Added to the variance before the square root, as in the reference.
LAYER_NORM_EPS = 1e-12


class ScalarMix(nn.Module):
    """gamma * sum_j softmax(weights)_j * layer_j, optionally layer-normalising each layer first.

    `weights` (L,) are the pre-softmax s_j (zeros: an even mix), `gamma` (1,) the scale (one).

    With do_layer_norm=True each layer is normalised by ONE mean and variance taken over all
    unmasked elements of the whole batch (every real token and every feature), as the reference
    does. The result for a sentence therefore depends on the other sentences in its batch.
    Padded positions are normalised with the same statistics (they are not zero afterwards).
    """

    def __init__(self, num_layers: int, do_layer_norm: bool = False):
        super().__init__()
        self.num_layers = num_layers
        self.do_layer_norm = do_layer_norm
        self.weights = nn.Parameter(torch.zeros(num_layers))
        self.gamma = nn.Parameter(torch.ones(1))

    def forward(self, layers: list[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """layers: L tensors (B, T, D); mask (B, T), needed only for layer norm -> (B, T, D)."""
        if len(layers) != self.num_layers:
            raise ValueError(f"ScalarMix was built for {self.num_layers} layers, got {len(layers)}")
        if self.do_layer_norm and mask is None:
            raise ValueError("ScalarMix(do_layer_norm=True) needs the mask of real positions")
        mix = torch.softmax(self.weights, dim=0)  # (L,)
        mixed = 0
        for weight, layer in zip(mix, layers):
            if self.do_layer_norm:
                layer = masked_layer_norm(layer, mask)
            mixed = mixed + weight * layer
        return self.gamma * mixed


def masked_layer_norm(layer: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(layer - mean) / sqrt(var + eps), with one scalar mean and variance over all unmasked
    elements of the batch: layer (B, T, D), mask (B, T) -> (B, T, D)."""
    mask = mask.to(layer.dtype).unsqueeze(-1)  # (B, T) -> (B, T, 1)
    count = mask.sum() * layer.shape[-1]
    mean = (layer * mask).sum() / count
    variance = (((layer * mask - mean) * mask) ** 2).sum() / count
    return (layer - mean) / torch.sqrt(variance + LAYER_NORM_EPS)
