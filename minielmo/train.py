"""Train an ELMo biLM from scratch: the objective the released models were trained with.

    python -m minielmo.corpus --out corpus                       # the text (see corpus.py)
    python -m minielmo.train --corpus corpus --out run --size small --tokens 6000000 --seed 0
    python -m minielmo.train --corpus corpus --out run --resume  # continue after an interruption

Paper: Peters et al. 2018 §3.1, the biLM objective: jointly maximise the log likelihood of the
forward and the backward language model,

    sum_k [ log p(t_k | t_1..t_{k-1}; Θx, Θ→LSTM, Θs) + log p(t_k | t_{k+1}..t_N; Θx, Θ←LSTM, Θs) ]

with the token representation Θx (char CNN) and the softmax Θs shared by both directions. So the
forward top layer at position k predicts token k+1, the backward top layer at k predicts token
k-1, both through ONE softmax over the word vocabulary, and the loss is the mean of the two
directions' negative log-likelihoods. The model's own <S> and </S> (added by BiLM) are the first
and last targets: the forward LM ends by predicting </S>, the backward LM by predicting <S>.
Checked against: bilm-tf (allenai/bilm-tf, training.py: LanguageModel._build_loss, shared softmax
with `share_embedding_softmax=False`, dropout 0.1 on LSTM inputs and outputs).

NOTE (deviation): bilm-tf trains on fixed windows of 20 tokens cut from a token stream, carrying
the LSTM state from window to window; we train on whole sentences with a zero start state, which
is how the stateless BiLM is used at inference. bilm-tf uses a sampled softmax (8192 samples) and
Adagrad (lr 0.2); we use torch's AdaptiveLogSoftmaxWithLoss (exact, and faster than a full
softmax at our vocabulary size: see `python -m minielmo.cost`) and Adam.

The file reads top to bottom: sizes -> data -> batches -> loss -> step -> checkpoint -> export
(OUT/model/: options.json + weights.hdf5 as bilm-tf released, and model.safetensors).
Model files stay training-agnostic: this module only calls BiLM.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from .bilm import BiLM
from .characters import batch_to_ids
from .config import ElmoConfig

# ------------------------------------------------------------------------------------- sizes

# Every size trains the same modules as the released ELMo; only the numbers differ. "small" is the
# shipped model, chosen from measured training tokens/s on 2 CPU cores (docs/elmo_model_card.md).
SIZES = {
    "small": ElmoConfig(projection_dim=128, cell_size=512, n_layers=2, cell_clip=3.0, proj_clip=3.0,
                        use_skip_connections=True,
                        filters=((1, 32), (2, 32), (3, 64), (4, 64), (5, 64)),
                        n_highway=1, char_embedding_dim=16, n_characters=262,
                        max_characters_per_token=50, activation="relu"),
    # For tests and smoke runs: trains in seconds.
    "tiny": ElmoConfig(projection_dim=16, cell_size=32, n_layers=2, cell_clip=3.0, proj_clip=3.0,
                       use_skip_connections=True, filters=((1, 8), (2, 8), (3, 16)), n_highway=1,
                       char_embedding_dim=8, n_characters=262, max_characters_per_token=50,
                       activation="relu"),
}
DROPOUT = 0.1  # bilm-tf's keep_prob 0.9, on every LSTM input and on the softmax input
LEARNING_RATE = 2e-3
WARMUP_STEPS = 200
CLIP_NORM = 5.0
TOKENS_PER_BATCH = 3000  # target tokens per step; sentences of similar length share a batch

# -------------------------------------------------------------------------------------- data

BOS, EOS, UNK = "<S>", "</S>", "<UNK>"


class Vocabulary:
    """The output word vocabulary (vocab.txt: <S>, </S>, <UNK>, then words by frequency). Inputs
    never need it: the char CNN reads any word."""

    def __init__(self, words: list[str]):
        if words[:3] != [BOS, EOS, UNK]:
            raise ValueError(f"vocab.txt must start with {BOS}, {EOS}, {UNK}; got {words[:3]}")
        self.words = words
        self.index = {word: i for i, word in enumerate(words)}

    @classmethod
    def from_file(cls, path: Path) -> "Vocabulary":
        return cls(Path(path).read_text(encoding="utf-8").split("\n")[:-1])

    def __len__(self) -> int:
        return len(self.words)

    def ids(self, sentence: list[str]) -> list[int]:
        """<S> sentence </S> as word ids, unknown words as <UNK>."""
        unk = self.index[UNK]
        return [self.index[BOS]] + [self.index.get(w, unk) for w in sentence] + [self.index[EOS]]


def read_sentences(path: Path) -> list[list[str]]:
    return [line.split() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


# ----------------------------------------------------------------------------------- batches


def make_batches(sentences: list[list[str]], seed: int, epoch: int,
                 tokens_per_batch: int = TOKENS_PER_BATCH) -> list[list[int]]:
    """Indices of sentences, grouped so that a batch holds sentences of similar length (little
    padding), in an order fixed by (seed, epoch): a resumed run sees the same batches."""
    rng = random.Random(seed * 1000 + epoch)
    order = list(range(len(sentences)))
    rng.shuffle(order)
    batches = []
    # Sort within pools of shuffled sentences: similar lengths together, pools still random.
    pool = 100 * max(1, tokens_per_batch // 20)
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: len(sentences[i]))
        batch, longest = [], 0
        for i in chunk:
            longest = max(longest, len(sentences[i]) + 2)
            if batch and longest * (len(batch) + 1) > tokens_per_batch:
                batches.append(batch)
                batch, longest = [], len(sentences[i]) + 2
            batch.append(i)
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


def tensors_for(sentences: list[list[str]], vocab: Vocabulary) -> tuple[torch.Tensor, torch.Tensor]:
    """char ids (B, T, W) for the biLM and word ids (B, T+2) with <S> ... </S> for the softmax."""
    char_ids = batch_to_ids(sentences)  # (B, T, W)
    word_ids = torch.zeros(len(sentences), char_ids.shape[1] + 2, dtype=torch.long)  # (B, T+2)
    for row, sentence in enumerate(sentences):
        ids = vocab.ids(sentence)
        word_ids[row, :len(ids)] = torch.tensor(ids)
    return char_ids, word_ids


# -------------------------------------------------------------------------------------- loss


class SharedSoftmax(nn.Module):
    """One softmax over the vocabulary for both directions (Θs in the paper). Adaptive (Grave et
    al. 2017): frequent words in a full head, rarer ones in smaller clusters; exact, not sampled."""

    def __init__(self, projection_dim: int, vocab_size: int):
        super().__init__()
        # A full head of the 2,000 most frequent words (most of the running text), then two
        # clusters; a small vocabulary (tests) gets one cluster after its first quarter.
        cutoffs = [2000, 10000] if vocab_size > 12000 else [max(1, vocab_size // 4)]
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(projection_dim, vocab_size, cutoffs, div_value=4.0)

    def forward(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """hidden (N, P), targets (N,) -> summed negative log-likelihood (scalar)."""
        return self.softmax(hidden, targets).loss * hidden.shape[0]  # .loss is the mean


def bilm_nll(bilm: BiLM, softmax: SharedSoftmax, char_ids: torch.Tensor, word_ids: torch.Tensor,
             dropout: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Summed NLL of the forward and of the backward LM over a batch, and the number of targets
    per direction."""
    output = bilm(char_ids)
    top, mask = output["activations"][-1], output["mask"]  # (B, T+2, 2P), (B, T+2)
    P = bilm.config.projection_dim
    forward_top, backward_top = top[..., :P], top[..., P:]  # (B, T+2, 2P) -> 2 x (B, T+2, P)
    # Position k of the forward LM predicts k+1; position k of the backward LM predicts k-1. Both
    # have one target per real token plus one boundary: <S> x1 .. xn </S> gives n+1 each.
    has_target = mask[:, 1:]  # (B, T+1)
    forward_nll = softmax(dropout(forward_top[:, :-1][has_target]), word_ids[:, 1:][has_target])
    backward_nll = softmax(dropout(backward_top[:, 1:][has_target]), word_ids[:, :-1][has_target])
    return forward_nll, backward_nll, int(has_target.sum())


