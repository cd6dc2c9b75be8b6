"""ELMo training speed: one step of minielmo.train at the shipped size, against the matmul-bound rate.

A step is what `minielmo.train` does per batch: the biLM forward pass with dropout (the training
path, minielmo/fast_grad.py, which BiLM takes under autograd), the shared adaptive softmax of both
directions, backward, and an Adam update. The same step through the readable modules
(`fast_path = False`: autograd records every op of every time step) is timed beside it. Both run
on the bench corpus's English words at the size `minielmo.train` ships ("small"; `--quick` uses
"tiny") and a batch of about TOKENS_PER_BATCH targets, as training batches are.

"Matmul-bound" is the time the step's matrix products alone would take at the fp32 rates
measured in the same run (bench/ceiling.py's method): the forward multiply-adds per token from
`minielmo.cost.forward_macs_per_token`, times 3 for forward + backward (two products per
forward one), the LSTM's recurrent and cell-to-projection products at the rate of a (B, P) @ (P,
4C) matmul (one time step: small M), everything else at the rate of the hoisted input product
(all positions at once). The share is matmul-bound time / measured time.

For reference only, the biLSTM stack alone (2 layers per direction, projection, forward +
backward + Adam) is timed as minielmo's training path, as its readable LSTM and as
`torch.nn.LSTM(proj_size=P)` on the same shapes. nn.LSTM has no cell or projection clipping and no masking, so it is a speed
reference for the recurrent core, not an equivalent model.
"""

from __future__ import annotations

import random

import torch
from torch import nn

from bench.corpus import make_sentence
from bench.timing import interleaved, markdown_table, median, paired_speedup, per_call

VOCAB_SIZE = 30000  # the training vocabulary's size (minielmo.train's measure() uses the same)


def _step_parts(size: str, batch: int, length: int, vocab_size: int):
    from minielmo import train

    torch.manual_seed(0)
    config = train.SIZES[size]
    # The bench corpus's English words: the char CNN's cost depends on word lengths (the training
    # path skips the padding after the longest word), so made-up short words would flatter it.
    rng = random.Random(0)
    stream = []
    while len(stream) < batch * length:
        stream += make_sentence(rng, length).split()
    words = [stream[row * length:(row + 1) * length] for row in range(batch)]
    known = sorted(set(stream))[:vocab_size - 3]  # (a quick run's small vocabulary leaves some out: <UNK>)
    vocab = train.Vocabulary([train.BOS, train.EOS, train.UNK] + known
                             + ["w%d" % i for i in range(vocab_size - 3 - len(known))])
    char_ids, word_ids = train.tensors_for(words, vocab)
    return train, config, char_ids, word_ids


def full_step_job(size: str, batch: int, length: int, vocab_size: int, min_time: float, fast_path: bool = True):
    """A callable timing one training step (seconds per step), and the targets per step."""
    train, config, char_ids, word_ids = _step_parts(size, batch, length, vocab_size)
    from minielmo.bilm import BiLM

    bilm = BiLM(config, dropout=train.DROPOUT).train()
    bilm.fast_path = fast_path
    softmax = train.SharedSoftmax(config.projection_dim, vocab_size).train()
    optimizer = torch.optim.Adam(list(bilm.parameters()) + list(softmax.parameters()), lr=train.LEARNING_RATE)
    dropout = nn.Dropout(train.DROPOUT)
    targets = []

    def step():
        forward_nll, backward_nll, n = train.bilm_nll(bilm, softmax, char_ids, word_ids, dropout)
        optimizer.zero_grad()
        ((forward_nll + backward_nll) / (2 * n)).backward()
        nn.utils.clip_grad_norm_(list(bilm.parameters()) + list(softmax.parameters()), train.CLIP_NORM)
        optimizer.step()
        targets.append(n)

    step()  # first-call work (allocator growth, kernel choice) is not timed
    return (lambda: per_call(step, min_time)), targets[0], config


def lstm_jobs(config, batch: int, positions: int, min_time: float) -> dict:
    """The biLSTM stack alone, forward + backward + Adam: minielmo's training path, its readable
    LSTM layers and torch.nn.LSTM(proj_size) on the same (B, T+2, P) input."""
    from minielmo import fast_grad
    from minielmo.bilm import BiLM, bilstm_layer

    torch.manual_seed(0)
    P, C = config.projection_dim, config.cell_size
    inputs = torch.randn(batch, positions, P)
    mask = torch.ones(batch, positions, dtype=torch.bool)
    bilm = BiLM(config, dropout=0.0).train()
    ours_params = list(bilm.forward_layers.parameters()) + list(bilm.backward_layers.parameters())
    ours_optimizer = torch.optim.Adam(ours_params)
    directions = [nn.LSTM(P, C, num_layers=config.n_layers, proj_size=P, batch_first=True) for _ in range(2)]
    torch_params = [p for lstm in directions for p in lstm.parameters()]
    torch_optimizer = torch.optim.Adam(torch_params)

    def ours(layer):
        layers, _ = bilm.bilstm_stack(inputs, mask, bilm.initial_states(batch), layer)
        ours_optimizer.zero_grad()
        layers[-1].sum().backward()  # (B, T+2, 2P) -> scalar
        ours_optimizer.step()

    def training_path():
        ours(fast_grad.bilstm_layer)

    def readable():
        ours(bilstm_layer)

    def reference():
        forward_out, _ = directions[0](inputs)  # (B, T+2, P)
        backward_out, _ = directions[1](inputs.flip(1))  # (B, T+2, P), reversed in time
        torch_optimizer.zero_grad()
        (forward_out.sum() + backward_out.sum()).backward()
        torch_optimizer.step()

    training_path(), readable(), reference()
    return {"ours": lambda: per_call(training_path, min_time), "readable": lambda: per_call(readable, min_time),
            "nn.LSTM": lambda: per_call(reference, min_time)}


