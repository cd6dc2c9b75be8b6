"""What one training step of the biLM costs: multiply-adds per token by component, the float32
matmul ceiling at the biLM's own shapes, and measured training tokens/s with the adaptive and with
a full softmax. `python -m minielmo.cost --size small` prints all three; the shipped
size and softmax were chosen from them (docs/elmo_model_card.md), and bench/elmo_train.py reuses
the count to report a step's share of the matmul-bound rate.
"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn

from .bilm import BiLM
from .cli import OneLineParser
from .config import ElmoConfig
from .lm_head import DIV_VALUE, SharedSoftmax, cutoffs_for
from .train import BOS, DROPOUT, EOS, SIZES, UNK, Vocabulary, bilm_nll, tensors_for


def forward_macs_per_token(config: ElmoConfig, vocab_size: int, tail_shares=(0.12, 0.044)) -> dict:
    """Multiply-adds per token of one forward pass, by component (a training step costs about 3x:
    the backward pass computes two products per forward one). `tail_shares` are the fractions of
    targets in the adaptive softmax's two tail clusters (measured on the training text: 12% of
    running words have frequency ranks 2,000-10,000 and 4.4% ranks 10,000-30,000)."""
    W, E, P, C, K = (config.max_characters_per_token, config.char_embedding_dim,
                     config.projection_dim, config.cell_size, config.num_filters)
    char_cnn = sum(count * width * E * (W - width + 1) for width, count in config.filters)
    highway = config.n_highway * 2 * K * K
    lstm = 2 * config.n_layers * ((P + P) * 4 * C + C * P)  # 2 directions; input + recurrent + W_P
    edges = [*cutoffs_for(vocab_size), vocab_size]
    head, tails = edges[0], [b - a for a, b in zip(edges, edges[1:])]
    softmax = P * (head + len(tails))
    for k, (share, size) in enumerate(zip(tail_shares, tails)):
        reduced = int(P // DIV_VALUE ** (k + 1))  # as AdaptiveLogSoftmaxWithLoss sizes its clusters
        softmax += share * (P * reduced + reduced * size)
    parts = {"char_cnn": char_cnn, "highway": highway, "projection": K * P, "lstm": lstm,
             "softmax (both directions)": 2 * softmax}
    parts["total"] = sum(parts.values())
    return parts


def matmul_ceiling(rows: int, inner: int, cols: int, repeats: int = 20) -> float:
    """FLOP/s of a plain float32 matmul at a shape the biLM uses (the rate no step can beat)."""
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    torch.mm(a, b)
    begin = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * rows * inner * cols * repeats / (time.perf_counter() - begin)


def print_cost_model(size: str, vocab_size: int = 30000, batch: int = 160, length: int = 18) -> None:
    """The counted cost: multiply-adds per token by component, and the matmul-bound rate."""
    config = SIZES[size]
    macs = forward_macs_per_token(config, vocab_size)
    step_flop = 3 * 2 * macs["total"]  # forward + backward, 2 FLOP per multiply-add
    print("forward multiply-adds per token: " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in macs.items()))
    print("measuring the fp32 matmul ceiling ...", file=sys.stderr, flush=True)
    ceiling = matmul_ceiling(batch * (length + 2), 2 * config.projection_dim, 4 * config.cell_size)
    print(f"training FLOP per token ~{step_flop / 1e6:.1f}M; matmul ceiling at the LSTM input shape "
          f"{ceiling / 1e9:.1f} GFLOP/s -> at most {ceiling / step_flop:,.0f} training tokens/s", flush=True)


def measure(size: str, vocab_size: int = 30000, steps: int = 4, batch: int = 160, length: int = 18) -> None:
    """Training tokens/s for one size, with the adaptive and with a full softmax (random data).
    Each step can take seconds on a small CPU: a progress line on stderr says which."""
    torch.manual_seed(0)
    config = SIZES[size]
    words = [["w%d" % (i * 7 % 997) for i in range(length)] for _ in range(batch)]
    vocab = Vocabulary([BOS, EOS, UNK] + ["w%d" % i for i in range(vocab_size - 3)])
    char_ids, word_ids = tensors_for(words, vocab)
    for name in ("adaptive", "full"):
        bilm = BiLM(config, dropout=DROPOUT)
        softmax = SharedSoftmax(config.projection_dim, vocab_size)
        if name == "full":
            full = nn.Linear(config.projection_dim, vocab_size)
            softmax.forward = lambda h, t: nn.functional.cross_entropy(full(h), t, reduction="sum")
            params = list(bilm.parameters()) + list(full.parameters())
        else:
            params = list(bilm.parameters()) + list(softmax.parameters())
        optimizer = torch.optim.Adam(params)
        times = []
        for step in range(steps):
            print(f"\r{size}, {name} softmax: training step {step + 1}/{steps} (the first one warms up) ",
                  end="", file=sys.stderr, flush=True)
            begin = time.perf_counter()
            f, b, n = bilm_nll(bilm, softmax, char_ids, word_ids, nn.Dropout(DROPOUT))
            optimizer.zero_grad()
            ((f + b) / (2 * n)).backward()
            optimizer.step()
            times.append(time.perf_counter() - begin)
        best = min(times[1:])
        print(file=sys.stderr)
        print(f"{size} {name:8} softmax: {n / best:,.0f} training tokens/s "
              f"({n} targets per step, {best * 1000:.0f} ms)", flush=True)


def main(argv=None) -> None:
    parser = OneLineParser("python -m minielmo.cost", __doc__)
    parser.add_argument("--size", default="small", choices=sorted(SIZES), help="model size (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print_cost_model(args.size)
    measure(args.size)


if __name__ == "__main__":
    main()