@torch.no_grad()
def perplexity(bilm: BiLM, softmax: SharedSoftmax, sentences: list[list[str]], vocab: Vocabulary,
               batch_tokens: int = 4000) -> dict:
    """Held-out perplexity of each direction (eval mode: no dropout, the fast inference path)."""
    was_training = bilm.training
    bilm.eval(), softmax.eval()
    totals, count = [0.0, 0.0], 0
    for batch in make_batches(sentences, seed=0, epoch=0, tokens_per_batch=batch_tokens):
        char_ids, word_ids = tensors_for([sentences[i] for i in batch], vocab)
        forward_nll, backward_nll, n = bilm_nll(bilm, softmax, char_ids, word_ids, nn.Identity())
        totals[0] += forward_nll.item()
        totals[1] += backward_nll.item()
        count += n
    bilm.train(was_training), softmax.train(was_training)
    return {"forward": math.exp(totals[0] / count), "backward": math.exp(totals[1] / count),
            "targets": count}


# -------------------------------------------------------------------------------------- step


def learning_rate(step: int) -> float:
    """Linear warm-up, then constant: short runs gain nothing from a decay they never reach."""
    return LEARNING_RATE * min(1.0, (step + 1) / WARMUP_STEPS)


class Progress:
    """One status line on stderr, rewritten in place: step, tokens/s, loss, ETA."""

    def __init__(self, total_tokens: int, done_tokens: int):
        self.total, self.start_tokens, self.start = total_tokens, done_tokens, time.time()

    def show(self, step: int, tokens: int, forward_loss: float, backward_loss: float) -> float:
        elapsed = time.time() - self.start
        rate = (tokens - self.start_tokens) / max(elapsed, 1e-9)
        eta = (self.total - tokens) / max(rate, 1e-9)
        bar = "#" * int(30 * tokens / self.total)
        print(f"\r[{bar:<30}] step {step} | {tokens:,}/{self.total:,} tokens | {rate:,.0f} tok/s | "
              f"loss fwd {forward_loss:.3f} bwd {backward_loss:.3f} | ETA {eta / 60:.1f} min ",
              end="", file=sys.stderr, flush=True)
        return rate


