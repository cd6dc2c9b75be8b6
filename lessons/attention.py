"""Lesson: what BERT's attention heads do.

The probabilities come from the model itself (`output_attentions=True`). The pre-softmax Q·K
scores are recomputed for one head with that layer's own `query` and `key` projections, so the
lesson can show softmax(scores) landing on the model's probabilities (Vaswani et al. 2017, Eq. 1:
softmax(Q K^T / sqrt(d_k)) V).

What the learner sees:
1. one sentence (the seed's, or `--sentence`): its word pieces and every head's entropy;
2. where each head looks, measured over 200 WordNet example sentences rather than one: the mean
   attention mass on [CLS], [SEP], the previous, the next and the same token, with 95% intervals
   over sentences, and a role per head (or "mixed" when no place takes most of its attention);
3. the Q·K scores of one head and their softmax, equal to the model's probabilities;
4. attention_layer*.png, attention_entropy.png, attention_roles.png, attention_qk.png and
   attention_explorer.html, an offline page to hover tokens and switch heads.

Shapes: L layers · H heads · T word pieces · D hidden · Dh head dim.

This file is also a notebook (jupytext): run the cells top to bottom.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from minibert.attention import explore

from lessons import data, plots, stats, wordnet
from lessons.common import (
    DEFAULT_MODEL, LessonError, format_table, load_bert, parameters, progress, run_notebook,
    sample_size,
)

DEFAULT_SENTENCE = data.ZERO_SHOT_TEXT
ROLES = ("[CLS]", "[SEP]", "previous", "next", "self")
SHORT = {"[CLS]": "CLS", "[SEP]": "SEP", "previous": "prev", "next": "next", "self": "self", "mixed": "mixed"}
# a head "mostly" attends somewhere when more than half of its attention, averaged over the
# query tokens and the sentences, goes there; otherwise it is "mixed"
MOSTLY = 0.5
ROLE_SENTENCES = sample_size(200, 20)
SHOW_HEADS = 4  # heads listed per role; the count and the picture give the rest
SEED = 0


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


@torch.no_grad()
def corpus_role_mass(sentences: list[str], batch: int = 32) -> np.ndarray:
    """(N, L, H, 5): role_mass of every sentence, each cut to its own tokens (padding keys get
    probability 0 from the mask, so the cut rows are the unpadded sentence's rows)."""
    model, tokenizer = load_bert()
    found = []
    for start in progress(range(0, len(sentences), batch), "attention over WordNet sentences (batches)"):
        enc = tokenizer(sentences[start:start + batch])
        probs = torch.stack(model(enc["input_ids"], attention_mask=enc["attention_mask"],
                                  token_type_ids=enc["token_type_ids"], output_attentions=True).attentions, 1)
        for n, length in enumerate(enc["attention_mask"].sum(1).tolist()):  # probs (B, L, H, T, T)
            found.append(role_mass(probs[n, :, :, :length, :length].numpy()))
    return np.stack(found)


def write_explorer_page(texts: list, roles: list[list[str]], path: Path) -> Path:
    """The offline explorer (minibert.attention.explore) for every text: a sentence, or a
    (first, second) pair drawn with segment colours. Each head is labelled with its role over the
    WordNet sentences."""
    model, tokenizer = load_bert()
    page = explore(model, tokenizer, texts, model_name=DEFAULT_MODEL, head_labels=[roles] * len(texts))
    return Path(page.save(path))


def _plot_layers(probs, tokens, entropy, out: Path) -> list[Path]:
    L, H, T, _ = probs.shape
    cols = 4 if H % 4 == 0 else min(H, 6)
    rows = math.ceil(H / cols)
    written = []
    for layer in range(L):
        path = out / f"attention_layer{layer + 1}.png"
        # token labels only on the outer axes: the grid is read as one picture
        with plots.figure(path, rows, cols, dpi=90, tight=False, figsize=(2.6 * cols + 1, 2.6 * rows + 0.6),
                          squeeze=False, sharex=True, sharey=True) as (fig, axes):
            if fig is None:
                return []
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
        written.append(path)
    return written


def _plot_entropy(entropy, T, out: Path) -> list[Path]:
    path = out / "attention_entropy.png"
    L, H = entropy.shape
    with plots.figure(path, figsize=(7, 3.8), layout="constrained") as (fig, ax):
        if fig is None:
            return []
        image = plots.heatmap(ax, entropy, [str(i + 1) for i in range(L)], [str(h + 1) for h in range(H)],
                              f"Attention entropy per head (uniform = log {T} = {math.log(T):.2f} nats)",
                              "head", "layer", cmap="magma", vmin=0.0, vmax=math.log(T), annotate=True, fontsize=8)
        fig.colorbar(image, ax=ax, label="mean entropy over queries (nats)")
    return [path]


def _plot_roles(mass, roles, n, out: Path) -> list[Path]:
    path = out / "attention_roles.png"
    L, H, _ = mass.shape
    with plots.figure(path, 1, len(ROLES), figsize=(3.2 * len(ROLES), 3.4), layout="constrained") as (fig, axes):
        if fig is None:
            return []
        for k, (ax, role) in enumerate(zip(axes, ROLES)):
            image = plots.heatmap(ax, mass[..., k], [str(i + 1) for i in range(L)], [str(h + 1) for h in range(H)],
                                  f"mass on {role}", "head", "layer", cmap="Blues", vmin=0.0, vmax=1.0, fontsize=7)
        fig.colorbar(image, ax=axes, shrink=0.8, label="mean attention mass")
        fig.suptitle(f"Where each head looks, mean over {n} WordNet example sentences")
    return [path]


def _plot_qk(scores, probs_head, tokens, layer, head, out: Path) -> list[Path]:
    path = out / "attention_qk.png"
    with plots.figure(path, 1, 2, figsize=(11, 4.8), layout="constrained") as (fig, axes):
        if fig is None:
            return []
        image = plots.heatmap(axes[0], scores, tokens, tokens, f"layer {layer + 1} head {head + 1}: "
                              "q·k / sqrt(d_head), before softmax", "key", "query", cmap="coolwarm",
                              vmin=-np.abs(scores).max(), vmax=np.abs(scores).max(), fontsize=7)
        fig.colorbar(image, ax=axes[0], label="score")
        image = plots.heatmap(axes[1], probs_head, tokens, tokens, "softmax of each row = attention",
                              "key", "query", cmap="Blues", vmin=0.0, vmax=1.0, fontsize=7)
        fig.colorbar(image, ax=axes[1], label="probability")
    return [path]


def lesson(out: Path, sentences: list[str] | None = None, layer: int | None = None,
           head: int | None = None, seed: int = SEED, pairs: list[tuple[str, str]] | None = None) -> dict:
    """Run this file's cells (python -m lessons attention)."""
    return run_notebook(__name__, out=out, sentences=sentences, layer=layer, head=head, seed=seed, pairs=pairs)


# %% [markdown]
# ## The lesson

# %% Parameters (python -m lessons attention sets them; edit them here in a notebook)
if __name__ == "__main__":
    P, out = parameters(globals(), out="lesson_output", sentences=None, layer=None, head=None, seed=SEED, pairs=None)
    sentences = P["sentences"]
    layer = P["layer"]
    head = P["head"]
    seed = P["seed"]
    pairs = P["pairs"]

# %% 1. One sentence through the model: word pieces, attention, entropy per head
if __name__ == "__main__":
    pairs = [tuple(pair) for pair in pairs or []]
    sentences = sentences or ([] if pairs else [DEFAULT_SENTENCE])
    if any(not s.strip() for s in sentences) or any(not s.strip() for pair in pairs for s in pair):
        raise LessonError("a --sentence or --pair text is empty")
    explorer_texts = list(sentences) + pairs
    sentences = sentences or [pairs[0][0]]  # the tables below follow one sentence
    model, tokenizer = load_bert()
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    for name, value, limit in [("--layer", layer, L), ("--head", head, H)]:
        if value is not None and not 1 <= value <= limit:
            raise LessonError(f"{name} {value} is out of range: this model has {limit} (counted from 1)")
    sentence = sentences[0]
    found = measure(sentence)
    tokens, probs, entropy = found["tokens"], found["probs"], found["entropy"]
    T = probs.shape[-1]
    print(f"Attention in {DEFAULT_MODEL} ({L} layers x {H} heads) on:\n  {sentence!r}")
    print(f"  word pieces ({T}): {' '.join(tokens)}\n")
    print(f"== Entropy of each head, nats (0 = one token only, uniform = log {T} = {math.log(T):.2f})")
    print(format_table(["layer"] + [f"h{h + 1}" for h in range(H)],
                       [[str(l + 1)] + [float(e) for e in entropy[l]] for l in range(L)], "{:.2f}"))

# %% 2. Where each head looks, over many sentences
if __name__ == "__main__":
    pool = wordnet.examples("n") + wordnet.examples("v")
    picked = np.random.default_rng(seed).choice(len(pool), ROLE_SENTENCES, replace=False)
    corpus = [pool[i].sentence for i in picked]
    per_sentence = corpus_role_mass(corpus)  # (N, L, H, 5)
    mass = per_sentence.mean(0)
    low, high = stats.bootstrap_mean_ci(per_sentence, seed)
    roles = head_roles(mass)
    print(f"\n== Where each head looks, over {len(corpus)} WordNet example sentences (seed {seed}):")
    print(f"   the place with the largest mean attention mass if above {MOSTLY}, else 'mixed'")
    print(format_table(["layer"] + [f"h{h + 1}" for h in range(H)],
                       [[str(l + 1)] + [SHORT[r] for r in roles[l]] for l in range(L)]))
    print("\n  heads per role, the most focused first (mean mass on that role [95% CI over sentences]):")
    for k, role in enumerate(ROLES):
        heads = sorted(((l, h) for l in range(L) for h in range(H) if roles[l][h] == role),
                       key=lambda lh: -mass[lh[0], lh[1], k])
        shown = [f"L{l + 1}.h{h + 1} {mass[l, h, k]:.2f} [{low[l, h, k]:.2f}, {high[l, h, k]:.2f}]"
                 for l, h in heads[:SHOW_HEADS]]
        more = f", and {len(heads) - SHOW_HEADS} more" if len(heads) > SHOW_HEADS else ""
        print(f"    {role:>9}: {len(heads):2d}  {', '.join(shown)}{more}")
    print(f"    {'mixed':>9}: {sum(r == 'mixed' for row in roles for r in row):2d}")
    single = head_roles(found["mass"])
    agree = sum(a == b for ra, rb in zip(roles, single) for a, b in zip(ra, rb))
    print(f"  The roles from the one sentence above agree with these on {agree} of {L * H} heads.")

# %% 3. One head's Q·K scores: the learner's choice, else the most focused head
if __name__ == "__main__":
    if layer is None or head is None:
        lo_layer, _ = np.unravel_index(entropy.argmin(), entropy.shape)
        layer = int(lo_layer) + 1 if layer is None else layer
        head = int(entropy[layer - 1].argmin()) + 1 if head is None else head
    scores = qk_scores(model, found["hidden_states"][layer - 1], layer - 1, head - 1).numpy()
    diff = float(np.abs(torch.softmax(torch.from_numpy(scores), -1).numpy() - probs[layer - 1, head - 1]).max())
    print(f"\n== Layer {layer} head {head}: scores q·k / sqrt(d_head) before softmax "
          f"(from the layer's own query/key projections)")
    print(format_table(["query \\ key"] + tokens,
                       [[tokens[i]] + [float(s) for s in scores[i]] for i in range(T)], "{:.1f}"))
    print(f"  softmax of each row vs the model's attention probabilities: max |diff| = {diff:.1e}")

# %% 4. Pictures and the explorer
if __name__ == "__main__":
    written = (_plot_layers(probs, tokens, entropy, out) + _plot_entropy(entropy, T, out)
               + _plot_roles(mass, roles, len(corpus), out)
               + _plot_qk(scores, probs[layer - 1, head - 1], tokens, layer - 1, head - 1, out))
    html = write_explorer_page(explorer_texts, roles, out / "attention_explorer.html")
    written.append(html)
    print(f"wrote {html}\nOpen it in a browser: pick a layer and head, hover a token to see where it attends.")
    RESULT = {"tokens": tokens, "probs": probs, "entropy": entropy, "mass": mass, "mass_ci": (low, high),
              "roles": roles, "sentence_roles": single, "corpus": corpus, "qk_layer": layer, "qk_head": head,
              "scores": scores, "softmax_max_abs_diff": diff, "explorer": html, "written": written}
