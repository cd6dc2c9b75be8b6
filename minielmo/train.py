"""Train an ELMo biLM from scratch: the objective the released models were trained with.

    python -m minielmo.corpus --out corpus                        # the text (see corpus.py)
    python -m minielmo.train --corpus corpus --out run --size small --epochs 10 --seed 0
    python -m minielmo.train --corpus corpus --out run --resume   # continue after any interruption

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
Adagrad (lr 0.2) at a constant rate; we use torch's AdaptiveLogSoftmaxWithLoss (exact, and faster
than a full softmax at our vocabulary size: see `python -m minielmo.cost`), Adam, and a warm-up
then cosine decay over the planned tokens, with the validation split picking the checkpoint.

The file reads top to bottom: sizes -> data -> batches -> loss -> schedule -> the run -> export
(OUT/model/: options.json + weights.hdf5 as bilm-tf released, model.safetensors, and the LM head:
lm_head.safetensors, lm_head.json and vocab.txt). The run folder's safety (atomic checkpoints,
lock, signals, identity checks) is weights/runs.py. Model files stay training-agnostic: this
module only calls BiLM.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from weights.common import sha256_of
from weights.runs import (Progress, RunError, RunLock, StopRequests, check_identity, keep_log_until,
                          length_batches, load_checkpoint, restore, save_checkpoint)

from .bilm import BiLM
from .cli import OneLineParser
from .characters import MAX_WORD_LENGTH, batch_to_ids, word_to_char_ids
from .config import ElmoConfig
from .lm_head import SharedSoftmax

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
LEARNING_RATE = 2e-3  # the peak, reached after the warm-up
WARMUP_STEPS = 200
FINAL_LR_FRACTION = 0.05  # cosine decay ends at 5% of the peak, not 0: the last steps still learn
CLIP_NORM = 5.0
TOKENS_PER_BATCH = 3000  # target tokens per step; sentences of similar length share a batch
PATIENCE = 2  # epochs without a better validation perplexity before training stops
MAX_NONFINITE_STEPS = 5  # consecutive skipped (non-finite) steps before the run stops

# -------------------------------------------------------------------------------------- data

BOS, EOS, UNK = "<S>", "</S>", "<UNK>"


class Vocabulary:
    """The output word vocabulary (vocab.txt: <S>, </S>, <UNK>, then words by frequency). Inputs
    never need it: the char CNN reads any word."""

    def __init__(self, words: list[str]):
        if words[:3] != [BOS, EOS, UNK]:
            raise ValueError(f"vocab.txt must start with {BOS}, {EOS}, {UNK}; got {words[:3]}")
        if len(set(words)) != len(words):
            raise ValueError("vocab.txt lists a word twice")
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


def tensors_for(sentences: list[list[str]], vocab: Vocabulary) -> tuple[torch.Tensor, torch.Tensor]:
    """char ids (B, T, W) for the biLM and word ids (B, T+2) with <S> ... </S> for the softmax.
    The readable form, one word at a time; TokenArrays does the same in a few array operations."""
    char_ids = batch_to_ids(sentences)  # (B, T, W)
    word_ids = torch.zeros(len(sentences), char_ids.shape[1] + 2, dtype=torch.long)  # (B, T+2)
    for row, sentence in enumerate(sentences):
        ids = vocab.ids(sentence)
        word_ids[row, :len(ids)] = torch.tensor(ids)
    return char_ids, word_ids


class TokenArrays:
    """A whole text as flat arrays, built once, so a batch costs a few array gathers instead of
    encoding every word's characters again (that kept a GPU waiting):

    - every distinct word has one row of W character ids in `char_table` (row 0: padding);
    - `word_type[k]` and `vocab_id[k]` are the k-th running word's row and output id;
    - sentence i is running words starts[i] .. starts[i] + lengths[i].
    """

    def __init__(self, sentences: list[list[str]], vocab: Vocabulary):
        types = {}
        word_type = [types.setdefault(w, len(types) + 1) for s in sentences for w in s]
        unk = vocab.index[UNK]
        self.char_table = torch.zeros(len(types) + 1, MAX_WORD_LENGTH, dtype=torch.long)  # (types+1, W)
        for word, row in types.items():
            self.char_table[row] = torch.tensor(word_to_char_ids(word))
        self.word_type = np.asarray(word_type, dtype=np.int64)
        self.vocab_id = np.asarray([vocab.index.get(w, unk) for s in sentences for w in s], dtype=np.int64)
        self.lengths = np.asarray([len(s) for s in sentences], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.bos, self.eos = vocab.index[BOS], vocab.index[EOS]

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, indices: list[int], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The same (char ids (B, T, W), word ids (B, T+2)) as tensors_for, for sentences `indices`."""
        lengths = self.lengths[indices]  # (B,)
        T = int(lengths.max())
        positions = np.arange(T)  # (T,)
        inside = positions[None, :] < lengths[:, None]  # (B, T)
        flat = np.where(inside, self.starts[indices][:, None] + positions[None, :], 0)  # (B, T)
        types = np.where(inside, self.word_type[flat], 0)  # (B, T); 0 = the all-zero padding row
        word_ids = np.zeros((len(indices), T + 2), dtype=np.int64)  # (B, T+2)
        word_ids[:, 0] = self.bos
        word_ids[:, 1:T + 1] = np.where(inside, self.vocab_id[flat], 0)
        word_ids[np.arange(len(indices)), lengths + 1] = self.eos
        char_ids = self.char_table[torch.from_numpy(types)]  # (B, T) -> (B, T, W)
        return char_ids.to(device), torch.from_numpy(word_ids).to(device)