# -------------------------------------------------------------------------------- checkpoint


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: an interruption mid-write leaves the previous checkpoint intact."""
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def train(corpus: Path, out: Path, size: str, total_tokens: int, seed: int, resume: bool,
          checkpoint_every: int = 100, eval_sentences: int = 2000, threads: int | None = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    vocab = Vocabulary.from_file(corpus / "vocab.txt")
    sentences = read_sentences(corpus / "train.txt")
    heldout = [line[1:] for line in read_sentences(corpus / "heldout.txt")]  # drop the source tag
    checkpoint_path = out / "checkpoint.pt"

    torch.manual_seed(seed)
    config = SIZES[size]
    bilm = BiLM(config, dropout=DROPOUT)
    softmax = SharedSoftmax(config.projection_dim, len(vocab))
    dropout = nn.Dropout(DROPOUT)
    parameters = list(bilm.parameters()) + list(softmax.parameters())
    optimizer = torch.optim.Adam(parameters, lr=LEARNING_RATE)
    step, tokens, epoch, batch_in_epoch, elapsed_before = 0, 0, 0, 0, 0.0

    if resume and checkpoint_path.is_file():
        # weights_only: tensors, numbers, strings and containers only; a checkpoint is never
        # unpickled as arbitrary objects.
        state = torch.load(checkpoint_path, weights_only=True)
        if state["size"] != size or state["seed"] != seed:
            raise SystemExit(f"{checkpoint_path} was written with size {state['size']} seed "
                             f"{state['seed']}, not size {size} seed {seed}")
        bilm.load_state_dict(state["bilm"])
        softmax.load_state_dict(state["softmax"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        step, tokens, epoch, batch_in_epoch = state["step"], state["tokens"], state["epoch"], state["batch_in_epoch"]
        elapsed_before = state["elapsed"]
        print(f"resumed from {checkpoint_path}: step {step}, {tokens:,} tokens", file=sys.stderr)
    elif checkpoint_path.exists() and not resume:
        raise SystemExit(f"{checkpoint_path} exists: pass --resume to continue it, or another --out")

    log = open(out / "train_log.jsonl", "a", encoding="utf-8")
    progress = Progress(total_tokens, tokens)
    started = time.time()
    bilm.train(), softmax.train()

    def checkpoint():
        save_checkpoint(checkpoint_path, {
            "size": size, "seed": seed, "config": asdict(config), "bilm": bilm.state_dict(),
            "softmax": softmax.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(), "step": step, "tokens": tokens, "epoch": epoch,
            "batch_in_epoch": batch_in_epoch, "elapsed": elapsed_before + time.time() - started,
            "vocab_size": len(vocab)})

    while tokens < total_tokens:
        batches = make_batches(sentences, seed, epoch)
        while batch_in_epoch < len(batches) and tokens < total_tokens:
            char_ids, word_ids = tensors_for([sentences[i] for i in batches[batch_in_epoch]], vocab)
            forward_nll, backward_nll, n = bilm_nll(bilm, softmax, char_ids, word_ids, dropout)
            loss = (forward_nll + backward_nll) / (2 * n)  # mean of the two directions' NLL
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, CLIP_NORM)
            optimizer.step()
            step, tokens, batch_in_epoch = step + 1, tokens + n, batch_in_epoch + 1
            rate = progress.show(step, tokens, forward_nll.item() / n, backward_nll.item() / n)
            log.write(json.dumps({"step": step, "tokens": tokens, "epoch": epoch,
                                  "forward_loss": round(forward_nll.item() / n, 4),
                                  "backward_loss": round(backward_nll.item() / n, 4),
                                  "tokens_per_s": round(rate, 1), "lr": learning_rate(step - 1),
                                  "elapsed_s": round(elapsed_before + time.time() - started, 1)}) + "\n")
            if step % checkpoint_every == 0:
                log.flush()
                checkpoint()
        if batch_in_epoch >= len(batches):
            epoch, batch_in_epoch = epoch + 1, 0
    checkpoint()
    print(file=sys.stderr)
    sample = heldout[:eval_sentences]
    result = {"step": step, "tokens": tokens, "epochs": epoch + batch_in_epoch / max(1, len(batches)),
              "train_seconds": round(elapsed_before + time.time() - started, 1),
              "heldout_perplexity": perplexity(bilm, softmax, sample, vocab)}
    log.write(json.dumps({"final": result}) + "\n")
    log.close()
    export_model(bilm, out / "model")
    return result


def export_model(bilm: BiLM, folder: Path) -> dict:
    """The trained biLM in the released format (options.json + weights.hdf5) and as
    model.safetensors: what the package ships under minielmo/data/."""
    from weights.elmo_export import export  # the only file format code training needs

    return export(bilm.eval(), folder)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m minielmo.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="corpus", help="folder written by python -m minielmo.corpus")
    parser.add_argument("--out", default="elmo_run", help="checkpoint, log and exported model go here")
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--tokens", type=int, default=6_000_000, help="training targets per direction")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    corpus = Path(args.corpus)
    for name in ("train.txt", "heldout.txt", "vocab.txt"):
        if not (corpus / name).is_file():
            parser.error(f"{corpus / name} not found; build the corpus first: "
                         f"python -m minielmo.corpus --out {corpus}")
    result = train(corpus, Path(args.out), args.size, args.tokens, args.seed, args.resume,
                   threads=args.threads)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
