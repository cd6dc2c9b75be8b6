"""The biLM's language-model head: one softmax over the word vocabulary, shared by both directions.

Shape legend: N positions · P projection · V vocabulary

Paper: Peters et al. 2018 §3.1 ties the softmax parameters Θs across the forward and backward LMs:
the forward top layer at position k scores the word at k+1, the backward top layer the word at
k-1, through the same weights. ELMo's users discard the head (bilm-tf never dumped it); minielmo
ships it, so the shipped model's perplexity can be reproduced and its predictions shown
(`python -m minielmo predict`).

NOTE (deviation): bilm-tf trains with a sampled softmax (8192 samples) over a full output layer;
we use an adaptive softmax (Grave et al. 2017, torch.nn.AdaptiveLogSoftmaxWithLoss): frequent
words in a full "head", rarer ones in clusters with smaller input projections. It is exact (a real
distribution over all V words, so perplexity is well defined) and cheaper than a full softmax at
our vocabulary size (`python -m minielmo.cost`).
"""

from __future__ import annotations

import torch
from torch import nn

# The 2,000 most frequent words (most of the running text) in the head, ranks 2,000-10,000 and
# 10,000-V in two clusters. DIV_VALUE 2 gives the clusters P/2 and P/4 inputs (64 and 32 at
# P = 128); the usual 4 left the rarest words only 8 dimensions.
CUTOFFS = (2000, 10000)
DIV_VALUE = 2.0


def cutoffs_for(vocab_size: int) -> tuple[int, ...]:
    """CUTOFFS for a full-size vocabulary; a small one (tests) gets one cluster after its first quarter."""
    return CUTOFFS if vocab_size > CUTOFFS[-1] + 2000 else (max(1, vocab_size // 4),)


class SharedSoftmax(nn.Module):
    """One softmax over the vocabulary for both directions (Θs in the paper)."""

    def __init__(self, projection_dim: int, vocab_size: int, div_value: float = DIV_VALUE):
        super().__init__()
        self.projection_dim, self.vocab_size, self.div_value = projection_dim, vocab_size, div_value
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(projection_dim, vocab_size, list(cutoffs_for(vocab_size)),
                                                     div_value=div_value)

    def forward(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """hidden (N, P), targets (N,) -> summed negative log-likelihood (scalar)."""
        return self.softmax(hidden, targets).loss * hidden.shape[0]  # .loss is the mean

    def log_prob(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (N, P) -> log-probabilities of every word (N, V)."""
        return self.softmax.log_prob(hidden)

    @classmethod
    def from_folder(cls, folder) -> tuple["SharedSoftmax", list[str]]:
        """The head shipped in a model folder (lm_head.safetensors + lm_head.json + vocab.txt), in
        eval mode, and the words its outputs score."""
        from weights.elmo_lm_head import load_lm_head, read_lm_head  # lazily: model code reads no files

        settings, words = read_lm_head(folder)
        head = cls(settings["projection_dim"], settings["vocab_size"], settings["div_value"])
        load_lm_head(head, folder)
        return head.eval(), words

    def describe(self) -> dict:
        """What rebuilds this head: lm_head.json."""
        return {"projection_dim": self.projection_dim, "vocab_size": self.vocab_size,
                "cutoffs": list(cutoffs_for(self.vocab_size)), "div_value": self.div_value}
