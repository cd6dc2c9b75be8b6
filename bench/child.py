"""Measure one contender's memory and cold start in a fresh process: python -m bench.child KIND NAME.

Peak RSS (ru_maxrss) only ever grows, so in the main bench process it would report whichever
contender ran first or was largest. Each contender therefore runs alone in its own child: import
its libraries, load the model, encode the corpus once; the child prints one JSON line with the
RSS after imports, after loading, the peak, and the cold import / load times.
"""

import argparse
import json
import time

from bench.timing import current_rss_mb, peak_rss_mb


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["bert"])
    parser.add_argument("name")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from bench.corpus import make_corpus

    from bench.bert import CONTENDERS
    from bench.peers import PEERS

    contender = {**CONTENDERS, **PEERS}[args.name]()
    contender.import_libraries()
    if hasattr(contender, "prepare"):
        contender.prepare()  # a peer's converted model: built by the parent already, found in the cache
    corpus = make_corpus(args.sentences, args.seed)
    import_s = time.perf_counter() - start
    rss_after_import = current_rss_mb()

    start = time.perf_counter()
    contender.load()
    load_s = time.perf_counter() - start
    rss_after_load = current_rss_mb()

    contender.encode(corpus)
    print(json.dumps({
        "import_s": import_s,
        "load_s": load_s,
        "rss_after_import_mb": rss_after_import,
        "rss_after_load_mb": rss_after_load,
        "peak_rss_mb": peak_rss_mb(),
    }))


if __name__ == "__main__":
    main()
