"""Pre-train a small BERT with masked language modelling, on the text minielmo's biLM learns from.

    python -m minielmo.corpus --out corpus                     # the text (see minielmo/corpus.py)
    python -m minibert.train_mlm --corpus corpus --vocab-report  # pieces per word for 8k/12k/16k
    python -m minibert.train_mlm --corpus corpus --out bert_run --size small --words 6000000 --seed 0
    python -m minibert.train_mlm --corpus corpus --out bert_run --resume   # after an interruption
    python -m minibert.train_mlm --cost                        # BERT's cost model
    python -m bench.mlm_cost                                   # ... beside ELMo's

Paper: Devlin et al. 2019 §3.1 "Task #1: Masked LM" and Appendix A.1: 15% of the word pieces of
each sequence are chosen; a chosen piece is replaced by [MASK] 80% of the time, by a random piece
10% of the time and left unchanged 10% of the time; the model predicts the original piece at the
chosen positions only, with a cross-entropy over the vocabulary (the MLM head, minibert/mlm.py).
[CLS], [SEP] and [PAD] are never chosen. Checked against google-research/bert
create_pretraining_data.py (create_masked_lm_predictions: round(15% of the pieces), at least one,
random piece from the whole vocabulary) and run_pretraining.py (gather the chosen positions before
the output layer; AdamW with weight decay 0.01, none on LayerNorm and biases; linear warm-up then
linear decay; gradient norm clipped at 1.0).

NOTE (deviation): no next-sentence prediction. RoBERTa (Liu et al. 2019 §4.2) found that removing
NSP matches or improves downstream results, and the minielmo corpus is single sentences.
NOTE (deviation): one sentence per sequence (at most MAX_LENGTH pieces), not BERT's packed
512-piece segments. minielmo's biLM trains on whole sentences from a zero state and every probe
and lesson feeds single sentences, so both models learn from exactly the same context.
NOTE (deviation): a WordPiece vocabulary trained on this corpus (cased, 8k pieces: see
VOCAB_SIZE), not BERT's 30k uncased one; and learning rate, warm-up and batch size sized for a
model of a few million parameters (see the constants below), not BERT-base's.

Same corpus, splits, seeding, progress bar, checkpoint and resume, log and export as
minielmo/train.py; the file reads top to bottom: sizes -> data -> batches -> masking -> loss ->
step -> checkpoint -> train -> export. Model files stay training-agnostic: this module only calls
BertForMaskedLM's encoder and head.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer as RustTokenizer
from tokenizers import decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from tokenizers.trainers import WordPieceTrainer

from minibert.config import BertConfig
from minibert.mlm import BertForMaskedLM
from weights.runs import (Progress, RunError, RunLock, StopRequests, check_identity, length_batches, load_checkpoint,
                          restore, save_checkpoint)

# ------------------------------------------------------------------------------------- sizes

# "small" matches the shipped ELMo's training cost per corpus word (python -m bench.mlm_cost):
# BERT's 4 layers x 256 hidden x 4 heads, with the feed-forward width as the one knob turned to
# match (896 = 3.5 D instead of BERT's 4 D). Its float32 weights (5,052,224 parameters, 20.2 MB)
# fit the package's 25 MB limit.
SIZES = {
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=896),
    # For tests and smoke runs: trains in seconds.
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),
}
MAX_LENGTH = 128      # pieces per sequence, [CLS] and [SEP] included; the corpus's longest sentence has 79
VOCAB_SIZE = 8000     # measured with --vocab-report, see docs/bert_model_card.md
MASK_PROBABILITY = 0.15   # Devlin et al. §3.1
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the chosen pieces; the remaining 10% stay unchanged
DROPOUT = 0.1             # BERT's, on embeddings, attention probabilities and residual branches
PEAK_LR = 5e-4            # ELECTRA-Small's pre-training rate (Clark et al. 2020, appendix), a model this size
WARMUP_SHARE = 0.05       # of the word budget; post-LN transformers diverge without a warm-up
WEIGHT_DECAY = 0.01
CLIP_NORM = 1.0
TOKENS_PER_BATCH = 4000   # target pieces per step (padding included); sentences of similar length share a batch
VALID_SEED = 12345        # the validation split's masks are drawn once, so every epoch scores the same task
PATIENCE = 3              # epochs without a better validation loss before training stops


def config_for(size: str, vocab_size: int) -> BertConfig:
    # type_vocab_size 1: without NSP every piece is segment 0, and a second segment embedding
    # would never be trained.
    return BertConfig(vocab_size=vocab_size, max_position_embeddings=MAX_LENGTH, type_vocab_size=1,
                      hidden_dropout_prob=DROPOUT, attention_probs_dropout_prob=DROPOUT, **SIZES[size])


# -------------------------------------------------------------------------------------- data

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4, BERT's names
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


class TrainingError(RunError):
    """The run cannot start or go on: `python -m minibert.train_mlm` prints it as one line, exit status 2."""


def read_sentences(path: Path, tagged: bool = False) -> list[list[str]]:
    """One sentence per line, words split by spaces; `tagged` files start each line with its source."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TrainingError(f"{path} not found; build the corpus first: python -m minielmo.corpus "
                            f"--out {Path(path).parent}") from None
    except (UnicodeDecodeError, OSError) as error:
        raise TrainingError(f"{path} cannot be read as UTF-8 text: {error}") from None
    sentences = [line.split()[1:] if tagged else line.split() for line in lines if line.strip()]
    sentences = [sentence for sentence in sentences if sentence]
    if not sentences:
        raise TrainingError(f"{path} holds no sentences")
    return sentences


