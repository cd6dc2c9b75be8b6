"""Lesson: how ELMo builds a word vector (Peters et al. 2018).

characters -> char-CNN (max-pooled filters) -> highway -> projection = layer 0, context-free;
then the biLSTM layers, forward and backward; then the scalar mix
ELMo = gamma * sum_j softmax(s)_j * h_j (Eq. 1), whose weights s and gamma a downstream task learns.

What the learner sees, on minielmo's default model (minielmo.DEFAULT_MODEL; the tables name it):
1. the shape of one sentence at every stage, traced with forward hooks, and the parameters;
2. a polysemous word in six sentences: layer 0 is the same wherever the word is spelled the same
   (a capital letter is a different character), the biLSTM layers change with the sentence;
3. the scalar mix: minielmo.Elmo equals ScalarMix applied by hand, and what s and gamma do;
4. elmo_layers.png. How much each layer knows about senses and parts of speech, measured on
   WordNet against random weights, is `python -m lessons layers`.

`--word W --sentence ... --sentence ...` (and one `--sense` per sentence) runs step 2 and the
mix on the learner's own sentences. This file is also a notebook (jupytext): run the cells top
to bottom.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lessons import data, plots
from lessons.common import (
    cosine_matrix, elmo_label, elmo_word_vectors, format_table, load_elmo_bilm, parameters,
    run_notebook, sense_separation, simple_words, word_index,
)
from lessons.static_vs_contextual import chosen_words, separable

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
ONE_LAYER_WEIGHT = 8.0  # pre-softmax s of the chosen layer: softmax puts 0.9993 of the weight there


def mix_settings(n_layers: int) -> dict[str, tuple[list[float], float]]:
    """name -> (pre-softmax weights s, one per layer of the biLM's n_layers + 1, gamma)."""
    settings = {"default (s = 0, gamma = 1)": ([0.0] * n_layers, 1.0)}
    for j in range(n_layers):
        settings[f"layer {j} only"] = ([ONE_LAYER_WEIGHT if k == j else 0.0 for k in range(n_layers)], 1.0)
    settings["default, gamma = 2"] = ([0.0] * n_layers, 2.0)
    return settings


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
    """(layers, N, D) biLM layers -> (N, D) through minielmo.ScalarMix with the given s and gamma."""
    import minielmo

    mix = minielmo.ScalarMix(layers.shape[0])
    mix.weights.copy_(torch.tensor(weights))
    mix.gamma.copy_(torch.tensor([gamma]))
    return mix([torch.from_numpy(layer) for layer in layers]).numpy()


def plot_elmo(gaps: dict, mix_rows: list, word: str, n: int, out: Path) -> list[Path]:
    """Sense gap per layer; then the mix settings' min cosine and mean length on their own axes."""
    path = out / "elmo_layers.png"
    with plots.figure(path, 1, 3, figsize=(15, 4.4), gridspec_kw={"width_ratios": [1.1, 1, 1]}) as (fig, axes):
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
        names = [row["setting"] for row in mix_rows]
        ticks = [name.replace(" (", "\n(").replace(", ", ",\n") for name in names]
        for ax, key, colour, ylabel in [(axes[1], "min cosine", "tab:blue", "min cosine between sentences"),
                                        (axes[2], "mean |vector|", "tab:orange", "mean vector length")]:
            ax.bar(np.arange(len(names)), [row[key] for row in mix_rows], color=colour)
            ax.set_xticks(np.arange(len(names)))
            ax.set_xticklabels(ticks, fontsize=7)
            ax.set_xlabel("scalar-mix setting")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{ylabel}: {word!r} across {n} sentences\n(one value per setting, no sampling)", fontsize=9)
        axes[1].set_ylim(0, 1.05)
        axes[2].set_ylim(0, None)
    return [path]


def lesson(out: Path, word: str | None = None, sentences: list[str] | None = None,
           senses: list[str] | None = None) -> dict:
    """Run this file's cells (python -m lessons elmo-layers)."""
    return run_notebook(__name__, out=out, word=word, sentences=sentences, senses=senses)


# %% [markdown]
# ## The lesson

# %% Parameters (python -m lessons elmo-layers sets them; edit them here in a notebook)
if __name__ == "__main__":
    import minielmo

    P, out = parameters(globals(), out="lesson_output", word=None, sentences=None, senses=None)
    word, sentences, labels = chosen_words(P["word"] or (None if P["sentences"] else "bank"), P["sentences"],
                                           P["senses"])[0]

# %% 1. Load the biLM and trace one sentence through it
if __name__ == "__main__":
    bilm = load_elmo_bilm()
    print(f"{elmo_label()}, minielmo.DEFAULT_MODEL = {minielmo.DEFAULT_MODEL!r}")
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

# %% 2. One word in several sentences: what each layer does with the sentence
if __name__ == "__main__":
    layers = elmo_word_vectors(bilm, sentences, word)  # (n_layers + 1, N, 2P)
    spelled = [simple_words(s)[word_index(simple_words(s), word, s)] for s in sentences]
    separation = [sense_separation(v, labels) for v in layers] if separable(labels) else None
    print(f"\n== {word!r} per ELMo layer (spelled {', '.join(repr(s) for s in dict.fromkeys(spelled))})")
    rows = []
    pairs = [(i, k) for i in range(len(spelled)) for k in range(i + 1, len(spelled))]
    for j in range(len(layers)):
        alike = [float(np.abs(layers[j][i] - layers[j][k]).max()) for i, k in pairs if spelled[i] == spelled[k]]
        any_two = max(float(np.abs(layers[j][i] - layers[j][k]).max()) for i, k in pairs)
        gaps_j = list(separation[j]) if separation else []
        rows.append([f"{j} ({'char-CNN' if j == 0 else f'biLSTM {j}'})", *gaps_j,
                     f"{max(alike):.2e}" if alike else "-", f"{any_two:.2e}"])
    print(format_table(["layer"] + (["same sense", "different sense", "gap"] if separation else [])
                       + ["max diff, same spelling", "max diff, any two"], rows))
    print("  Layer 0 sees only the word's characters: the same spelling gives the same vector (0 above).")
    if len(set(spelled)) > 1:
        print("  A capital letter is another character, so the capitalised word at the start of a sentence")
        print("  gets its own layer-0 vector: the only way a sentence reaches layer 0.")
    else:
        print("  (With --word spring, 'Spring brings ...' shows what a capital letter does to layer 0.)")
    print("  The biLSTM layers read the whole sentence and change everywhere.")

# %% 3. The scalar mix: Elmo's output is ScalarMix over the biLM layers
if __name__ == "__main__":
    elmo = minielmo.Elmo.from_pretrained()
    mix = elmo.scalar_mixes[0]
    with torch.no_grad():
        elmo_out = elmo(minielmo.batch_to_ids([simple_words(s) for s in sentences]))["elmo_representations"][0]
    index = torch.tensor([word_index(simple_words(s), word, s) for s in sentences])
    elmo_word = elmo_out[torch.arange(len(sentences)), index].numpy()
    settings = mix_settings(len(layers))
    mix_check = float(np.abs(elmo_word - mix_word_vectors(layers, *next(iter(settings.values())))).max())
    print("\n== Scalar mix: ELMo = gamma * sum_j softmax(s)_j * layer_j")
    print(f"  minielmo.Elmo's mix as loaded: s = {mix.weights.tolist()}, gamma = {mix.gamma.item():.1f}"
          f" -> softmax(s) = {np.round(torch.softmax(mix.weights, 0).tolist(), 3).tolist()}")
    print("  (s and gamma are trained with the downstream task; the file holds only the biLM)")
    print(f"  Elmo output vs ScalarMix applied to the biLM layers by hand: max |diff| = {mix_check:.1e}")
    mix_rows, mixes = [], {}
    for name, (weights, gamma) in settings.items():
        vectors = mixes[name] = mix_word_vectors(layers, weights, gamma)
        mix_rows.append({"setting": name,
                         "softmax(s)": " ".join(f"{w:.2f}" for w in torch.softmax(torch.tensor(weights), 0).numpy()),
                         "gamma": gamma, "mean |vector|": float(np.linalg.norm(vectors, axis=-1).mean()),
                         "min cosine": float(cosine_matrix(vectors).min()),
                         "sense gap": sense_separation(vectors, labels)[2] if separable(labels) else float("nan")})
    print(format_table(list(mix_rows[0]), [list(row.values()) for row in mix_rows]))
    print("  s picks the layers: all weight on layer 0 gives the context-free vector (min cosine 1.0")
    print("  when every occurrence is spelled the same); weight on the biLSTM layers brings the")
    print("  sentence in. gamma only scales the vector: cosines do not change, the size does.")

# %% 4. The picture: every prepared word's sense gap per layer, and the mix settings
if __name__ == "__main__":
    gaps = {}
    for w, s_w, labels_w in ([(word, sentences, labels)] if P["sentences"] else chosen_words(None, None, None)):
        if separable(labels_w):
            gaps[w] = [sense_separation(v, labels_w)[2] for v in elmo_word_vectors(bilm, s_w, w)]
    written = plot_elmo(gaps, mix_rows, word, len(sentences), out)
    RESULT = {"shapes": shapes, "layers": layers, "separation": separation, "mix_rows": mix_rows,
              "mixes": mixes, "mix_check": mix_check, "senses": labels, "spelled": spelled,
              "written": written, "config": bilm.config}
