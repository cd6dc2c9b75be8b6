"""Elmo: the biLM plus one ScalarMix per requested representation (Peters et al. 2018, Eq. 1, §3.3).

Shape legend: B batch · T tokens · P projection · D = 2P representation width

The biLM runs once; each of the `num_output_representations` outputs has its own ScalarMix
(e.g. one for a task model's input layer and one for its output layer, as in the paper's SQuAD
model). The <S> and </S> positions the biLM adds are removed unless keep_sentence_boundaries.

As in AllenNLP, the biLM is frozen by default (requires_grad=False: the paper's §3.3 keeps the
biLM's weights fixed and learns only the mix), the scalar mixes are trainable, and dropout acts
on the mixed representations while training.

ElmoEmbedder gives every biLM layer of a tokenised sentence, (L+1, T, 2P) ((3, T, 1024) for the
original ELMo), as AllenNLP's `allennlp.commands.elmo.ElmoEmbedder` does.

Checked against: allennlp 0.9.0 modules/elmo.py (Elmo) and commands/elmo.py (ElmoEmbedder). Left
out: the word-vector cache, inputs with more than 3 dimensions, ElmoEmbedder's file commands
(embed_file) and CUDA device numbers. Elmo's dict output cannot be torch.jit.script'ed or traced
(docs/api.md); torch.compile works.
"""

import torch
from torch import nn

from .bilm import BiLM
from .characters import batch_to_ids
from .scalar_mix import ScalarMix


