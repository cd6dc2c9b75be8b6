"""Lesson 2: how ELMo builds a word vector (Peters et al. 2018).

characters -> char-CNN (max-pooled filters) -> highway -> projection = layer 0, context-free;
then two biLSTM layers, forward and backward, = layers 1 and 2; then the scalar mix
ELMo = gamma * sum_j softmax(s)_j * h_j (Eq. 1), whose weights s and gamma a downstream task learns.

It runs on minielmo's TINY TEST MODEL (the allennlp 0.9.0 fixture, projection 16, cell 64): its
numbers show the mechanics, not meaning. The released ELMo files load with the same code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import data, plots
from .common import (
    LessonError, cosine_matrix, elmo_word_vectors, format_table, load_elmo_bilm, sense_separation,
    simple_words,
)

TINY_MODEL_NOTE = (
    "NOTE: this is minielmo's TINY TEST MODEL (the allennlp 0.9.0 test fixture, 16-dim\n"
    "projection, 64-dim LSTM cell). It exists to check numbers against the original TensorFlow\n"
    "biLM. Its similarities show the mechanics, not meaning; a real ELMo loads with the same code.")
SENTENCE = data.ZERO_SHOT_TEXT
# stage name in the biLM -> what it does (the table's last column)
STAGES = {
    "char_cnn.char_embedding": "one small vector per character (50 per token, padded)",
    "char_cnn.convs": "one filter width per conv, slid over the characters, max-pooled",
    "char_cnn.highway": "highway layers: gated mix of a transform and the input",
    "char_cnn.projection": "down to the LSTM size: the context-free token vector (layer 0)",
    "forward_layers": "forward LSTM: reads left to right",
    "backward_layers": "backward LSTM: reads right to left",
}
# Scalar-mix settings to compare: name -> pre-softmax weights s (one per layer) and gamma.
MIX_SETTINGS = {
    "default (s = 0, gamma = 1)": ([0.0, 0.0, 0.0], 1.0),
    "layer 0 only": ([8.0, 0.0, 0.0], 1.0),
    "layer 1 only": ([0.0, 8.0, 0.0], 1.0),
    "layer 2 only": ([0.0, 0.0, 8.0], 1.0),
    "default, gamma = 2": ([0.0, 0.0, 0.0], 2.0),
}


def _shape(value) -> str:
    while isinstance(value, (tuple, list)):  # the LSTM returns (outputs, (hidden, memory))
        value = value[0]
    return "x".join(map(str, value.shape)) if isinstance(value, torch.Tensor) else "?"


def stage_modules(bilm) -> list[str]:
    """Names of the biLM modules whose shapes the lesson shows, in the order data flows."""
    n_convs = len(bilm.char_cnn.convs)
    n_layers = len(bilm.forward_layers)
    return (["char_cnn.char_embedding"] + [f"char_cnn.convs.{i}" for i in range(n_convs)]
            + ["char_cnn.highway", "char_cnn.projection"]
            + [f"{d}_layers.{i}" for i in range(n_layers) for d in ("forward", "backward")])


@torch.no_grad()
def trace_shapes(bilm, words: list[str]) -> list[list[str]]:
    """Run one sentence with forward hooks on the biLM's stages; rows of (module, class, in, out, why)."""
    import minielmo

    modules = dict(bilm.named_modules())
    rows, handles = [], []
    for name in stage_modules(bilm):
        why = STAGES[name.rsplit(".", 1)[0] if name.split(".")[-1].isdigit() else name]

        def hook(mod, inputs, output, name=name, why=why):
            rows.append([name, type(mod).__name__, _shape(inputs), _shape(output), why])

        handles.append(modules[name].register_forward_hook(hook))
    try:
        out = bilm(minielmo.batch_to_ids([words]))
    finally:
        for handle in handles:
            handle.remove()
    for j, act in enumerate(out["activations"]):
        what = "char-CNN vector, copied for both directions" if j == 0 else \
            f"[forward | backward] LSTM layer {j}" + (" (+ residual from layer 1)" if j > 1 else "")
        rows.append([f"activations[{j}]", "output", "", _shape(act), what])
    return rows


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def mix_word_vectors(layers: np.ndarray, weights: list[float], gamma: float) -> np.ndarray:
    """(3, N, D) biLM layers -> (N, D) through minielmo.ScalarMix with the given s and gamma."""
    import minielmo

    mix = minielmo.ScalarMix(layers.shape[0])
    mix.weights.copy_(torch.tensor(weights))
    mix.gamma.copy_(torch.tensor([gamma]))
    return mix([torch.from_numpy(layer) for layer in layers]).numpy()


