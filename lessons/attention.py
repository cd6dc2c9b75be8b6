"""Lesson 3: what BERT's attention heads do on one sentence.

The probabilities come from the model itself (`output_attentions=True`). The pre-softmax Q·K
scores are recomputed for one head with that layer's own `query` and `key` projections, so the
lesson can show softmax(scores) landing on the model's probabilities (Vaswani et al. 2017, Eq. 1:
softmax(Q K^T / sqrt(d_k)) V).

Shapes: L layers · H heads · T word pieces · D hidden · Dh head dim.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from . import data, plots
from .common import DEFAULT_MODEL, LessonError, format_table, load_bert
from .explorer import write_explorer

DEFAULT_SENTENCE = data.ZERO_SHOT_TEXT
ROLES = ("[CLS]", "[SEP]", "previous", "next", "self")
# a head "mostly" attends somewhere when more than half of its attention, averaged over the
# query tokens, goes there; otherwise it is "mixed"
MOSTLY = 0.5


def head_entropy(probs: np.ndarray) -> np.ndarray:
    """(L, H, T, T) -> (L, H): mean over query tokens of -Σ p log p, in nats.
    0 = every query looks at one token; log T = uniform attention."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(probs * np.log(p)).sum(-1).mean(-1)


def role_mass(probs: np.ndarray) -> np.ndarray:
    """(L, H, T, T) -> (L, H, 5): average attention mass on [CLS], [SEP], the previous token,
    the next token and the token itself (ROLES order). Assumes one unpadded sentence:
    position 0 is [CLS], position T-1 is [SEP]. The roles overlap at the edges (the previous
    token of the first word is [CLS]); each is measured on its own, none is subtracted."""
    T = probs.shape[-1]
    idx = np.arange(T)
    cls = probs[..., :, 0].mean(-1)
    sep = probs[..., :, T - 1].mean(-1)
    previous = probs[..., idx[1:], idx[1:] - 1].mean(-1)  # queries 1..T-1
    following = probs[..., idx[:-1], idx[:-1] + 1].mean(-1)  # queries 0..T-2
    self_ = probs[..., idx, idx].mean(-1)
    return np.stack([cls, sep, previous, following, self_], -1)


def head_roles(mass: np.ndarray) -> list[list[str]]:
    """Label each head with the role holding most of its attention, or 'mixed'."""
    best = mass.argmax(-1)
    return [[ROLES[b] if m[b] > MOSTLY else "mixed" for b, m in zip(best_l, mass_l)]
            for best_l, mass_l in zip(best, mass)]


@torch.no_grad()
def qk_scores(model, hidden_in: torch.Tensor, layer: int, head: int) -> torch.Tensor:
    """Pre-softmax scores q·k / sqrt(Dh) of one head, from the layer's own `query`/`key`
    projections and its own head split (minibert.model.MultiHeadSelfAttention).

    hidden_in (1, T, D) is the input of `layer` (0-based), i.e. hidden_states[layer]."""
    attn = model.encoder.layers[layer].attn
    q = attn.split_heads(attn.query(hidden_in))[0, head]  # (1, T, D) -> (1, H, T, Dh) -> (T, Dh)
    k = attn.split_heads(attn.key(hidden_in))[0, head]  # (1, T, D) -> (1, H, T, Dh) -> (T, Dh)
    return q @ k.T / math.sqrt(attn.head_dim)  # (T, Dh) @ (Dh, T) -> (T, T); one sentence, no padding mask