def read_corpus(corpus: Path) -> tuple[list[list[str]], list[list[str]]]:
    """train.txt and valid.txt (the split that picks the checkpoint; heldout.txt stays the test)."""
    if not (Path(corpus) / "valid.txt").is_file() and (Path(corpus) / "train.txt").is_file():
        raise TrainingError(f"{corpus}/valid.txt not found: this corpus has no validation split; "
                            "rebuild it with python -m minielmo.corpus")
    return read_sentences(Path(corpus) / "train.txt"), read_sentences(Path(corpus) / "valid.txt", tagged=True)


def train_wordpiece(sentences: list[list[str]], vocab_size: int = VOCAB_SIZE) -> RustTokenizer:
    """A WordPiece vocabulary (Wu et al. 2016, as BERT's) learnt from the training sentences, in
    the same pipeline transformers' BertTokenizer runs. Cased: minielmo's char CNN sees case, so
    keeping it here keeps the two models' inputs comparable (and "Bank" vs "bank" is information).

    The library's trainer breaks ties between equally frequent merges in hash-map order, so two
    trainings on the same text may differ in a few pieces (measured on the test slice at 2,000
    pieces: 0 to 163 differ). A run therefore trains its vocabulary once, saves it in OUT/tokenizer
    and records its hash in every checkpoint; `--tokenizer DIR` reuses a saved one."""
    tokenizer = RustTokenizer(WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                      strip_accents=False, lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = WordPieceTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                               continuing_subword_prefix="##", show_progress=False)
    tokenizer.train_from_iterator((" ".join(sentence) for sentence in sentences), trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


def save_tokenizer(tokenizer: RustTokenizer, folder: Path) -> None:
    """tokenizer.json + vocab.txt + the two side files transformers' BertTokenizer reads its flags
    from (do_lower_case false: without it, transformers would lowercase a cased vocabulary)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(piece + "\n" for piece, _ in vocab), encoding="utf-8")
    specials = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                "mask_token": "[MASK]"}
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": False, "strip_accents": False,
              "tokenize_chinese_chars": True, "model_max_length": MAX_LENGTH, **specials}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n", encoding="utf-8")


def encode_sentences(tokenizer: RustTokenizer, sentences: list[list[str]]) -> tuple[list[list[int]], list[int]]:
    """Word-piece ids per sequence (without [CLS]/[SEP]) and the corpus words each holds. A
    sentence longer than MAX_LENGTH - 2 pieces is cut between words into halves until each fits."""
    sequences, words = [], []
    pending = list(sentences)
    while pending:
        encodings = tokenizer.encode_batch([" ".join(s) for s in pending], add_special_tokens=False)
        too_long = []
        for sentence, encoding in zip(pending, encodings):
            if len(encoding.ids) <= MAX_LENGTH - 2:
                sequences.append(encoding.ids)
                words.append(len(sentence))
            elif len(sentence) > 1:
                too_long += [sentence[:len(sentence) // 2], sentence[len(sentence) // 2:]]
            # else: one word of more than MAX_LENGTH - 2 pieces; no model input can hold it
        pending = too_long
    return sequences, words


def file_hash(*paths: Path) -> str:
    """sha256 over the files' bytes: a checkpoint names the vocabulary and corpus it was trained on."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------- batches


def make_batches(sequences: list[list[int]], seed: int, epoch: int,
                 tokens_per_batch: int = TOKENS_PER_BATCH) -> list[list[int]]:
    """Piece sequences -> batches of similar length, in an order fixed by (seed, epoch): the same
    scheme as minielmo/train.py's (weights.runs.length_batches), so both models see their
    sentences in comparable batches."""
    return length_batches([len(s) for s in sequences], seed, epoch, tokens_per_batch, boundary=2)  # + [CLS] [SEP]


def tensors_for(sequences: list[list[int]], cls_id: int, sep_id: int, pad_id: int):
    """[CLS] pieces [SEP] [PAD]... as (B, T) ids, the (B, T) attention mask, and the (B, T) mask of
    pieces that may be chosen for prediction (not [CLS], [SEP] or [PAD])."""
    T = max(len(ids) for ids in sequences) + 2
    input_ids = torch.full((len(sequences), T), pad_id, dtype=torch.long)   # (B, T)
    maskable = torch.zeros(len(sequences), T, dtype=torch.bool)             # (B, T)
    for row, ids in enumerate(sequences):
        input_ids[row, :len(ids) + 2] = torch.tensor([cls_id] + ids + [sep_id])
        maskable[row, 1:len(ids) + 1] = True
    attention_mask = (input_ids != pad_id).long()
    return input_ids, attention_mask, maskable


# ----------------------------------------------------------------------------------- masking


def choose_and_corrupt(input_ids: torch.Tensor, maskable: torch.Tensor, mask_id: int, vocab_size: int,
                       generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Devlin et al. §3.1: choose 15% of each sequence's pieces (round(15% of them), at least one),
    then corrupt the chosen: 80% -> [MASK], 10% -> a random piece, 10% unchanged.
    Returns the corrupted (B, T) inputs and the (B, T) bool mask of chosen positions."""
    B, T = input_ids.shape
    count = (maskable.sum(dim=1) * MASK_PROBABILITY).round().clamp(min=1)          # (B,)
    # A random rank per piece, non-maskable ones last: the `count` lowest ranks are chosen.
    scores = torch.rand(B, T, generator=generator).masked_fill(~maskable, 2.0)    # (B, T)
    rank = scores.argsort(dim=1).argsort(dim=1)                                    # (B, T)
    chosen = (rank < count[:, None]) & maskable                                    # (B, T)

    action = torch.rand(B, T, generator=generator)                                 # (B, T)
    to_mask = chosen & (action < MASK_SHARE)
    to_random = chosen & (action >= MASK_SHARE) & (action < MASK_SHARE + RANDOM_SHARE)
    corrupted = input_ids.clone()
    corrupted[to_mask] = mask_id
    # Like BERT's own code, the random piece comes from the whole vocabulary.
    corrupted[to_random] = torch.randint(vocab_size, (int(to_random.sum()),), generator=generator)
    return corrupted, chosen


# -------------------------------------------------------------------------------------- loss


def mlm_loss(model: BertForMaskedLM, corrupted: torch.Tensor, attention_mask: torch.Tensor,
             input_ids: torch.Tensor, chosen: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Summed cross-entropy of the original pieces at the chosen positions, the number of those
    predicted correctly (argmax), and how many were chosen. The head runs on the chosen positions
    only (BERT's gather_indexes): the (N, V) decoder is the largest matmul of a small model."""
    hidden = model.bert(corrupted, attention_mask).last_hidden_state              # (B, T, D)
    logits = model.mlm_head(hidden[chosen], model.bert.embeddings.word_embeddings.weight)  # (N, D) -> (N, V)
    targets = input_ids[chosen]                                                   # (N,)
    nll = F.cross_entropy(logits.float(), targets, reduction="sum")
    return nll, int((logits.argmax(dim=-1) == targets).sum()), int(targets.numel())


@torch.no_grad()
def validate(model: BertForMaskedLM, sequences: list[list[int]], special_ids: dict, device: torch.device,
             batch_tokens: int = 8000) -> dict:
    """Masked-piece loss and accuracy on the validation split, its masks drawn from VALID_SEED
    (the same corruption every time it is called). Eval mode: no dropout."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(VALID_SEED)
    total, correct, count = 0.0, 0, 0
    for batch in make_batches(sequences, seed=0, epoch=0, tokens_per_batch=batch_tokens):
        input_ids, attention_mask, maskable = tensors_for([sequences[i] for i in batch], special_ids["cls"],
                                                          special_ids["sep"], special_ids["pad"])
        corrupted, chosen = choose_and_corrupt(input_ids, maskable, special_ids["mask"], model.config.vocab_size,
                                               generator)
        nll, right, n = mlm_loss(model, corrupted.to(device), attention_mask.to(device), input_ids.to(device),
                                 chosen.to(device))
        total, correct, count = total + nll.item(), correct + right, count + n
    model.train(was_training)
    return {"loss": total / count, "accuracy": correct / count, "perplexity": math.exp(total / count),
            "targets": count}


# -------------------------------------------------------------------------------------- step


def learning_rate(words: int, total_words: int) -> float:
    """Linear warm-up over the first WARMUP_SHARE of the word budget, then linear decay to zero
    (Devlin et al. Appendix A.2). Driven by words seen, so a resumed run continues the same curve;
    a finished run resumed with a larger --words climbs back onto the longer run's curve."""
    warmup = max(1, int(WARMUP_SHARE * total_words))
    if words < warmup:
        return PEAK_LR * (words + 1) / warmup
    return PEAK_LR * max(0.0, (total_words - words) / max(1, total_words - warmup))


def init_weights(model: BertForMaskedLM) -> None:
    """BERT's initialisation (google-research/bert modeling.py, create_initializer; transformers'
    BertPreTrainedModel._init_weights): every matrix and embedding N(0, 0.02), biases 0, LayerNorm
    scale 1. PyTorch's defaults (N(0, 1) embeddings) would start the tied decoder with logits of
    standard deviation sqrt(D) and a first loss far above log V."""
    for name, parameter in model.named_parameters():
        if parameter.dim() >= 2:
            torch.nn.init.normal_(parameter, mean=0.0, std=0.02)
        elif name.endswith("norm.weight"):
            torch.nn.init.ones_(parameter)
        else:
            torch.nn.init.zeros_(parameter)


def make_optimizer(model: BertForMaskedLM) -> torch.optim.AdamW:
    """AdamW, BERT's: beta (0.9, 0.999), eps 1e-6, weight decay 0.01 except on biases and LayerNorms."""
    decay = [p for name, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for name, p in model.named_parameters() if p.dim() < 2]  # biases, LayerNorm scales
    return torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                              {"params": no_decay, "weight_decay": 0.0}], lr=PEAK_LR, betas=(0.9, 0.999), eps=1e-6)


