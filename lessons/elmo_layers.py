"""Lesson: how ELMo builds a word vector (Peters et al. 2018).

characters -> char-CNN (max-pooled filters) -> highway -> projection = layer 0, context-free;
then the biLSTM layers, forward and backward; then the scalar mix
ELMo = gamma * sum_j softmax(s)_j * h_j (Eq. 1), whose weights s and gamma a downstream task learns.

What the learner sees, on minielmo's default model (minielmo.DEFAULT_MODEL; the tables name it,
and say "untrained test fixture" when it is allennlp's 16-dim test model):
1. the shape of one sentence at every stage, traced with forward hooks, and the parameters;
2. a polysemous word in six sentences: layer 0 is the same wherever the word is spelled the same
   (a capital letter is a different character), the biLSTM layers change with the sentence;
3. the scalar mix: minielmo.Elmo equals ScalarMix applied by hand, and what s and gamma do;
4. elmo_layers.png. How much each layer knows about senses and parts of speech, measured on
   WordNet against random weights, is `python -m lessons layers`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import data, plots
from .common import (
    LessonError, cosine_matrix, elmo_is_fixture, elmo_label, elmo_word_vectors, format_table, load_elmo_bilm,
    sense_separation, simple_words, word_index,
)

FIXTURE_NOTE = (
    "NOTE: this is allennlp 0.9.0's test fixture (16-dim projection, 64-dim LSTM cell), an\n"
    "untrained test model: it exists to check numbers against the original TensorFlow biLM, so its\n"
    "similarities show the mechanics, not meaning. A trained ELMo loads with the same code.")
SENTENCE = data.ZERO_SHOT_TEXT
# stage name in the biLM -> what it does (the shape table's last column)
STAGES = {
    "char_cnn.char_embedding": "one small vector per character (50 per token, padded)",
    "char_cnn.convs": "one filter width per conv, slid over the characters, max-pooled",
    "char_cnn.highway": "highway layers: gated mix of a transform and the input",
    "char_cnn.projection": "down to the LSTM size: the context-free token vector (layer 0)",
    "forward_layers": "forward LSTM: reads left to right",
    "backward_layers": "backward LSTM: reads right to left",
}
# name -> pre-softmax weights s (one per layer; 8 puts 0.9993 of the weight on that layer), gamma
MIX_SETTINGS = {
    "default (s = 0, gamma = 1)": ([0.0, 0.0, 0.0], 1.0),
    "layer 0 only": ([8.0, 0.0, 0.0], 1.0),
    "layer 1 only": ([0.0, 8.0, 0.0], 1.0),
    "layer 2 only": ([0.0, 0.0, 8.0], 1.0),
    "default, gamma = 2": ([0.0, 0.0, 0.0], 2.0),
}


def stage_modules(bilm) -> list[str]:
    """Names of the biLM modules whose shapes the lesson shows, in the order data flows."""
    return (["char_cnn.char_embedding"] + [f"char_cnn.convs.{i}" for i in range(len(bilm.char_cnn.convs))]
            + ["char_cnn.highway", "char_cnn.projection"]
            + [f"{d}_layers.{i}" for i in range(len(bilm.forward_layers)) for d in ("forward", "backward")])


def _shape(value) -> str:
    while isinstance(value, (tuple, list)):  # the LSTM returns (outputs, (hidden, memory))
        value = value[0]
    return "x".join(map(str, value.shape)) if isinstance(value, torch.Tensor) else "?"


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


@torch.no_grad()
def mix_word_vectors(layers: np.ndarray, weights: list[float], gamma: float) -> np.ndarray:
    """(3, N, D) biLM layers -> (N, D) through minielmo.ScalarMix with the given s and gamma."""
    import minielmo

    mix = minielmo.ScalarMix(layers.shape[0])
    mix.weights.copy_(torch.tensor(weights))
    mix.gamma.copy_(torch.tensor([gamma]))
    return mix([torch.from_numpy(layer) for layer in layers]).numpy()


def lesson(out: Path, word: str | None = None) -> dict:
    import minielmo

    word = word or "bank"
    if word not in data.POLYSEMY:
        raise LessonError(f"no prepared sentences for {word!r}; choose one of {list(data.POLYSEMY)}")

    # %% 1. Load the biLM and trace one sentence through it
    bilm = load_elmo_bilm()
    print(f"{elmo_label()}, minielmo.DEFAULT_MODEL = {minielmo.DEFAULT_MODEL!r}")
    if elmo_is_fixture():
        print(FIXTURE_NOTE)
    words = simple_words(SENTENCE)
    print(f"\n== Shapes through the biLM for one sentence of {len(words)} tokens: {words}")
    print(f"   B = 1 sentence, T+2 = {len(words) + 2} positions with <S> and </S>, 50 characters per token;")
    print(f"   the char-CNN sees every position as its own row: B*(T+2) = {len(words) + 2} rows")
    shapes = trace_shapes(bilm, words)
    print(format_table(["module", "class", "input", "output", "what it does"], shapes))
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    parts = [["char-CNN + highway + projection", count(bilm.char_cnn)],
             ["forward LSTM layers", count(bilm.forward_layers)],
             ["backward LSTM layers", count(bilm.backward_layers)], ["total", count(bilm)]]
    print("\n" + format_table(["part", "parameters"], [[p, f"{n:,}"] for p, n in parts]))

    # %% 2. One word in six sentences: what each layer does with the sentence
    sentences, labels = data.sentences_and_senses(word)
    layers = elmo_word_vectors(bilm, sentences, word)  # (3, N, 2P)
    spelled = [simple_words(s)[word_index(simple_words(s), word, s)] for s in sentences]
    separation = [sense_separation(v, labels) for v in layers]
    print(f"\n== {word!r} per ELMo layer (spelled {', '.join(repr(s) for s in dict.fromkeys(spelled))})")
    rows = []
    for j, (same, diff, gap) in enumerate(separation):
        pairs = [(i, k) for i in range(len(spelled)) for k in range(i + 1, len(spelled))]
        alike = max(float(np.abs(layers[j][i] - layers[j][k]).max()) for i, k in pairs if spelled[i] == spelled[k])
        any_two = max(float(np.abs(layers[j][i] - layers[j][k]).max()) for i, k in pairs)
        rows.append([f"{j} ({'char-CNN' if j == 0 else f'biLSTM {j}'})", same, diff, gap, f"{alike:.2e}", f"{any_two:.2e}"])
    print(format_table(["layer", "same sense", "different sense", "gap", "max diff, same spelling",
                        "max diff, any two"], rows))
    print("  Layer 0 sees only the word's characters: the same spelling gives the same vector (0 above).")
    if len(set(spelled)) > 1:
        print("  A capital letter is another character, so the capitalised word at the start of a sentence")
        print("  gets its own layer-0 vector: the only way a sentence reaches layer 0.")
    else:
        print("  (With --word spring, 'Spring brings ...' shows what a capital letter does to layer 0.)")
    print("  The biLSTM layers read the whole sentence and change everywhere.")

    # %% 3. The scalar mix: Elmo's output is ScalarMix over the biLM layers
    elmo = minielmo.Elmo.from_pretrained()
    mix = elmo.scalar_mixes[0]
    with torch.no_grad():
        elmo_out = elmo(minielmo.batch_to_ids([simple_words(s) for s in sentences]))["elmo_representations"][0]
    index = torch.tensor([word_index(simple_words(s), word, s) for s in sentences])
    elmo_word = elmo_out[torch.arange(len(sentences)), index].numpy()
    mix_check = float(np.abs(elmo_word - mix_word_vectors(layers, [0.0, 0.0, 0.0], 1.0)).max())
    print("\n== Scalar mix: ELMo = gamma * sum_j softmax(s)_j * layer_j")
    print(f"  minielmo.Elmo's mix as loaded: s = {mix.weights.tolist()}, gamma = {mix.gamma.item():.1f}"
          f" -> softmax(s) = {np.round(torch.softmax(mix.weights, 0).tolist(), 3).tolist()}")
    print("  (s and gamma are trained with the downstream task; the file holds only the biLM)")
    print(f"  Elmo output vs ScalarMix applied to the biLM layers by hand: max |diff| = {mix_check:.1e}")
    mix_rows, mixes = [], {}
    for name, (weights, gamma) in MIX_SETTINGS.items():
        vectors = mixes[name] = mix_word_vectors(layers, weights, gamma)
        soft = torch.softmax(torch.tensor(weights), 0).numpy()
        mix_rows.append([name, " ".join(f"{w:.2f}" for w in soft), gamma, float(np.linalg.norm(vectors, axis=-1).mean()),
                         float(cosine_matrix(vectors).min()), sense_separation(vectors, labels)[2]])
    print(format_table(["setting", "softmax(s)", "gamma", "mean |vector|", "min cosine", "sense gap"], mix_rows))
    print("  s picks the layers: all weight on layer 0 gives the context-free vector (min cosine 1.0")
    print("  when every occurrence is spelled the same); weight on the biLSTM layers brings the")
    print("  sentence in. gamma only scales the vector: cosines do not change, the size does.")

    gaps = {}
    for w in data.POLYSEMY:
        sentences_w, labels_w = data.sentences_and_senses(w)
        gaps[w] = [sense_separation(v, labels_w)[2] for v in elmo_word_vectors(bilm, sentences_w, w)]
    written = _plot_elmo(gaps, mix_rows, word, len(sentences), out)
    return {"shapes": shapes, "layers": layers, "separation": separation, "mix_rows": mix_rows,
            "mixes": mixes, "mix_check": mix_check, "senses": labels, "spelled": spelled,
            "written": written, "config": bilm.config}


def _plot_elmo(gaps: dict, mix_rows: list, word: str, n: int, out: Path) -> list[Path]:
    path = out / "elmo_layers.png"
    with plots.figure(path, 1, 2, figsize=(11, 4.2)) as (fig, axes):
        if fig is None:
            return []
        for w, values in gaps.items():
            axes[0].plot([f"{j} {'char-CNN' if j == 0 else 'biLSTM'}" for j in range(len(values))], values,
                         marker="o", label=w)
        axes[0].axhline(0.0, color="grey", linewidth=0.8)
        axes[0].set_title(f"Sense separation per layer, {elmo_label()}", fontsize=9)
        axes[0].set_xlabel("biLM layer")
        axes[0].set_ylabel("same-sense minus different-sense cosine")
        axes[0].legend(title="word", fontsize=8)
        names = [row[0] for row in mix_rows]
        x = np.arange(len(names))
        axes[1].bar(x - 0.2, [row[4] for row in mix_rows], width=0.4, label="min cosine between sentences")
        twin = axes[1].twinx()
        norms = [row[3] for row in mix_rows]
        twin.bar(x + 0.2, norms, width=0.4, color="tab:orange", label="mean vector length")
        axes[1].set_xticks(x)
        axes[1].set_xticklabels([n.replace(" (", "\n(").replace(", ", ",\n") for n in names], fontsize=8)
        axes[1].set_title(f"Scalar mix settings: {word!r} across {n} sentences", fontsize=9)
        axes[1].set_xlabel("scalar-mix setting")
        axes[1].set_ylabel("min cosine between sentences")
        twin.set_ylabel("mean vector length")
        axes[1].set_ylim(0, 1.3)
        twin.set_ylim(0, max(norms) * 1.3)
        axes[1].legend(loc="upper left", fontsize=8)
        twin.legend(loc="upper right", fontsize=8)
    return [path]
