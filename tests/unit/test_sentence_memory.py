"""SentenceEncoder.encode's memory does not grow with the number of texts beyond the result.

Each measurement runs in a fresh Python process (peak RSS only ever grows within one), on a
small random-weight BERT with the real all-MiniLM-L6-v2 tokenizer and texts of ~400 words (about
500 word pieces, cut to 256): the part of encode whose memory could grow with N is reading and
tokenizing the texts, which this model leaves as most of the work. bench/memory.py measures the
real model beside sentence-transformers.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SMALL_N, LARGE_N = 150, 1500
# Keeping every text's tokenization until the end, as encode once did, costs ~81 KiB per long
# text (bench/MEMORY.md): ~107 MiB more for LARGE_N than for SMALL_N. Chunked, both peaks were
# within 1 MiB of each other here (measured 15.5 and 14.8 MiB of growth); 25 MiB leaves room for
# allocator noise while catching a quarter of that regression.
PEAK_GROWTH_SLACK_MB = 25
# After encode returns, the freed chunk memory has been handed back (malloc_trim): measured 3-4
# MiB held, against 11 MiB without the trim.
HELD_AFTER_MB = 8

CHILD = """
import json, random, sys
import torch
from bench.corpus import make_sentence
from bench.timing import current_rss_mb, peak_rss_mb
import pooling
from minibert import BertConfig, BertModel, SentenceEncoder, Tokenizer

torch.manual_seed(0)
tokenizer = Tokenizer.from_pretrained("all-MiniLM-L6-v2")
config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=64)
encoder = SentenceEncoder(BertModel(config), tokenizer, pooling.PoolingConfig(32, ("mean",)), 256, True)

def texts(n, seed):
    rng = random.Random(seed)
    for _ in range(n):
        yield make_sentence(rng, 400)

encoder.encode(list(texts(32, 1)), batch_size=8)  # warm-up
before = current_rss_mb()
vectors = encoder.encode(texts(int(sys.argv[1]), 0), batch_size=8)
print(json.dumps({"growth": peak_rss_mb() - before, "held": current_rss_mb() - before,
                  "result_mb": vectors.nbytes / 2**20}))
"""


def measure(n: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(n)], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM/VmRSS from /proc")
def test_peak_memory_does_not_grow_with_the_number_of_texts():
    small, large = measure(SMALL_N), measure(LARGE_N)
    extra = large["growth"] - small["growth"] - (large["result_mb"] - small["result_mb"])
    assert extra < PEAK_GROWTH_SLACK_MB, f"{LARGE_N} texts grew the peak {extra:.1f} MiB more than {SMALL_N} texts"
    assert large["held"] - large["result_mb"] < HELD_AFTER_MB, f"{large['held']:.1f} MiB still held after encode"