# ------------------------------------------------------------------------------------- train
# The run folder's files (atomic checkpoints that refuse NaN weights, the lock, stop requests,
# identity checks) are weights/runs.py's, shared with minielmo/train.py.


class NonFiniteError(TrainingError):
    """A NaN or infinite loss or gradient: the step is not applied."""


def training_step(model: BertForMaskedLM, optimizer: torch.optim.Optimizer, tensors: tuple, lr: float,
                  device: torch.device, bf16: bool) -> tuple[float, int, int]:
    """One update on a masked batch: mean cross-entropy over the chosen pieces, backward, clip,
    AdamW. Returns the loss, the chosen pieces predicted right and their number. A non-finite loss
    or gradient raises NonFiniteError before the weights change."""
    corrupted, attention_mask, input_ids, chosen = (t.to(device) for t in tensors)
    for group in optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        nll, correct, n = mlm_loss(model, corrupted, attention_mask, input_ids, chosen)
    loss = nll / n
    if not torch.isfinite(loss):
        raise NonFiniteError(f"the loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
    if not torch.isfinite(grad_norm):
        raise NonFiniteError(f"the gradient norm is {grad_norm.item()}")
    optimizer.step()
    return loss.item(), correct, n


def open_vocabulary(out: Path, resuming: bool, saved: Path | None, sentences: list[list[str]],
                    vocab_size: int) -> RustTokenizer:
    """OUT/tokenizer: kept when resuming, else copied from `saved` (--tokenizer), else trained."""
    folder = out / "tokenizer"
    if resuming:
        if not (folder / "tokenizer.json").is_file():
            raise TrainingError(f"{folder}/tokenizer.json is missing; the checkpoint cannot be resumed without it")
    elif saved is not None:
        missing = [name for name in TOKENIZER_FILES if not (Path(saved) / name).is_file()]
        if missing:
            raise TrainingError(f"--tokenizer {saved} lacks {', '.join(missing)}")
        folder.mkdir(exist_ok=True)
        for name in TOKENIZER_FILES:
            shutil.copyfile(Path(saved) / name, folder / name)
    else:
        save_tokenizer(train_wordpiece(sentences, vocab_size), folder)
    return RustTokenizer.from_file(str(folder / "tokenizer.json"))


def train(corpus: Path, out: Path, size: str, total_words: int, seed: int, resume: bool,
          checkpoint_every: int = 200, vocab_size: int = VOCAB_SIZE, device: str = "cpu", bf16: bool = False,
          threads: int | None = None, tokenizer: Path | None = None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("--device cuda, but torch sees no CUDA device here")
        # TF32 matmuls: float32 range with a 10-bit mantissa, several times faster on Ampere and later.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    train_sentences, valid_sentences = read_corpus(corpus)
    checkpoint_path, best_path, log_path = out / "checkpoint.pt", out / "best.pt", out / "train_log.jsonl"

    with contextlib.ExitStack() as held:  # the lock, the signal handlers and the log, however train() ends
        held.enter_context(RunLock(out))
        stop = held.enter_context(StopRequests())  # SIGINT/SIGTERM: stop at the next step, checkpointed
        state = None
        if resume and checkpoint_path.is_file():
            state = load_checkpoint(checkpoint_path, ("model", "optimizer", "rng", "mask_rng", "step", "log_lines"))
        if state is None and checkpoint_path.exists():
            raise TrainingError(f"{checkpoint_path} exists: pass --resume to continue it, or another --out")
        wordpiece = open_vocabulary(out, state is not None, tokenizer, train_sentences, vocab_size)
        vocab_size = wordpiece.get_vocab_size()
        run = {"size": size, "seed": seed, "vocab_hash": file_hash(out / "tokenizer" / "vocab.txt"),
               "corpus_hash": file_hash(corpus / "train.txt", corpus / "valid.txt")}
        special = {name: wordpiece.token_to_id(f"[{name.upper()}]") for name in ("pad", "cls", "sep", "mask")}
        sequences, words_of = encode_sentences(wordpiece, train_sentences)
        valid_sequences, _ = encode_sentences(wordpiece, valid_sentences)
        if not sequences or not valid_sequences:
            raise TrainingError(f"{corpus}: no sentence of train.txt or valid.txt fits in {MAX_LENGTH} pieces")

        torch.manual_seed(seed)
        config = config_for(size, vocab_size)
        model = BertForMaskedLM(config)
        init_weights(model)
        model = model.to(device)
        optimizer = make_optimizer(model)
        mask_generator = torch.Generator().manual_seed(seed)  # its own stream: masking never shifts dropout's
        step, words, pieces, epoch, batch_in_epoch, elapsed_before, log_lines = 0, 0, 0, 0, 0, 0.0, 0
        best, epochs_without_gain, validated_at, stopped_early = {"loss": math.inf}, 0, -1, False

        if state is not None:
            check_identity(checkpoint_path, state, run)
            restore(checkpoint_path, state, {"model": model, "optimizer": optimizer}, f"size {size}",
                    cuda=device.type == "cuda")
            mask_generator.set_state(state["mask_rng"])
            step, words, pieces, epoch, batch_in_epoch, elapsed_before, log_lines, best = (state[key] for key in (
                "step", "words", "pieces", "epoch", "batch_in_epoch", "elapsed", "log_lines", "best"))
            epochs_without_gain, validated_at, stopped_early = (state[key] for key in (
                "epochs_without_gain", "validated_at", "stopped_early"))
            if state["finished"] and (words >= total_words or stopped_early):
                print(f"{checkpoint_path}: this run is finished ({words:,} words, best validation loss "
                      f"{best['loss']:.4f}); pass a larger --words to train on", file=sys.stderr)
                return state["result"]
            # The log keeps exactly the lines the checkpoint had seen: each step once, even after a
            # resume. Counted in lines, not steps (weights.runs.keep_log_until), because a validation
            # record carries the step of the checkpoint written just after it.
            kept = log_path.read_text(encoding="utf-8").splitlines(keepends=True) if log_path.exists() else []
            kept = kept[:log_lines]
            if state["finished"]:  # trained on to a larger --words: the old final record no longer ends the log
                kept, log_lines = kept[:-1], log_lines - 1
            log_path.write_text("".join(kept), encoding="utf-8")
            print(f"resumed from {checkpoint_path}: step {step}, {words:,} words", file=sys.stderr)

        log = held.enter_context(open(log_path, "a" if state is not None else "w", encoding="utf-8"))
        started, saved_step, result = time.time(), step, None

        def write_log(record: dict) -> None:
            nonlocal log_lines
            log.write(json.dumps(record) + "\n")
            log_lines += 1

        def checkpoint() -> None:
            nonlocal saved_step
            log.flush()
            save_checkpoint(checkpoint_path, {
                **run, "config": asdict(config), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "rng": torch.get_rng_state(), "mask_rng": mask_generator.get_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "step": step, "words": words, "pieces": pieces, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                "elapsed": elapsed_before + time.time() - started, "log_lines": log_lines, "best": best,
                "epochs_without_gain": epochs_without_gain, "validated_at": validated_at,
                "finished": result is not None, "stopped_early": stopped_early, "result": result},
                finite_keys=("model",))  # never written from NaN weights: the good one stays
            saved_step = step

        def end_of_epoch() -> None:
            """Score the validation split; keep the best weights; count epochs without a gain."""
            nonlocal best, epochs_without_gain, validated_at
            validated_at = step
            scores = validate(model, valid_sequences, special, device)
            write_log({"step": step, "words": words, "epoch": epoch,
                       "valid": {key: round(value, 4) for key, value in scores.items()}})
            if scores["loss"] < best["loss"]:
                best, epochs_without_gain = {**scores, "step": step, "words": words}, 0
                save_checkpoint(best_path, {"model": model.state_dict(), "best": best}, finite_keys=("model",))
            else:
                epochs_without_gain += 1

        progress = Progress(total_words, words, "words")
        model.train()
        while words < total_words and not stopped_early:
            batches = make_batches(sequences, seed, epoch, TOKENS_PER_BATCH)
            while batch_in_epoch < len(batches) and words < total_words:
                batch = batches[batch_in_epoch]
                input_ids, attention_mask, maskable = tensors_for(
                    [sequences[i] for i in batch], special["cls"], special["sep"], special["pad"])
                corrupted, chosen = choose_and_corrupt(input_ids, maskable, special["mask"], vocab_size,
                                                       mask_generator)
                lr, begin = learning_rate(words, total_words), time.time()
                try:
                    loss, correct, n = training_step(model, optimizer, (corrupted, attention_mask, input_ids, chosen),
                                                     lr, device, bf16)
                except NonFiniteError as error:
                    raise TrainingError(f"step {step + 1}: {error}; stopped before the update, "
                                        f"{checkpoint_path.name} (step {saved_step}) is intact: lower PEAK_LR, "
                                        "or resume without --bf16") from None
                rate = int(attention_mask.sum()) / max(time.time() - begin, 1e-9)
                step, batch_in_epoch = step + 1, batch_in_epoch + 1
                words, pieces = words + sum(words_of[i] for i in batch), pieces + int(attention_mask.sum())
                progress.show(step, words, f"{rate:,.0f} pieces/s", f"MLM loss {loss:.3f}")
                write_log({"step": step, "words": words, "pieces": pieces, "epoch": epoch, "loss": round(loss, 4),
                           "accuracy": round(correct / n, 4), "lr": lr, "pieces_per_s": round(rate, 1),
                           "elapsed_s": round(elapsed_before + time.time() - started, 1)})
                if step % checkpoint_every == 0 or stop.requested:
                    checkpoint()
                stop.check(step, checkpoint_path)
            if batch_in_epoch >= len(batches):
                end_of_epoch()
                epoch, batch_in_epoch = epoch + 1, 0
                stopped_early = epochs_without_gain >= PATIENCE
                checkpoint()
        print(file=sys.stderr)
        if validated_at != step:
            end_of_epoch()  # the budget ended inside an epoch: score where it stopped, too
        epochs = epoch + batch_in_epoch / len(make_batches(sequences, seed, epoch, TOKENS_PER_BATCH))
        result = {"step": step, "words": words, "pieces": pieces, "epochs": round(epochs, 3),
                  "train_seconds": round(elapsed_before + time.time() - started, 1), "stopped_early": stopped_early,
                  "best_valid": best, "device": str(device), "bf16": bf16}
        write_log({"step": step, "final": result})
        checkpoint()

    best_model = BertForMaskedLM(config)
    best_model.load_state_dict(load_checkpoint(best_path, ("model",))["model"])
    export_model(best_model, out / "tokenizer", out / "model")
    return result


def export_model(model: BertForMaskedLM, tokenizer_dir: Path, folder: Path) -> Path:
    """The model in Hugging Face's BertForMaskedLM format plus its tokenizer files: what the
    package ships as "minicontext-bert-small" (minibert/data/bert_small/)."""
    from weights.bert_hf import save_mlm  # the only file format code training needs

    save_mlm(model.eval(), folder)
    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / name, folder / name)
    return folder


# ----------------------------------------------------------------------------------- reports

# Measured on the minielmo corpus (train.txt / heldout.txt, 4.3 M words, before the sentence-
# splitting clean-up) with an 8k cased vocabulary, the measurement `--vocab-report` repeats on
# any corpus (its "pieces/word" and "E[T^2]/E[T]" columns).
PIECES_PER_WORD = 1.177
ATTENDED_PIECES = 30.1  # E[T^2] / E[T]: the sequence length a piece attends over, on average


def forward_macs_per_piece(config: BertConfig, attended: float = ATTENDED_PIECES) -> dict:
    """Multiply-adds per word piece of one training forward pass, by component. A training step
    costs 3x (the backward pass computes two products per forward one)."""
    D, F_, L, V = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    parts = {"attention projections (q, k, v, out)": L * 4 * D * D,
             "attention scores and context": L * 2 * attended * D,
             "feed-forward": L * 2 * D * F_,
             # The head runs at the chosen 15% only (mlm_loss gathers them first).
             "MLM head (15% of pieces)": MASK_PROBABILITY * (D * D + D * V)}
    parts["total"] = sum(parts.values())
    return parts


def cost_report(size: str = "small", words: int = 6_000_000, pieces_per_word: float = PIECES_PER_WORD,
                attended: float = ATTENDED_PIECES, vocab_size: int = VOCAB_SIZE, elmo: dict | None = None) -> str:
    """BERT's cost model per corpus word and for a budget of `words`; with `elmo` (ELMo's
    minielmo.cost.forward_macs_per_token), both side by side. ELMo's unit is the word (one target
    per word and direction), BERT's the word piece. minibert may not import minielmo (the two
    packages are one layer), so `python -m bench.mlm_cost` passes ELMo's numbers in."""
    bert = forward_macs_per_piece(config_for(size, vocab_size), attended)
    bert_per_word = 6 * bert["total"] * pieces_per_word  # 3 passes x 2 FLOP per multiply-add
    lines = [f"training cost per corpus word (FLOP = 6 x forward multiply-adds), BERT {size}", "",
             f"BERT {size} (per word piece; {pieces_per_word:.3f} pieces per word, attending over "
             f"{attended:.1f} pieces):"]
    lines += [f"  {name:<40} {value / 1e6:8.3f} M multiply-adds" for name, value in bert.items()]
    columns = [(f"BERT {size}", bert_per_word)]
    if elmo is not None:
        lines += ["", "ELMo small (per word; python -m minielmo.cost --size small):"]
        lines += [f"  {name:<40} {value / 1e6:8.3f} M multiply-adds" for name, value in elmo.items()]
        columns.append(("ELMo small", 6 * elmo["total"]))
    lines += ["", f"{'':<28}" + "".join(f"{name:>16}" for name, _ in columns),
              f"{'training MFLOP per word':<28}" + "".join(f"{flop / 1e6:>16.1f}" for _, flop in columns),
              f"{'PFLOP for ' + format(words, ',') + ' words':<28}"
              + "".join(f"{flop * words / 1e15:>16.3f}" for _, flop in columns)]
    return "\n".join(lines)


def vocab_report(corpus: Path, sizes=(8000, 12000, 16000)) -> str:
    """Pieces per word, [UNK] rate and sequence lengths on valid.txt for WordPiece vocabularies of
    several sizes trained on train.txt: the measurement VOCAB_SIZE was chosen from."""
    train_sentences, valid_sentences = read_corpus(corpus)
    words = sum(len(s) for s in valid_sentences)
    lines = [f"{'vocabulary':>10} {'pieces/word':>12} {'[UNK] rate':>11} {'E[T^2]/E[T]':>12} "
             f"{'MB float32 (small)':>19}"]
    for size in sizes:
        tokenizer = train_wordpiece(train_sentences, size)
        encodings = tokenizer.encode_batch([" ".join(s) for s in valid_sentences], add_special_tokens=False)
        pieces = sum(len(e.ids) for e in encodings)
        unknown = sum(e.ids.count(tokenizer.token_to_id("[UNK]")) for e in encodings)
        lengths = [len(e.ids) + 2 for e in encodings]
        config = config_for("small", tokenizer.get_vocab_size())
        parameters = sum(p.numel() for p in BertForMaskedLM(config).parameters())
        lines.append(f"{tokenizer.get_vocab_size():>10} {pieces / words:>12.3f} {unknown / pieces:>11.5f} "
                     f"{sum(t * t for t in lengths) / sum(lengths):>12.1f} {4 * parameters / 1e6:>19.1f}")
    return "\n".join(lines)


def measure_rate(size: str = "small", steps: int = 5, vocab_size: int = VOCAB_SIZE, length: int = 20,
                 batch: int = 200) -> float:
    """Training pieces/s of one size on random sequences shaped like the corpus's (CPU or not,
    whatever torch uses here). The first step is a warm-up and is not counted."""
    torch.manual_seed(0)
    model = BertForMaskedLM(config_for(size, vocab_size))
    init_weights(model)
    optimizer = make_optimizer(model)
    generator = torch.Generator().manual_seed(0)
    sequences = [torch.randint(5, vocab_size, (length,), generator=generator).tolist() for _ in range(batch)]
    input_ids, attention_mask, maskable = tensors_for(sequences, 2, 3, 0)
    times = []
    for _ in range(steps + 1):
        begin = time.perf_counter()
        corrupted, chosen = choose_and_corrupt(input_ids, maskable, 4, vocab_size, generator)
        nll, _, n = mlm_loss(model, corrupted, attention_mask, input_ids, chosen)
        optimizer.zero_grad()
        (nll / n).backward()
        optimizer.step()
        times.append(time.perf_counter() - begin)
    return int(attention_mask.sum()) / (sum(times[1:]) / steps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minibert.train_mlm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="corpus", help="folder written by python -m minielmo.corpus")
    parser.add_argument("--out", default="bert_run", help="checkpoint, log, tokenizer and exported model go here")
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--words", type=int, default=6_000_000,
                        help="corpus words to train on (ELMo's --tokens counts its targets: the same "
                        "words plus one </S> per sentence)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    parser.add_argument("--vocab-size", type=int, default=VOCAB_SIZE, help="WordPiece vocabulary size")
    parser.add_argument("--tokenizer", default=None, help="reuse the vocabulary saved in this folder "
                        "(an earlier run's OUT/tokenizer) instead of training one")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--cost", action="store_true", help="print BERT's cost model and exit "
                        "(python -m bench.mlm_cost prints it beside ELMo's)")
    parser.add_argument("--measure", action="store_true", help="with --cost: also time a few training steps here")
    parser.add_argument("--vocab-report", action="store_true", help="measure vocabulary sizes on valid.txt and exit")
    args = parser.parse_args(argv)
    prog = parser.prog
    try:
        if args.words < 1 or args.checkpoint_every < 1 or args.vocab_size < len(SPECIAL_TOKENS) + 1:
            raise TrainingError("--words, --checkpoint-every and --vocab-size must be positive")
        if args.cost:
            print(cost_report(args.size, args.words))
            if args.measure:
                if args.threads:
                    torch.set_num_threads(args.threads)
                print(f"\nmeasured here: {measure_rate(args.size):,.0f} training pieces/s "
                      f"({torch.get_num_threads()} threads, {args.size})")
            return 0
        if args.vocab_report:
            print(vocab_report(Path(args.corpus)))
            return 0
        result = train(Path(args.corpus), Path(args.out), args.size, args.words, args.seed, args.resume,
                       args.checkpoint_every, args.vocab_size, args.device, args.bf16, args.threads,
                       Path(args.tokenizer) if args.tokenizer else None)
        print(json.dumps(result, indent=2))
        return 0
    except RunError as error:  # TrainingError and the run files' errors
        print(f"\n{prog}: error: {error}", file=sys.stderr)
    except KeyboardInterrupt:  # a second Ctrl-C: no time for a fresh checkpoint
        print(f"\n{prog}: interrupted; {Path(args.out) / 'checkpoint.pt'} keeps the last checkpoint "
              f"(if one was written): continue with --resume", file=sys.stderr)
    except OSError as error:  # a disk that fills up or a folder that turns read-only mid-run
        print(f"\n{prog}: error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