def _plot_layers(plt, probs, tokens, entropy, out: Path, written: list[Path]) -> None:
    L, H, T, _ = probs.shape
    cols = 4 if H % 4 == 0 else min(H, 6)
    rows = math.ceil(H / cols)
    for layer in range(L):
        # token labels only on the outer axes: the grid is read as one picture, and drawing
        # 12 x 2 x T labels is most of matplotlib's time here
        fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 1, 2.6 * rows + 0.6),
                                 squeeze=False, sharex=True, sharey=True)
        for h, ax in enumerate(axes.flat):
            if h >= H:
                ax.axis("off")
                continue
            image = ax.imshow(probs[layer, h], cmap="Blues", vmin=0.0, vmax=1.0)
            ax.set_title(f"head {h + 1} (entropy {entropy[layer, h]:.2f})", fontsize=8)
        for ax in axes[-1]:
            ax.set_xticks(range(T))
            ax.set_xticklabels(tokens, rotation=90, fontsize=6)
            ax.set_xlabel("key (attended to)", fontsize=7)
        for ax in axes[:, 0]:
            ax.set_yticks(range(T))
            ax.set_yticklabels(tokens, fontsize=6)
            ax.set_ylabel("query", fontsize=7)
        fig.subplots_adjust(left=0.1, right=0.88, bottom=0.14, top=0.9, wspace=0.08, hspace=0.25)
        fig.colorbar(image, cax=fig.add_axes([0.9, 0.2, 0.015, 0.6]), label="attention probability")
        fig.suptitle(f"Layer {layer + 1}: attention probabilities of each head ({DEFAULT_MODEL})")
        fig.savefig(out / f"attention_layer{layer + 1}.png", dpi=90)
        plt.close(fig)
        written.append(out / f"attention_layer{layer + 1}.png")


def _plot_entropy(plt, entropy, T, out, written):
    L, H = entropy.shape
    fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
    image = plots.heatmap(ax, entropy, [str(i + 1) for i in range(L)], [str(h + 1) for h in range(H)],
                          f"Attention entropy per head (uniform = log {T} = {math.log(T):.2f} nats)",
                          "head", "layer", cmap="magma", vmin=0.0, vmax=math.log(T), annotate=True,
                          fontsize=8)
    fig.colorbar(image, ax=ax, label="mean entropy over queries (nats)")
    plots.save(fig, out / "attention_entropy.png", written)


def _plot_qk(plt, scores, probs_head, tokens, layer, head, out, written):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    image = plots.heatmap(axes[0], scores, tokens, tokens, f"layer {layer + 1} head {head + 1}: "
                          "q·k / sqrt(d_head), before softmax", "key", "query", cmap="coolwarm",
                          vmin=-np.abs(scores).max(), vmax=np.abs(scores).max(), fontsize=7)
    fig.colorbar(image, ax=axes[0], label="score")
    image = plots.heatmap(axes[1], probs_head, tokens, tokens, "softmax of each row = attention",
                          "key", "query", cmap="Blues", vmin=0.0, vmax=1.0, fontsize=7)
    fig.colorbar(image, ax=axes[1], label="probability")
    plots.save(fig, out / "attention_qk.png", written)


@torch.no_grad()
def measure(sentence: str) -> dict:
    """Tokens, attention probabilities (L, H, T, T), entropy, role masses and roles of one sentence."""
    model, tokenizer = load_bert()
    enc = tokenizer([sentence], return_offsets=True)
    out = model(enc["input_ids"], attention_mask=enc["attention_mask"],
                token_type_ids=enc["token_type_ids"], output_attentions=True, output_hidden_states=True)
    probs = torch.stack(out.attentions)[:, 0].numpy()  # L x (1, H, T, T) -> (L, H, T, T)
    mass = role_mass(probs)
    return {"tokens": enc["tokens"][0], "probs": probs, "entropy": head_entropy(probs), "mass": mass,
            "roles": head_roles(mass), "hidden_states": out.hidden_states}


def write_explorer_for(sentence: str, path: Path) -> Path:
    """Only the HTML explorer, for one sentence (the browser test uses this)."""
    found = measure(sentence)
    return write_explorer(path, tokens=found["tokens"], attentions=found["probs"], sentence=sentence,
                          model_name=DEFAULT_MODEL, entropy=found["entropy"], roles=found["roles"])