# ----------------------------------------------------------------------------------- batches


def make_batches(lengths, seed: int, epoch: int, tokens_per_batch: int = TOKENS_PER_BATCH) -> list[list[int]]:
    """Sentences (or their lengths) -> batches of similar length, fixed by (seed, epoch):
    weights.runs.length_batches, which the masked-LM trainer shares."""
    lengths = [len(s) if isinstance(s, (list, tuple)) else int(s) for s in lengths]
    return length_batches(lengths, seed, epoch, tokens_per_batch, boundary=2)  # + <S> </S>


# -------------------------------------------------------------------------------------- loss


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
def perplexity(bilm: BiLM, softmax: SharedSoftmax, sentences, vocab: Vocabulary | None = None,
               batch_tokens: int = 4000) -> dict:
    """Perplexity of each direction on `sentences` (word lists with a vocab, or TokenArrays), in
    eval mode: no dropout, the fast inference path."""
    arrays = sentences if isinstance(sentences, TokenArrays) else TokenArrays(sentences, vocab)
    if len(arrays) == 0:
        raise ValueError("perplexity of no sentences is undefined")
    was_training = bilm.training
    bilm.eval()
    softmax.eval()
    device = next(bilm.parameters()).device
    totals, count = [0.0, 0.0], 0
    for batch in make_batches(arrays.lengths, seed=0, epoch=0, tokens_per_batch=batch_tokens):
        char_ids, word_ids = arrays.batch(batch, device)
        forward_nll, backward_nll, n = bilm_nll(bilm, softmax, char_ids, word_ids, nn.Identity())
        totals[0] += forward_nll.item()
        totals[1] += backward_nll.item()
        count += n
    bilm.train(was_training)
    softmax.train(was_training)
    return {"forward": math.exp(totals[0] / count), "backward": math.exp(totals[1] / count),
            "targets": count}


def training_step(bilm: BiLM, softmax: SharedSoftmax, optimizer: torch.optim.Optimizer, char_ids: torch.Tensor,
                  word_ids: torch.Tensor, dropout: nn.Module, lr: float, bf16: bool = False):
    """One update: both directions' loss, backward, gradient clipping, Adam. Returns (forward NLL,
    backward NLL, targets per direction), or None when the loss or the gradient is not finite:
    then the weights are left as they were (a diverging batch never reaches them)."""
    device_type = char_ids.device.type
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=bf16):
        forward_nll, backward_nll, n = bilm_nll(bilm, softmax, char_ids, word_ids, dropout)
    loss = (forward_nll + backward_nll) / (2 * n)  # mean of the two directions' NLL
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    norm = torch.nn.utils.clip_grad_norm_(parameters, CLIP_NORM)
    if not (torch.isfinite(loss) and torch.isfinite(norm)):
        optimizer.zero_grad(set_to_none=True)
        return None
    optimizer.step()
    return forward_nll.item(), backward_nll.item(), n


# ---------------------------------------------------------------------------------- schedule