def run(out: Path, word: str | None = None) -> dict:
    """Print the shapes, parameters, per-layer sense separation and scalar-mix settings of the
    tiny fixture ELMo; draw elmo_layers.png. `word`: one of data.POLYSEMY (default "bank")."""
    import minielmo

    word = word or "bank"
    if word not in data.POLYSEMY:
        raise LessonError(f"no prepared sentences for {word!r}; choose one of {list(data.POLYSEMY)}")
    print(TINY_MODEL_NOTE + "\n")
    bilm = load_elmo_bilm()
    config = bilm.config

    words = simple_words(SENTENCE)
    print(f"== Shapes through the biLM for one sentence of {len(words)} tokens: {words}")
    print(f"   B = 1 sentence, T+2 = {len(words) + 2} positions with <S> and </S>, 50 characters per token;")
    print(f"   the char-CNN sees every position as its own row: B*(T+2) = {len(words) + 2} rows")
    shapes = trace_shapes(bilm, words)
    print(format_table(["module", "class", "input", "output", "what it does"], shapes))

    print("\n== Parameters")
    parts = [["char-CNN + highway + projection", _count(bilm.char_cnn)],
             ["forward LSTM layers", _count(bilm.forward_layers)],
             ["backward LSTM layers", _count(bilm.backward_layers)],
             ["total", _count(bilm)]]
    print(format_table(["part", "parameters"], [[p, f"{n:,}"] for p, n in parts]))

    senses = data.POLYSEMY[word]
    sentences = [s for group in senses.values() for s in group]
    labels = [sense for sense, group in senses.items() for _ in group]
    layers = elmo_word_vectors(bilm, sentences, word)  # (3, N, 2P)

    print(f"\n== {word!r} per ELMo layer: same-sense minus different-sense cosine")
    separation = [sense_separation(v, labels) for v in layers]
    print(format_table(["layer", "same sense", "different sense", "gap", f"{word!r} differs across sentences by"],
                       [[f"{j} ({'char-CNN' if j == 0 else f'biLSTM {j}'})", s, d, g,
                         f"{np.abs(layers[j] - layers[j][0]).max():.2e}"]
                        for j, (s, d, g) in enumerate(separation)]))
    print("  Layer 0 is identical in every sentence (it sees only the characters); the biLSTM")
    print("  layers change with the sentence. Whether the change follows the senses needs a")
    print("  trained model: this tiny one is not one.")

    # Elmo = the biLM + one scalar mix per output; its default mix averages the three layers.
    elmo = minielmo.Elmo.from_files(minielmo.FIXTURE_OPTIONS, minielmo.FIXTURE_WEIGHTS)
    mix = elmo.scalar_mixes[0]
    print("\n== Scalar mix: ELMo = gamma * sum_j softmax(s)_j * layer_j")
    print(f"  minielmo.Elmo's mix as loaded: s = {mix.weights.tolist()}, gamma = {mix.gamma.item():.1f}"
          f" -> softmax(s) = {np.round(torch.softmax(mix.weights, 0).tolist(), 3).tolist()}")
    print("  (s and gamma are trained with the downstream task; the file holds only the biLM)")
    with torch.no_grad():
        char_ids = minielmo.batch_to_ids([simple_words(s) for s in sentences])
        elmo_out = elmo(char_ids)["elmo_representations"][0]
    index = torch.tensor([[w.lower() for w in simple_words(s)].index(word) for s in sentences])
    elmo_word = elmo_out[torch.arange(len(sentences)), index].numpy()
    by_hand = mix_word_vectors(layers, [0.0, 0.0, 0.0], 1.0)
    mix_check = float(np.abs(elmo_word - by_hand).max())
    print(f"  Elmo output vs ScalarMix applied to the biLM layers by hand: max |diff| = {mix_check:.1e}")

    mix_rows, mixes = [], {}
    for name, (weights, gamma) in MIX_SETTINGS.items():
        vectors = mix_word_vectors(layers, weights, gamma)
        mixes[name] = vectors
        sims = cosine_matrix(vectors)
        same, diff, gap = sense_separation(vectors, labels)
        soft = torch.softmax(torch.tensor(weights), 0).numpy()
        mix_rows.append([name, " ".join(f"{w:.2f}" for w in soft), gamma,
                         float(np.linalg.norm(vectors, axis=-1).mean()), float(sims.min()), gap])
    print(format_table(["setting", "softmax(s)", "gamma", "mean |vector|", "min cosine", "sense gap"],
                       mix_rows))
    print("  s picks the layers: all weight on layer 0 gives the context-free vector (min cosine")
    print("  1.0: the same in every sentence); weight on the biLSTM layers brings the sentence in.")
    print("  gamma only scales the vector: cosines do not change, the size does.")

    written: list[Path] = []
    plt = plots.pyplot()
    if plt is None:
        print("\n" + plots.VIZ_HINT)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        layer_labels = ["0 char-CNN", "1 biLSTM", "2 biLSTM"]
        for w, senses_w in data.POLYSEMY.items():
            sents = [s for group in senses_w.values() for s in group]
            labs = [sense for sense, group in senses_w.items() for _ in group]
            vecs = layers if w == word else elmo_word_vectors(bilm, sents, w)
            axes[0].plot(layer_labels, [sense_separation(v, labs)[2] for v in vecs], marker="o", label=w)
        axes[0].axhline(0.0, color="grey", linewidth=0.8)
        axes[0].set_title("Sense separation per ELMo layer (TINY TEST MODEL)")
        axes[0].set_xlabel("biLM layer")
        axes[0].set_ylabel("same-sense minus different-sense cosine")
        axes[0].legend(title="word", fontsize=8)
        names = list(MIX_SETTINGS)
        mins = [row[4] for row in mix_rows]
        norms = [row[3] for row in mix_rows]
        x = np.arange(len(names))
        axes[1].bar(x - 0.2, mins, width=0.4, label="min cosine between sentences")
        ax2 = axes[1].twinx()
        ax2.bar(x + 0.2, norms, width=0.4, color="tab:orange", label="mean vector length")
        axes[1].set_xticks(x)
        axes[1].set_xticklabels([n.replace(" (", "\n(").replace(", ", ",\n") for n in names], fontsize=8)
        axes[1].set_title(f"Scalar mix settings: {word!r} across {len(sentences)} sentences")
        axes[1].set_xlabel("scalar-mix setting")
        axes[1].set_ylabel("min cosine between sentences")
        ax2.set_ylabel("mean vector length")
        axes[1].set_ylim(0, 1.3)
        ax2.set_ylim(0, max(norms) * 1.3)
        axes[1].legend(loc="upper left", fontsize=8)
        ax2.legend(loc="upper right", fontsize=8)
        plots.save(fig, out / "elmo_layers.png", written)
    for path in written:
        print(f"wrote {path}")
    return {"shapes": shapes, "layers": layers, "separation": separation, "mix_rows": mix_rows,
            "mixes": mixes, "mix_check": mix_check, "senses": labels, "written": written,
            "config": config}