class Elmo(nn.Module):
    """ELMo representations for a task model, built as AllenNLP builds them:

        Elmo(options_file, weight_file, num_output_representations, requires_grad=False,
             do_layer_norm=False, dropout=0.0)    # the released files (.hdf5 or converted)
        Elmo(bilm, num_output_representations=1, ...)    # a BiLM you already have

    requires_grad=False freezes the biLM (its parameters get requires_grad=False, in place, also
    for a BiLM passed in); True fine-tunes it together with the mixes. scalar_mix_parameters:
    fixed pre-softmax layer weights, one per biLM layer (AllenNLP's argument; frozen, gamma 1).
    """

    def __init__(self, options_file=None, weight_file=None, num_output_representations: int = 1,
                 requires_grad: bool = False, do_layer_norm: bool = False, dropout: float = 0.0,
                 keep_sentence_boundaries: bool = False, stateful: bool = False,
                 module: BiLM | None = None, scalar_mix_parameters: list[float] | None = None):
        super().__init__()
        if isinstance(options_file, BiLM):  # Elmo(bilm, ...): the biLM itself, not a file
            if module is not None or weight_file is not None:
                raise TypeError("Elmo(bilm, ...) takes the biLM alone as its first argument; pass "
                                "num_output_representations and the rest by keyword")
            options_file, module = None, options_file
        if module is None:
            if options_file is None or weight_file is None:
                raise TypeError("Elmo needs options_file and weight_file (or a BiLM: Elmo(bilm, ...)); "
                                "Elmo.from_pretrained() uses a model shipped with minielmo")
            from weights.common import refuse_url  # lazy: the modules themselves never touch a file

            refuse_url(options_file, "options_file")
            refuse_url(weight_file, "weight_file")
            module = BiLM.from_files(options_file, weight_file, stateful=stateful)
        if not isinstance(num_output_representations, int) or num_output_representations < 1:
            raise ValueError(f"num_output_representations must be >= 1, "
                             f"got {num_output_representations!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.bilm = module.requires_grad_(requires_grad)
        self.scalar_mixes = nn.ModuleList(ScalarMix(module.num_layers, do_layer_norm)
                                          for _ in range(num_output_representations))
        if scalar_mix_parameters is not None:
            self._fix_mixes(scalar_mix_parameters)
        # NOTE (deviation): the reference defaults to dropout 0.5; the default here is 0.0, so a
        # model that is not put in eval mode still gives the deterministic representation.
        self.dropout = nn.Dropout(dropout)
        self.keep_sentence_boundaries = keep_sentence_boundaries

    @classmethod
    def from_files(cls, options_file, weight_file, num_output_representations: int = 1,
                   dropout: float = 0.0, do_layer_norm: bool = False,
                   keep_sentence_boundaries: bool = False, stateful: bool = False,
                   requires_grad: bool = False, scalar_mix_parameters: list[float] | None = None) -> "Elmo":
        """Elmo over options.json + weights, in eval mode (`.train()` turns dropout on)."""
        return cls(options_file, weight_file, num_output_representations, requires_grad=requires_grad,
                   do_layer_norm=do_layer_norm, dropout=dropout, keep_sentence_boundaries=keep_sentence_boundaries,
                   stateful=stateful, scalar_mix_parameters=scalar_mix_parameters).eval()

    @classmethod
    def from_pretrained(cls, name: str | None = None, num_output_representations: int = 1,
                        dropout: float = 0.0, do_layer_norm: bool = False,
                        keep_sentence_boundaries: bool = False, stateful: bool = False,
                        requires_grad: bool = False, scalar_mix_parameters: list[float] | None = None) -> "Elmo":
        """Elmo over a model shipped inside the package (see BiLM.from_pretrained), in eval mode."""
        bilm = BiLM.from_pretrained(name, stateful=stateful)
        return cls(bilm, num_output_representations=num_output_representations,
                   requires_grad=requires_grad, do_layer_norm=do_layer_norm, dropout=dropout,
                   keep_sentence_boundaries=keep_sentence_boundaries,
                   scalar_mix_parameters=scalar_mix_parameters).eval()

    def _fix_mixes(self, parameters) -> None:
        """AllenNLP's scalar_mix_parameters: the pre-softmax layer weights s_j, given and frozen
        (the scale gamma stays 1 and frozen too, as there)."""
        values = torch.as_tensor(parameters, dtype=torch.float32)
        L = self.bilm.num_layers
        if values.shape != (L,) or not torch.isfinite(values).all():
            raise ValueError(f"scalar_mix_parameters must be {L} finite numbers (one per biLM layer), got {parameters!r:.80}")
        with torch.no_grad():
            for mix in self.scalar_mixes:
                mix.weights.copy_(values)
                mix.weights.requires_grad_(False)
                mix.gamma.requires_grad_(False)

    def get_output_dim(self) -> int:
        """2P, the width of each ELMo representation (1024 for the original ELMo), as in AllenNLP."""
        return 2 * self.bilm.config.projection_dim

    def reset_states(self) -> None:
        self.bilm.reset_states()

    def forward(self, char_ids: torch.Tensor) -> dict:
        """char_ids (B, T, W) from batch_to_ids ->
        {"elmo_representations": num_output_representations tensors (B, T, 2P), "mask": (B, T)}
        (T + 2 instead of T with keep_sentence_boundaries). Padded positions are zero."""
        bilm_output = self.bilm(char_ids)
        layers, mask = bilm_output["activations"], bilm_output["mask"]  # L+1 x (B, T+2, D), (B, T+2)
        if self.keep_sentence_boundaries:
            output_mask = mask
        else:
            # Row i holds <S> at 0, tokens at 1..n_i, </S> at n_i + 1; dropping the first and last
            # column keeps the tokens, and mask[:, 2:] is True exactly on positions 0..n_i - 1.
            output_mask = mask[:, 2:]  # (B, T+2) -> (B, T)
        representations = []
        for scalar_mix in self.scalar_mixes:
            mixed = scalar_mix(layers, mask)  # (B, T+2, D)
            if not self.keep_sentence_boundaries:
                mixed = mixed[:, 1:-1]  # (B, T+2, D) -> (B, T, D)
            # NOTE (deviation): the reference leaves layer-normalised padding non-zero when it
            # keeps the boundaries; padding is zero here in every configuration.
            mixed = mixed * output_mask.unsqueeze(-1)
            representations.append(self.dropout(mixed))
        return {"elmo_representations": representations, "mask": output_mask}


class ElmoEmbedder:
    """Every biLM layer for tokenised sentences, as AllenNLP's ElmoEmbedder:

        ElmoEmbedder(options_file, weight_file)     # the released files (.hdf5 or converted)
        ElmoEmbedder(bilm=BiLM.from_pretrained())   # a BiLM you already have
        ElmoEmbedder()                              # the default shipped model

    embed_sentence(["The", "cat", "sat"]) -> numpy (L+1, T, 2P): layer 0 is the token embedding
    (duplicated to width 2P), layers 1..L the biLSTM layers, <S> and </S> left out. No scalar mix.
    NOTE (deviation): AllenNLP takes a cuda_device number; use `.bilm.to(device)` here."""

    def __init__(self, options_file=None, weight_file=None, bilm: BiLM | None = None):
        if bilm is None:
            if (options_file is None) != (weight_file is None):
                raise TypeError("ElmoEmbedder needs both options_file and weight_file (or neither: the default model)")
            if options_file is None:
                bilm = BiLM.from_pretrained()
            else:
                from weights.common import refuse_url  # lazy: the modules themselves never touch a file

                refuse_url(options_file, "options_file")
                refuse_url(weight_file, "weight_file")
                bilm = BiLM.from_files(options_file, weight_file)
        elif not isinstance(bilm, BiLM):
            raise TypeError(f"bilm must be a minielmo.BiLM, got {type(bilm).__name__}")
        self.bilm = bilm.eval()

    def embed_batch(self, batch: list[list[str]]) -> list:
        """Tokenised sentences -> one numpy array (L+1, T_i, 2P) each; an empty sentence gives (L+1, 0, 2P)."""
        if not isinstance(batch, (list, tuple)) or any(
                not isinstance(sentence, (list, tuple)) or not all(isinstance(t, str) for t in sentence)
                for sentence in batch):
            raise TypeError("embed_batch takes a list of tokenised sentences (lists of str), "
                            "e.g. [['The', 'cat', 'sat', '.']]")
        width, layers = 2 * self.bilm.config.projection_dim, self.bilm.num_layers
        if not any(batch):
            return [torch.zeros(layers, 0, width).numpy() for _ in batch]
        device = next(self.bilm.parameters()).device
        with torch.inference_mode():
            output = self.bilm(batch_to_ids([list(s) for s in batch]).to(device))
        stacked = torch.stack(output["activations"], dim=1)  # L+1 x (B, T+2, 2P) -> (B, L+1, T+2, 2P)
        # Row i holds <S> at 0, its tokens at 1..n_i and </S> at n_i + 1.
        return [stacked[i, :, 1 : len(sentence) + 1].float().cpu().numpy() for i, sentence in enumerate(batch)]

    def embed_sentence(self, sentence: list[str]):
        """One tokenised sentence -> numpy (L+1, T, 2P)."""
        return self.embed_batch([sentence])[0]

    def embed_sentences(self, sentences, batch_size: int = 64):
        """An iterable of tokenised sentences -> a generator of numpy (L+1, T_i, 2P), in order."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        batch = []
        for sentence in sentences:
            batch.append(sentence)
            if len(batch) == batch_size:
                yield from self.embed_batch(batch)
                batch = []
        if batch:
            yield from self.embed_batch(batch)