def learning_rate(step: int, progress: float) -> float:
    """Linear warm-up over WARMUP_STEPS, then a cosine from the peak down to FINAL_LR_FRACTION of
    it as `progress` (tokens done / tokens planned) goes from 0 to 1."""
    warmup = min(1.0, (step + 1) / WARMUP_STEPS)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return LEARNING_RATE * warmup * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)


# ------------------------------------------------------------------------------------ the run


class TrainingError(RunError):
    """The run cannot start or go on; `python -m minielmo.train` prints it as one line."""


def _read_split(corpus: Path, name: str, tagged: bool) -> list[list[str]]:
    path = corpus / name
    if not path.is_file():
        raise TrainingError(f"{path} not found; build the corpus first: python -m minielmo.corpus --out {corpus}")
    sentences = read_sentences(path)
    sentences = [s[1:] for s in sentences] if tagged else sentences  # held-out lines start with their source
    if not any(sentences):
        raise TrainingError(f"{path} has no sentences to {'train on' if name == 'train.txt' else 'evaluate on'}")
    return sentences


def train(corpus: Path, out: Path, size: str, total_tokens: int, seed: int, resume: bool,
          checkpoint_every: int = 100, threads: int | None = None, device: str = "cpu",
          bf16: bool = False, patience: int = PATIENCE) -> dict:
    """Train (or, with resume=True, continue) a run in `out`; returns the final evaluation.
    Raises TrainingError with a one-line message for every situation a user can cause."""
    if threads:
        torch.set_num_threads(threads)
    if size not in SIZES:
        raise TrainingError(f"unknown size {size!r}; choose one of {', '.join(sorted(SIZES))}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {device}: CUDA is not available on this machine")
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls: ~1e-3 relative, fine for training
        torch.backends.cudnn.allow_tf32 = True
    with RunLock(out), StopRequests() as stop:
        return _train_locked(corpus, out, size, total_tokens, seed, resume, checkpoint_every, device,
                             bf16, patience, stop)