def run(out: Path, sentence: str | None = None, layer: int | None = None,
        head: int | None = None) -> dict:
    """Attention of every head on `sentence`; `layer`/`head` (1-based) pick the Q·K head,
    else the most focused head (lowest entropy) is shown."""
    sentence = DEFAULT_SENTENCE if sentence is None else sentence
    if not sentence.strip():
        raise LessonError("the sentence is empty")
    model, tokenizer = load_bert()
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    for name, value, limit in [("--layer", layer, L), ("--head", head, H)]:
        if value is not None and not 1 <= value <= limit:
            raise LessonError(f"{name} {value} is out of range: this model has {limit} (counted from 1)")

    found = measure(sentence)
    tokens, probs, entropy, mass, roles = (found[k] for k in ("tokens", "probs", "entropy", "mass", "roles"))
    T = probs.shape[-1]

    print(f"Attention in {DEFAULT_MODEL} ({L} layers x {H} heads) on:\n  {sentence!r}")
    print(f"  word pieces ({T}): {' '.join(tokens)}\n")

    print(f"== Entropy of each head, nats (0 = one token only, uniform = log {T} = {math.log(T):.2f})")
    print(format_table(["layer"] + [f"h{h + 1}" for h in range(H)],
                       [[str(l + 1)] + [float(e) for e in entropy[l]] for l in range(L)], "{:.2f}"))

    print(f"\n== Where each head looks, from its probabilities: the role with the largest mean")
    print(f"   attention mass, if above {MOSTLY}, else 'mixed'")
    short_role = {"[CLS]": "CLS", "[SEP]": "SEP", "previous": "prev", "next": "next", "self": "self",
                  "mixed": "."}
    print(format_table(["layer"] + [f"h{h + 1}" for h in range(H)],
                       [[str(l + 1)] + [short_role[r] for r in roles[l]] for l in range(L)]))
    print("\n  heads per role (mean mass on that role):")
    for k, role in enumerate(ROLES):
        heads = [f"L{l + 1}.h{h + 1} {mass[l, h, k]:.2f}" for l in range(L) for h in range(H)
                 if roles[l][h] == role]
        print(f"    {role:>9}: {len(heads):2d}  {', '.join(heads)}")
    mixed = sum(r == "mixed" for row in roles for r in row)
    print(f"    {'mixed':>9}: {mixed:2d}")

    # The Q·K head: the learner's choice, else the most focused head (lowest entropy).
    if layer is None or head is None:
        lo_layer, lo_head = np.unravel_index(entropy.argmin(), entropy.shape)
        layer = int(lo_layer) + 1 if layer is None else layer
        head = int(entropy[layer - 1].argmin()) + 1 if head is None else head
    scores = qk_scores(model, found["hidden_states"][layer - 1], layer - 1, head - 1).numpy()
    recomputed = torch.softmax(torch.from_numpy(scores), -1).numpy()
    diff = float(np.abs(recomputed - probs[layer - 1, head - 1]).max())
    print(f"\n== Layer {layer} head {head}: scores q·k / sqrt(d_head) before softmax "
          f"(from the layer's own query/key projections)")
    print(format_table(["query \\ key"] + tokens,
                       [[tokens[i]] + [float(s) for s in scores[i]] for i in range(T)], "{:.1f}"))
    print(f"  softmax of each row vs the model's attention probabilities: max |diff| = {diff:.1e}")

    written: list[Path] = []
    plt = plots.pyplot()
    if plt is None:
        print("\n" + plots.VIZ_HINT)
    else:
        _plot_layers(plt, probs, tokens, entropy, out, written)
        _plot_entropy(plt, entropy, T, out, written)
        _plot_qk(plt, scores, probs[layer - 1, head - 1], tokens, layer - 1, head - 1, out, written)
    html = write_explorer(out / "attention_explorer.html", tokens=tokens, attentions=probs,
                          sentence=sentence, model_name=DEFAULT_MODEL, entropy=entropy, roles=roles)
    written.append(html)
    for path in written:
        print(f"wrote {path}")
    print(f"\nOpen {html} in a browser: pick a layer and head, hover a token to see where it attends.")
    return {"tokens": tokens, "probs": probs, "entropy": entropy, "mass": mass, "roles": roles,
            "qk_layer": layer, "qk_head": head, "scores": scores, "softmax_max_abs_diff": diff,
            "explorer": html, "written": written}
