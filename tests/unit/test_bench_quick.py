"""The speed bench runs end to end (python -m bench --quick). No timing is asserted: on a shared
machine times say nothing about correctness. What is checked is that every section produced its
rows and that the contenders' embeddings agree with sentence-transformers."""

import math

import pytest
import torch

# The bench reports max|ours - sentence-transformers| over unit-length embeddings. 1e-5 is the
# project's tolerance for real MiniLM (measured noise between two correct implementations: ~4e-6).
EMBEDDING_ATOL = 1e-5
# Fast and readable ELMo paths do the same float32 arithmetic in a different order.
ELMO_PATHS_ATOL = 1e-5


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    from bench.run import main

    output = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    results = main(["--quick", "--output", str(output)])
    return results, output


def test_quick_bench_writes_every_table(quick_results):
    results, output = quick_results
    text = output.read_text()
    for heading in ("fp32 matmul ceiling", "Sentence embeddings", "ELMo biLM", "ELMo training step"):
        assert heading in text, f"section {heading!r} missing from {output}"
    rows = results["bert"]["rows"]
    core = {"minibert", "minibert-teaching", "sentence-transformers", "transformers-sdpa"}
    assert core <= set(rows)
    from bench.peers import PEERS

    # every peer either ran or is named on a skip line
    for name, peer in PEERS.items():
        ran, skip_lines = name in rows, [line for line in results["bert"]["skipped"] if line.startswith(peer.name + ":")]
        assert ran != bool(skip_lines), f"{name}: ran={ran}, skip lines {skip_lines}"
    assert "Not judged" in text and "targets, as measured" not in text  # a smoke run claims nothing
    for name, row in rows.items():
        assert row["sent/s"] > 0 and math.isfinite(row["sent/s"]), name
        assert len(row["samples s"]) == 3, f"{name}: expected 3 interleaved repeats"
    assert results["bert"]["memory"]["minibert"]["peak_rss_mb"] > 0


def test_quick_bench_embeddings_match_sentence_transformers(quick_results):
    results, _ = quick_results
    for name, row in results["bert"]["rows"].items():
        assert row["max abs diff vs ST"] <= EMBEDDING_ATOL, f"{name}: {row['max abs diff vs ST']}"


def test_quick_bench_elmo_paths_agree(quick_results):
    results, _ = quick_results
    rows = results["elmo"]["rows"]
    # the fixture model in the bench process and in a fresh one, and the (scaled) original-size
    # hdf5 written by the bench
    assert len(rows) == 3 and "fresh process" in rows[1]["model"]
    for row in rows:
        assert row["fast tok/s"] > 0 and row["readable tok/s"] > 0
    for row in (rows[0], rows[2]):  # the fresh-process row reports rates only
        assert row["max abs diff fast vs readable"] <= ELMO_PATHS_ATOL, row["model"]


def test_quick_profile_puts_every_millisecond_in_a_bucket():
    """python -m bench.profile --quick: both sections, matmul time seen, shares adding up to 100%."""
    from bench.profile import BUCKETS, main

    markdown = main(["--quick"])
    assert "## Sentence embeddings" in markdown and "## ELMo" in markdown
    tables = [line for line in markdown.splitlines() if line.startswith("| ")]
    for table_start in (i for i, line in enumerate(tables) if line.startswith("| bucket")):
        rows = {line.split(" | ")[0][2:]: [float(v) for v in line.strip(" |").split(" | ")[1:]]
                for line in tables[table_start + 1:table_start + 2 + len(BUCKETS)] if not line.startswith("|---")}
        assert list(rows) == BUCKETS + ["total"]
        columns = len(rows["total"]) // 2
        assert all(value > 0 for value in rows["matmul"][:columns])
        for column in range(columns):  # the buckets' shares add up to the whole
            # shares are printed with one decimal: the sum of 8 may be off by 8 x 0.05
            assert abs(sum(rows[key][columns + column] for key in BUCKETS) - 100.0) <= 0.4


def test_paired_speedup_cancels_drift_between_repeats():
    """Timings that drift 5x between repeats: the median of per-repeat ratios stays 2. In the second
    case one slow sample fell in a quiet spell; the ratio of the two medians (2 s / 5 s) would say
    the fast side is 2.5x *slower*."""
    from bench.timing import paired_speedup

    samples = {"fast": [1.0, 5.0, 2.5], "slow": [2.0, 10.0, 5.0]}
    assert paired_speedup(samples, "fast", "slow") == 2.0
    drifting = {"fast": [1.0, 5.0, 5.0], "slow": [2.0, 2.0, 10.0]}  # one repeat where slow ran in a quiet spell
    assert paired_speedup(drifting, "fast", "slow") == 2.0


def test_quick_bench_times_a_training_step_and_the_lstm_reference(quick_results):
    results, _ = quick_results
    rows = results["elmo_train"]["rows"]
    assert [row["what"].split(",")[:2] for row in rows] == [
        ["training step", " training path (char CNN"], ["training step", " readable modules (fast_path = False)"],
        ["biLSTM stack only", " minielmo training path (clipped)"],
        ["biLSTM stack only", " minielmo readable modules (clipped)"],
        ["biLSTM stack only", " torch.nn.LSTM(proj_size)"]]
    for row in rows:
        assert row["tokens/s"] > 0 and 0 < row["% of matmul-bound"] < math.inf, row["what"]


def test_approx_retrieval_accuracy_counts_own_word_first():
    """Gloss i must retrieve word i: identity vectors score 1, a swapped pair loses two of four."""
    import numpy as np

    from bench.approx import retrieval_accuracy

    words = np.eye(4, dtype=np.float32)
    assert retrieval_accuracy(words, words) == 1.0
    assert retrieval_accuracy(words[[1, 0, 2, 3]], words) == 0.5


def test_approx_reads_wordnet_glosses():
    from bench.approx import WORDNET_NOUNS, wordnet_pairs

    if not WORDNET_NOUNS.is_file():
        pytest.skip("Debian's wordnet-base is not installed")
    glosses, words = wordnet_pairs(50)
    assert len(glosses) == len(words) == 50
    assert all("_" not in w and len(g.split()) >= 3 for g, w in zip(glosses, words))
    assert wordnet_pairs(50) == (glosses, words)  # seeded: the same synsets every run


def test_approx_verdict_names_only_modes_faster_than_fp32():
    from bench.approx import verdict

    assert verdict({"fp32 (fast path)": 1.0, "fp32 (readable path)": 0.8, "bfloat16": 0.04}).startswith(
        "Worth shipping on this CPU: none")
    line = verdict({"fp32 (fast path)": 1.0, "int8 (dynamic)": 1.3, "float16": 0.9})
    assert "int8 (dynamic) (1.30x)" in line and "float16" not in line


def test_elmo_training_loop_section_runs_and_reports_both_rates(capsys):
    from bench import elmo_loop

    result = elmo_loop.main(["--quick"])
    assert result["step_bound_tokens_per_s"] > 0 and result["loop_tokens_per_s"] > 0
    assert result["loop_share"] > 0 and result["batch_build_ms"] > 0
    assert "not judged in a quick run" in capsys.readouterr().out
    if not torch.cuda.is_available():  # without a GPU the CUDA section says so and returns nothing
        assert elmo_loop.main(["--device", "cuda"]) is None
        assert "skipped, no CUDA device" in capsys.readouterr().out
