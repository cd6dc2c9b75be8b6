"""The FLOP ceiling: what fp32 matmul alone achieves at each model's own shapes, in this run.

A contender's "fraction of ceiling" is its throughput divided by the throughput a model would have
if its matmuls ran at the measured GFLOP/s and everything else (softmax, GELU, LayerNorm, gates,
Python) were free. Measuring in the same process and run as the contenders makes the ratio
meaningful on a shared machine where absolute GFLOP/s drift.
"""

import torch

from bench.timing import median, per_call

# One MiniLM layer's linears as (in, out, count): query, key, value and the attention output
# projection are 384x384; the feed-forward block is 384->1536->384.
MINILM_LINEARS = {
    "attn 384x384 (x4)": (384, 384, 4),
    "ffn_in 384x1536": (384, 1536, 1),
    "ffn_out 1536x384": (1536, 384, 1),
}


def matmul_gflops(m: int, k: int, n: int, min_time: float, repeats: int) -> float:
    """fp32 GFLOP/s of (m, k) @ (k, n), median over `repeats` timings of >= `min_time` s each."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen)
    b = torch.randn(k, n, generator=gen)
    out = torch.empty(m, n)
    times = [per_call(lambda: torch.mm(a, b, out=out), min_time) for _ in range(repeats)]
    return 2 * m * k * n / median(times) / 1e9


def bmm_gflops(batch: int, m: int, k: int, n: int, min_time: float, repeats: int) -> float:
    """fp32 GFLOP/s of a batched (batch, m, k) @ (batch, k, n)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(batch, m, k, generator=gen)
    b = torch.randn(batch, k, n, generator=gen)
    out = torch.empty(batch, m, n)
    times = [per_call(lambda: torch.bmm(a, b, out=out), min_time) for _ in range(repeats)]
    return 2 * batch * m * k * n / median(times) / 1e9


def minilm_ceiling(lengths: list[int], batch_tokens: int, num_layers: int, num_heads: int,
                   min_time: float, repeats: int) -> dict:
    """Seconds the corpus would take if MiniLM were only its matmuls, at measured rates.

    `lengths` are the real (unpadded) token counts, so padding is counted as waste, not as work.
    Linears are timed at `batch_tokens` rows (a typical batch of 32 sentences); the two attention
    matmuls (QK^T and PV) at a typical sentence length.
    """
    rates, seconds_total = {}, 0.0
    tokens = sum(lengths)
    for name, (k, n, count) in MINILM_LINEARS.items():
        rates[name] = matmul_gflops(batch_tokens, k, n, min_time, repeats)
        flops = 2 * tokens * k * n * count * num_layers
        seconds_total += flops / (rates[name] * 1e9)
    hidden = MINILM_LINEARS["ffn_in 384x1536"][0]
    head_dim = hidden // num_heads
    typical = round(sum(lengths) / len(lengths))
    name = f"attn QK^T,PV ({32 * num_heads}x{typical}x{head_dim})"
    rates[name] = bmm_gflops(32 * num_heads, typical, head_dim, typical, min_time, repeats)
    attention_flops = sum(2 * 2 * t * t * hidden for t in lengths) * num_layers
    seconds_total += attention_flops / (rates[name] * 1e9)
    linear_flops = 2 * sum(k * n * c for k, n, c in MINILM_LINEARS.values()) * num_layers
    return {
        "rates_gflops": rates,
        "seconds": seconds_total,
        "mflop_per_token": (linear_flops * tokens + attention_flops) / tokens / 1e6,
        "sentences_per_s": len(lengths) / seconds_total,
    }


def elmo_dense_ops(options: dict, batch: int, steps: int):
    """A callable running only the matmuls of one biLM forward pass, at that model's shapes.

    Per convolution width w, the matmul of unfolded character windows (B*T*(W-w+1), w*E) @
    (w*E, K_w); the highway and projection matmuls; the LSTM's input projection for all steps
    at once; and per step the recurrent matmul for both directions (one batched matmul, the
    cheapest arrangement) and the cell-to-projection matmul. No embedding lookup, unfolding,
    max-pool, nonlinearity, gate, clipping, masking or bookkeeping: this is the "matmul-bound"
    time the fast path is measured against.
    """
    gen = torch.Generator().manual_seed(0)
    cnn, lstm = options["char_cnn"], options["lstm"]
    chars, emb = cnn["max_characters_per_token"], cnn["embedding"]["dim"]
    n_filters = sum(num for _, num in cnn["filters"])
    proj, cell, layers = lstm["projection_dim"], lstm["dim"], lstm["n_layers"]
    tokens = batch * (steps + 2)  # the biLM adds <S> and </S>
    rand = lambda *shape: torch.randn(*shape, generator=gen) * 0.01  # noqa: E731
    windows = [(rand(tokens * (chars - width + 1), width * emb), rand(width * emb, num))
               for width, num in cnn["filters"]]
    highway_input = rand(tokens, n_filters)
    highway = [rand(n_filters, n_filters) for _ in range(2 * cnn["n_highway"])]  # transform and gate
    cnn_proj = rand(n_filters, proj)
    w_input = rand(2, proj, 4 * cell)  # both directions
    w_hidden = rand(2, proj, 4 * cell)
    w_proj = rand(2, cell, proj)
    hidden = torch.zeros(2, batch, proj)
    memory = torch.zeros(2, batch, cell)
    # Outputs are preallocated (out=): the reference times the matmuls and nothing else, not even
    # fresh allocations.
    conv_out = [torch.empty(unfolded.shape[0], kernel.shape[1]) for unfolded, kernel in windows]
    highway_out = torch.empty(tokens, n_filters)
    x = torch.empty(tokens, proj)
    gates_all = torch.empty(2, tokens, 4 * cell)
    gates_step = torch.empty(2, batch, 4 * cell)
    projected = torch.empty(2, batch, proj)

    def run():
        for (unfolded, kernel), out in zip(windows, conv_out):
            torch.mm(unfolded, kernel, out=out)  # (B*T*(W-w+1), w*E) @ (w*E, K_w)
        for w in highway:
            torch.mm(highway_input, w, out=highway_out)  # (B*T, F) @ (F, F)
        torch.mm(highway_input, cnn_proj, out=x)  # (B*T, F) -> (B*T, P)
        for _ in range(layers):
            seq = x.view(1, tokens, proj).expand(2, tokens, proj)
            torch.bmm(seq, w_input, out=gates_all)  # (2, B*T, P) -> (2, B*T, 4C)
            for _ in range(steps + 2):
                torch.bmm(hidden, w_hidden, out=gates_step)  # (2, B, P) -> (2, B, 4C)
                torch.bmm(memory, w_proj, out=projected)  # (2, B, C) -> (2, B, P)
    return run