def _train_locked(corpus, out, size, total_tokens, seed, resume, checkpoint_every, device, bf16,
                  patience, stop) -> dict:
    vocab_path = corpus / "vocab.txt"
    if not vocab_path.is_file():
        raise TrainingError(f"{vocab_path} not found; build the corpus first: python -m minielmo.corpus --out {corpus}")
    try:
        vocab = Vocabulary.from_file(vocab_path)
    except ValueError as error:
        raise TrainingError(f"{vocab_path}: {error}") from None
    train_arrays = TokenArrays(_read_split(corpus, "train.txt", tagged=False), vocab)
    valid_arrays = TokenArrays(_read_split(corpus, "valid.txt", tagged=True), vocab)
    identity = {"size": size, "seed": seed, "vocab_sha256": sha256_of(vocab_path),
                "corpus_sha256": sha256_of(corpus / "train.txt")}
    paths = {"checkpoint": out / "checkpoint.pt", "best": out / "best.pt", "log": out / "train_log.jsonl",
             "curve": out / "learning_curve.jsonl"}

    torch.manual_seed(seed)
    config = SIZES[size]
    bilm = BiLM(config, dropout=DROPOUT).to(device)
    softmax = SharedSoftmax(config.projection_dim, len(vocab)).to(device)
    dropout = nn.Dropout(DROPOUT)
    parameters = list(bilm.parameters()) + list(softmax.parameters())
    optimizer = torch.optim.Adam(parameters, lr=LEARNING_RATE)
    run = {"step": 0, "tokens": 0, "epoch": 0, "batch_in_epoch": 0, "elapsed": 0.0,
           "best_valid": math.inf, "epochs_since_best": 0, "stopped_early": False}

    if paths["checkpoint"].exists() and not resume:
        raise TrainingError(f"{paths['checkpoint']} exists: pass --resume to continue it, or use another --out")
    if resume and paths["checkpoint"].exists():
        state = load_checkpoint(paths["checkpoint"], ("bilm", "softmax", "optimizer", "run", "rng", *identity))
        check_identity(paths["checkpoint"], state, identity)
        restore(paths["checkpoint"], state, {"bilm": bilm, "softmax": softmax, "optimizer": optimizer},
                f"size {size} with this vocabulary", cuda=device.startswith("cuda"))
        run.update(state["run"])
        print(f"resumed from {paths['checkpoint']}: step {run['step']}, {run['tokens']:,} tokens",
              file=sys.stderr)
        if run["stopped_early"] or run["tokens"] >= total_tokens:
            why = ("it stopped early: validation perplexity stopped improving" if run["stopped_early"] else
                   f"it reached {run['tokens']:,} of the {total_tokens:,} tokens asked for; ask for more "
                   f"--epochs or --tokens to continue it")
            print(f"{out} is finished: {why}; its model is in {out / 'model'}", file=sys.stderr)
            return {"finished": True, "step": run["step"], "tokens": run["tokens"],
                    "stopped_early": run["stopped_early"], "best_valid_perplexity": run["best_valid"]}
    keep_log_until(paths["log"], run["step"])
    keep_log_until(paths["curve"], run["step"])

    def checkpoint():
        save_checkpoint(paths["checkpoint"], {
            **identity, "config": asdict(config), "bilm": bilm.state_dict(), "softmax": softmax.state_dict(),
            "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if device.startswith("cuda") else None,
            "run": {**run, "elapsed": run["elapsed"] + time.time() - started}, "vocab_size": len(vocab)},
            finite_keys=("bilm", "softmax"))

    def end_of_epoch(log):
        """Validation perplexity: keep the best weights, count epochs without improvement."""
        valid = perplexity(bilm, softmax, valid_arrays)
        mean = math.sqrt(valid["forward"] * valid["backward"])  # geometric mean of the two directions
        improved = mean < run["best_valid"]
        if improved:
            run["best_valid"], run["epochs_since_best"] = mean, 0
            save_checkpoint(paths["best"], {**identity, "config": asdict(config), "bilm": bilm.state_dict(),
                                            "softmax": softmax.state_dict(), "run": dict(run),
                                            "vocab_size": len(vocab)}, finite_keys=("bilm", "softmax"))
        else:
            run["epochs_since_best"] += 1
        record = {"step": run["step"], "epoch": run["epoch"], "tokens": run["tokens"],
                  "valid_forward": round(valid["forward"], 2), "valid_backward": round(valid["backward"], 2),
                  "best": improved, "lr": learning_rate(run["step"], run["tokens"] / total_tokens)}
        with open(paths["curve"], "a", encoding="utf-8") as curve:
            curve.write(json.dumps(record) + "\n")
        print(f"\nepoch {run['epoch']}: validation perplexity forward {valid['forward']:.1f} backward "
              f"{valid['backward']:.1f}{' (best so far)' if improved else ''}", file=sys.stderr)
        run["stopped_early"] = run["epochs_since_best"] >= patience

    progress = Progress(total_tokens, run["tokens"], "tokens")
    started = time.time()
    bilm.train()
    softmax.train()
    nonfinite = 0
    with open(paths["log"], "a", encoding="utf-8") as log:
        while run["tokens"] < total_tokens and not run["stopped_early"]:
            batches = make_batches(train_arrays.lengths, seed, run["epoch"])
            if not batches:
                raise TrainingError(f"{corpus / 'train.txt'} gives no batch to train on")
            while run["batch_in_epoch"] < len(batches) and run["tokens"] < total_tokens:
                char_ids, word_ids = train_arrays.batch(batches[run["batch_in_epoch"]], device)
                lr = learning_rate(run["step"], run["tokens"] / total_tokens)
                outcome = training_step(bilm, softmax, optimizer, char_ids, word_ids, dropout, lr, bf16)
                run["batch_in_epoch"] += 1
                if outcome is None:
                    nonfinite += 1
                    print(f"\nstep {run['step'] + 1}: non-finite loss or gradient, step skipped", file=sys.stderr)
                    if nonfinite >= MAX_NONFINITE_STEPS:
                        raise TrainingError(f"{nonfinite} steps in a row had a non-finite loss or gradient; "
                                            f"stopped without writing a checkpoint (the last good one is "
                                            f"{paths['checkpoint']}); lower the learning rate or check the data")
                    continue
                nonfinite = 0
                forward_nll, backward_nll, n = outcome
                run["step"], run["tokens"] = run["step"] + 1, run["tokens"] + n
                forward_loss, backward_loss = forward_nll / n, backward_nll / n
                rate = progress.show(run["step"], run["tokens"],
                                     f"loss fwd {forward_loss:.3f} bwd {backward_loss:.3f}")
                log.write(json.dumps({"step": run["step"], "tokens": run["tokens"], "epoch": run["epoch"],
                                      "forward_loss": round(forward_loss, 4), "backward_loss": round(backward_loss, 4),
                                      "tokens_per_s": round(rate, 1), "lr": lr,
                                      "elapsed_s": round(run["elapsed"] + time.time() - started, 1)}) + "\n")
                if run["step"] % checkpoint_every == 0 or stop.requested:
                    log.flush()
                    checkpoint()
                stop.check(run["step"], paths["checkpoint"])
            if run["batch_in_epoch"] >= len(batches):
                run["epoch"], run["batch_in_epoch"] = run["epoch"] + 1, 0
                end_of_epoch(log)
        if run["batch_in_epoch"] > 0 or not paths["best"].exists():
            end_of_epoch(log)  # a run that ends mid-epoch is validated where it ends
        checkpoint()
    print(file=sys.stderr)
    best = load_checkpoint(paths["best"], ("bilm", "softmax", "run"))
    bilm.load_state_dict(best["bilm"])
    softmax.load_state_dict(best["softmax"])
    result = {"step": run["step"], "tokens": run["tokens"], "best_step": best["run"]["step"],
              "epochs": run["epoch"] + run["batch_in_epoch"] / max(1, len(batches)),
              "stopped_early": run["stopped_early"],
              "train_seconds": round(run["elapsed"] + time.time() - started, 1),
              "valid_perplexity": perplexity(bilm, softmax, valid_arrays)}
    export_model(bilm.cpu(), softmax.cpu(), vocab, out / "model")
    return result


