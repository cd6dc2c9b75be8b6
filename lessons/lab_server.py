"""The lab's local HTTP server: `python -m lessons lab`. The computations it serves are
lessons.lab.Lab; this module only checks requests, routes them and writes answers.

The standard library's http.server: the page needs three routes and one JSON call, which a
framework would not make shorter. Any web page the learner visits can send requests to
127.0.0.1, so the server is as careful as Jupyter's local server is (minus the token):

- the Host header must name the lab itself (127.0.0.1, localhost or [::1] with its port, or a
  name given with --allow-host), which closes DNS rebinding: a foreign site whose name
  resolves to 127.0.0.1 still sends its own name;
- a POST must come from the lab's own origin (an Origin header, when there is one, must be the
  lab's) and carry application/json, which no cross-origin page can send without a CORS
  preflight; preflights (OPTIONS) get BaseHTTPRequestHandler's 501, and no response carries an
  Access-Control-Allow-* header, so another origin can never read an answer;
- the JSON routes and the explorer refuse requests a browser marks as coming from another
  origin (Sec-Fetch-Site), so a foreign page cannot make the lab run its models either;
- the pages run only their own inline script (a Content-Security-Policy with its hash), talk
  only to the lab, and cannot be framed;
- one thread per connection, at most MAX_CONNECTIONS (past that, an immediate 503); the request
  line and headers must arrive within HEADER_TIMEOUT_S in all (not per packet: a client
  trickling a byte at a time still runs out) and the body within BODY_TIMEOUT_S; HTTP/1.0, so an
  answered connection closes and nobody idles on it;
- the request log goes through a bounded queue to a thread of its own: a stderr nobody reads (a
  full pipe, a paused terminal) cannot stall a request.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import queue
import re
import signal
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import torch

from .lab import MAX_BODY_BYTES, MAX_SENTENCE_CHARS, MAX_SENTENCES, Lab, LabError, parse_compare

PAGE = "lab.html"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
# Past this many open connections a new one gets an immediate 503; each holds one thread, so this
# bounds the threads. Far above what one learner's browser opens (Chromium: 6 per host).
MAX_CONNECTIONS = 256
# Kernel queue of connections not yet accepted; the standard 5 drops a burst of connects.
LISTEN_BACKLOG = 128
# The request line and all headers within this, in all. A browser sends them in one packet.
HEADER_TIMEOUT_S = 10
# The body within this once the headers are in: MAX_BODY_BYTES arrive in one or two packets.
BODY_TIMEOUT_S = 10
# A client that does not read its answer cannot hold the thread past this.
WRITE_TIMEOUT_S = 10
# A client that sends a body over the limit still gets its 413: the server reads and drops up to
# this much first (closing a socket with unread data makes the kernel reset the connection, which
# can throw the answer away before the client reads it). Past this, it just closes.
MAX_DRAIN_BYTES = 1024 * 1024
LOG_QUEUE = 1000  # request-log lines waiting for stderr; more are dropped, and counted
# Sec-Fetch-Site values of requests the lab's own page makes, or the learner types ("none").
OWN_FETCH_SITES = ("same-origin", "none")
GET_ROUTES = ("/", "/api/info", "/explorer")
POST_ROUTES = ("/api/compare",)
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        b'{"error": "the lab has too many open connections; try again"}')


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str, allow: str | None = None):
        super().__init__(message)
        self.status = status
        self.allow = allow  # the Allow header of a 405


def page_csp(html: str) -> str:
    """A Content-Security-Policy that runs only the page's own inline scripts (by their SHA-256),
    so a script that user text might smuggle into the page would not run."""
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                      for s in scripts)
    return (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class DeadlineReader(io.RawIOBase):
    """A socket's input with one deadline for a whole phase (the headers, then the body), not per
    read: socket timeouts restart with every packet, so a client trickling bytes would never hit
    one."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.deadline = time.monotonic()

    def allow(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the client took too long to send its request")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class RequestLog:
    """Log lines written to stderr by a thread of their own, through a bounded queue."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.stream = sys.stderr
        self.lines: queue.Queue[str] = queue.Queue(LOG_QUEUE)
        self.dropped = 0
        if not quiet:
            threading.Thread(target=self._write, name="lab-log", daemon=True).start()

    def __call__(self, line: str) -> None:
        if self.quiet:
            return
        try:
            self.lines.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def _write(self) -> None:
        while True:
            line = self.lines.get()
            if self.dropped:
                line, self.dropped = f"({self.dropped} log lines dropped: stderr was not being read)\n{line}", 0
            self.stream.write(line + "\n")
            self.stream.flush()


class LabServer(ThreadingHTTPServer):
    """The lab on (host, port); port 0 picks a free one (server_port)."""

    daemon_threads = True  # Ctrl-C does not wait for a slow client
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, lab: Lab, host: str = "127.0.0.1", port: int = 0, quiet: bool = False,
                 allow_hosts: tuple[str, ...] = ()):
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.lab = lab
        self.log = RequestLog(quiet)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.lab_page = resources.files("lessons").joinpath(PAGE).read_text(encoding="utf-8")
        self.lab_page_csp = page_csp(self.lab_page)
        super().__init__((host, port), LabHandler)
        names = {*LOOPBACK, *(h.lower() for h in allow_hosts)}
        if host not in ("0.0.0.0", "::"):
            names.add(f"[{host}]" if ":" in host else host.lower())
        self.hosts = {f"{name}:{self.server_port}" for name in names}
        self.origins = {f"http://{h}" for h in self.hosts}

    def address(self) -> str:
        """The page's URL."""
        host = self.server_address[0]
        return f"http://[{host}]:{self.server_port}/" if ":" in host else f"http://{host}:{self.server_port}/"

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address):
        """A connection that failed outside the routes (the client left mid-answer): one log line
        through the queue, where socketserver would print a traceback to stderr."""
        self.log(f"error on a connection from {client_address[0]}: {sys.exc_info()[1]!r}")