def matmul_rate(m: int, k: int, n: int, min_time: float, repeats: int) -> float:
    from bench.ceiling import matmul_gflops

    return matmul_gflops(m, k, n, min_time, repeats) * 1e9


def bench_elmo_train(settings, log) -> dict:
    from minielmo import cost

    size = "tiny" if settings.quick else "small"
    batch, length = (4, 5) if settings.quick else (160, 18)  # 160 x 19 targets ~ TOKENS_PER_BATCH
    vocab_size = 200 if settings.quick else VOCAB_SIZE
    log(f"  one training step at size {size!r}, {batch} x {length} words")
    step, targets, config = full_step_job(size, batch, length, vocab_size, settings.min_time)
    readable_step, _, _ = full_step_job(size, batch, length, vocab_size, settings.min_time, fast_path=False)
    lstm = lstm_jobs(config, batch, length + 2, settings.min_time)
    times = interleaved({"step": step, "readable step": readable_step, **lstm}, settings.repeats)

    log("  matmul rates at the step's shapes")
    P, C = config.projection_dim, config.cell_size
    positions = batch * (length + 2)
    big = matmul_rate(positions, P, 4 * C, settings.min_time, settings.repeats)
    small = matmul_rate(batch, P, 4 * C, settings.min_time, settings.repeats)
    macs = cost.forward_macs_per_token(config, vocab_size)
    # LSTM multiply-adds per token: input product (P x 4C) at the big rate; recurrent (P x 4C) and
    # cell-to-projection (C x P) at the one-time-step rate.
    per_direction_layer = {"input": P * 4 * C, "recurrent": P * 4 * C + C * P}
    lstm_steps = 2 * config.n_layers * per_direction_layer["recurrent"]
    rest = macs["total"] - lstm_steps
    bound_s_per_token = 3 * 2 * (rest / big + lstm_steps / small)  # forward + backward, 2 FLOP per MAC
    rows = []
    for name, label in (("step", "training step, training path (char CNN, biLSTM, adaptive softmax, backward, Adam)"),
                        ("readable step", "training step, readable modules (fast_path = False)")):
        step_s = median(times[name])
        rows.append({"what": f"{label}, size {size!r}", "batch": f"{batch} x {length}", "step ms": 1e3 * step_s,
                     "tokens/s": targets / step_s, "matmul-bound tokens/s": 1 / bound_s_per_token,
                     "% of matmul-bound": 100 * bound_s_per_token * targets / step_s})
    lstm_bound = 3 * 2 * 2 * config.n_layers * (per_direction_layer["input"] / big + per_direction_layer["recurrent"] / small)
    for name, label in (("ours", "biLSTM stack only, minielmo training path (clipped)"),
                        ("readable", "biLSTM stack only, minielmo readable modules (clipped)"),
                        ("nn.LSTM", "biLSTM stack only, torch.nn.LSTM(proj_size), 2 per direction")):
        seconds = median(times[name])
        rows.append({"what": label, "batch": f"{batch} x {length + 2}", "step ms": 1e3 * seconds,
                     "tokens/s": positions / seconds, "matmul-bound tokens/s": 1 / lstm_bound,
                     "% of matmul-bound": 100 * lstm_bound * positions / seconds})
    header = list(rows[0])
    markdown = [f"## ELMo training step (size {size!r}, the shipped trained model's)", "",
                markdown_table(header, [[r[h] for h in header] for r in rows]), "",
                f"Matmul rates measured in this run: {big / 1e9:.1f} GFLOP/s at ({positions}, {P}) @ ({P}, {4 * C}) "
                f"(all positions at once), {small / 1e9:.1f} GFLOP/s at ({batch}, {P}) @ ({P}, {4 * C}) "
                f"(one time step). Paired speed-ups: training path over readable modules, whole step "
                f"{paired_speedup(times, 'step', 'readable step'):.2f}x, biLSTM stack "
                f"{paired_speedup(times, 'ours', 'readable'):.2f}x; torch.nn.LSTM over the training path's stack "
                f"{paired_speedup(times, 'nn.LSTM', 'ours'):.2f}x (> 1: nn.LSTM is faster). "
                "nn.LSTM is a speed reference only: no clipping, no masking, no skip connection. "
                + _counted_columns_note(size, batch, length, vocab_size, config, macs["total"]), ""]
    return {"rows": rows, "markdown": markdown, "samples": times}


def _counted_columns_note(size: str, batch: int, length: int, vocab_size: int, config, total_macs: float) -> str:
    """How much of the counted char-CNN work the training path skips on this batch (fast.trim_fill)."""
    from minielmo.fast import trim_fill

    _, _, char_ids, _ = _step_parts(size, batch, length, vocab_size)
    B, T, W = char_ids.shape
    widest = max(width for width, _ in config.filters)
    kept = trim_fill(char_ids.reshape(B * T, W), widest).shape[1]
    E = config.char_embedding_dim
    skipped = sum(count * width * E * (W - kept) for width, count in config.filters)  # per token
    return (f"The bound counts the char CNN on all {W} character columns; the training path skips the padding "
            f"columns past the batch's longest word ({W - kept} of {W} here, {100 * skipped / total_macs:.1f}% "
            "of the counted multiply-adds), so on the work it does its share is that much lower.")