def export_model(bilm: BiLM, softmax: SharedSoftmax, vocab: Vocabulary, folder: Path) -> dict:
    """The trained biLM in the released format (options.json + weights.hdf5), as
    model.safetensors, and its LM head: what the package ships under minielmo/data/."""
    from weights.elmo_export import export  # the only file format code training needs
    from weights.elmo_lm_head import save_lm_head

    paths = export(bilm.eval(), folder)
    paths.update(save_lm_head(softmax.eval(), vocab.words, folder))
    return paths


def main(argv=None) -> None:
    parser = OneLineParser("python -m minielmo.train", __doc__)
    parser.add_argument("--corpus", default="corpus",
                        help="folder written by python -m minielmo.corpus (default: %(default)s)")
    parser.add_argument("--out", default="elmo_run",
                        help="checkpoints, logs and the exported model go here (default: %(default)s)")
    parser.add_argument("--size", default="small", choices=sorted(SIZES), help="model size (default: %(default)s)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--epochs", type=float, default=None,
                        help="passes over train.txt to plan the schedule for (default 10)")
    amount.add_argument("--tokens", type=int, default=None, help="training targets per direction, instead of --epochs")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, batches and dropout (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--checkpoint-every", type=int, default=100,
                        help="steps between checkpoints (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (default: float32)")
    parser.add_argument("--patience", type=int, default=PATIENCE,
                        help="stop after this many epochs without a better validation perplexity (default: %(default)s)")
    args = parser.parse_args(argv)
    corpus = Path(args.corpus)
    try:
        tokens = args.tokens
        if tokens is None:
            train_file = corpus / "train.txt"
            if not train_file.is_file():
                raise TrainingError(f"{train_file} not found; build the corpus first: python -m minielmo.corpus --out {corpus}")
            # One epoch of targets: every word plus the </S> (forward) or <S> (backward) boundary.
            per_epoch = sum(len(line.split()) + 1 for line in train_file.read_text(encoding="utf-8").splitlines()
                            if line.strip())
            tokens = int(per_epoch * (10 if args.epochs is None else args.epochs))
        if tokens <= 0:
            raise TrainingError("nothing to train: --epochs/--tokens must be positive")
        result = train(corpus, Path(args.out), args.size, tokens, args.seed, args.resume,
                       checkpoint_every=args.checkpoint_every, threads=args.threads, device=args.device, bf16=args.bf16, patience=args.patience)
    except RunError as error:
        print(f"\npython -m minielmo.train: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"\npython -m minielmo.train: interrupted; the last checkpoint in {args.out} is kept; "
              f"continue with --resume", file=sys.stderr)
        raise SystemExit(130) from None
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