class LabHandler(BaseHTTPRequestHandler):
    """Routes: GET / (the page), GET /api/info, GET /explorer?sentence=..., POST /api/compare.
    Every refusal, BaseHTTPRequestHandler's own included, is a JSON {"error": message}."""

    server: LabServer
    server_version = "minicontext-lab"
    drain = 0  # bytes of an unread body to read and drop after answering (see MAX_DRAIN_BYTES)

    def setup(self):
        self.connection = self.request
        self.reader = DeadlineReader(self.connection)
        self.reader.allow(HEADER_TIMEOUT_S)
        self.rfile = io.BufferedReader(self.reader)
        self.wfile = self.connection.makefile("wb", buffering=0)

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def dispatch(self) -> None:
        try:
            self.route()
        except HttpError as error:
            self.send_json({"error": str(error)}, error.status, error.allow)
        except LabError as error:
            self.send_json({"error": str(error)}, HTTPStatus.BAD_REQUEST)
        except Exception as error:  # a bug, not bad input: say so, keep serving
            self.log_error("internal error on %s %s: %r", self.command, self.path, error)
            self.send_json({"error": f"internal error: {type(error).__name__}: {error}"},
                           HTTPStatus.INTERNAL_SERVER_ERROR)

    def check_sender(self, path: str) -> None:
        """Refuse what a foreign page or a rebound DNS name could send (see the module docstring)."""
        host = self.headers.get("Host")
        if host is None:
            raise HttpError(HTTPStatus.BAD_REQUEST, "the request has no Host header")
        if host.lower() not in self.server.hosts:
            raise HttpError(HTTPStatus.FORBIDDEN, f"the lab answers only to its own address, not Host {host[:80]!r} "
                                                  "(python -m lessons lab --allow-host NAME adds a name)")
        origin = self.headers.get("Origin")
        if self.command == "POST" and origin is not None and origin.lower() not in self.server.origins:
            raise HttpError(HTTPStatus.FORBIDDEN, f"the lab takes requests only from its own page, "
                                                  f"not from {origin[:80]!r}")
        site = self.headers.get("Sec-Fetch-Site")
        if path != "/" and site is not None and site not in OWN_FETCH_SITES:
            raise HttpError(HTTPStatus.FORBIDDEN, "the lab takes requests only from its own page")

    def route(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        self.check_sender(path)
        # Exact matches only: nothing here maps a request path onto the file system.
        allowed = [m for m, routes in (("GET", GET_ROUTES), ("POST", POST_ROUTES)) if path in routes]
        if not allowed:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such page: {path[:80]!r}")
        if self.command not in allowed:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {' or '.join(allowed)}, not {self.command}",
                            allow=", ".join(allowed))
        lab = self.server.lab
        if path == "/":
            self.send_page(self.server.lab_page, self.server.lab_page_csp)
        elif path == "/api/info":
            self.send_json(lab.info())
        elif path == "/explorer":
            try:
                query = parse_qs(url.query, max_num_fields=4)
            except ValueError:  # more fields than that
                raise HttpError(HTTPStatus.BAD_REQUEST, "give one sentence: /explorer?sentence=...") from None
            sentences = query.get("sentence", [])
            if len(sentences) != 1:
                raise HttpError(HTTPStatus.BAD_REQUEST, "give one sentence: /explorer?sentence=...")
            page = lab.explorer_html(sentences[0])
            self.send_page(page, page_csp(page))
        else:
            self.send_json(lab.answer(parse_compare(self.read_json())))

    def read_json(self):
        if self.headers.get("Transfer-Encoding"):
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked")
        length = self.headers.get("Content-Length")
        if length is None:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length header")
        try:
            size = int(length)
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"Content-Length {length[:20]!r} is not a number") from None
        if size < 0:
            raise HttpError(HTTPStatus.BAD_REQUEST, "Content-Length is negative")
        if size > MAX_BODY_BYTES:
            self.drain = size
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"the request is {size} bytes; the lab takes at most {MAX_BODY_BYTES} "
                            f"({MAX_SENTENCES} sentences of {MAX_SENTENCE_CHARS} characters fit)")
        if self.headers.get_content_type() != "application/json":
            # Also keeps other web sites from posting here: a cross-origin JSON POST needs a CORS
            # preflight, which this server never grants.
            self.drain = size
            raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
        self.reader.allow(BODY_TIMEOUT_S)
        try:
            body = self.rfile.read(size)
        except TimeoutError:
            raise HttpError(HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {BODY_TIMEOUT_S} s") from None
        if len(body) < size:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of {size} bytes")
        try:
            return json.loads(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body is not UTF-8 text") from None
        except ValueError as error:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {error}") from None
        except RecursionError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON: nested too deeply") from None

    def send_error(self, code, message=None, explain=None):
        """BaseHTTPRequestHandler's own refusals (a malformed request line, headers too long, a
        method no route takes: PUT, OPTIONS, ...) in the lab's JSON form."""
        self.close_connection = True
        self.log_error("code %d, message %s", code, message)
        status = HTTPStatus(code)
        self.send_json({"error": message or status.phrase}, status)

    def send_json(self, payload, status: HTTPStatus = HTTPStatus.OK, allow: str | None = None) -> None:
        self.send(json.dumps(payload, allow_nan=False).encode("utf-8"), "application/json", JSON_CSP, status, allow)

    def send_page(self, html: str, csp: str) -> None:
        self.send(html.encode("utf-8"), "text/html; charset=utf-8", csp)

    def send(self, body: bytes, content_type: str, csp: str, status: HTTPStatus = HTTPStatus.OK,
             allow: str | None = None) -> None:
        self.connection.settimeout(WRITE_TIMEOUT_S)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", csp)
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Referrer-Policy", "no-referrer")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        self.wfile.write(body)
        self.drain_body()

    def drain_body(self) -> None:
        """Read and drop an unread body, up to MAX_DRAIN_BYTES (see there), within BODY_TIMEOUT_S."""
        left = min(self.drain, MAX_DRAIN_BYTES)
        self.reader.allow(BODY_TIMEOUT_S)
        while left > 0:
            try:
                chunk = self.rfile.read1(min(left, 65536))
            except OSError:  # TimeoutError included
                break
            if not chunk:
                break
            left -= len(chunk)

    def log_message(self, format, *args):
        self.server.log(f"{self.address_string()} - - [{self.log_date_time_string()}] {format % args}")


@contextlib.contextmanager
def serving(lab: Lab, host: str = "127.0.0.1", port: int = 0, quiet: bool = True):
    """Serve `lab` from a background thread for the duration of a `with` block (a notebook or a
    test keeps its own thread free); yields the server, whose address() is the page's URL."""
    server = LabServer(lab, host, port, quiet=quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def bind_warning(host: str) -> str | None:
    if host in ("127.0.0.1", "localhost", "::1"):
        return None
    return (f"warning: binding to {host} lets other machines reach the lab; it has no "
            "authentication and runs the models for anyone who connects")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lessons lab",
                                     description="Start the lab: a local page to compare GloVe, ELMo "
                                                 "and BERT vectors of one word across your sentences.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: only this machine can connect)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="another name the page may be opened by (e.g. the machine's name when "
                             "--host is 0.0.0.0); repeat for several (default: only 127.0.0.1, "
                             "localhost and [::1])")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: a request is a handful of short sentences, "
                             "and on a busy machine a second thread mostly waits for a core)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is out of range 0-65535")
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C stops the lab even when its shell started it with SIGINT ignored (a background
        # job), and `kill` (SIGTERM) takes the same clean way out.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    warning = bind_warning(args.host)
    if warning:
        print(warning, file=sys.stderr)
    try:
        print("loading GloVe, MiniLM, the sentence encoder and ELMo ...", flush=True)
        lab = Lab()
        try:
            server = LabServer(lab, args.host, args.port, args.quiet, tuple(args.allow_host))
        except OSError as error:
            print(f"error: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
            return 2
        with server:
            print(f"lab running at {server.address()}  (Ctrl-C to stop)", flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
    except KeyboardInterrupt:
        pass
    print("\nlab stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
