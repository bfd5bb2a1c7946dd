"""A small OpenAI-compatible chat-completions server for tests (127.0.0.1, ephemeral port).

Standard library only. Behaviour is programmable per request with ``server.responder``:
a function ``(request_json, index) -> Reply``. Helpers build decision answers, slow answers,
HTTP errors with Retry-After, timeouts (a long delay) and malformed JSON.
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """What the server sends back for one request."""

    status: int = 200
    body: object = None  # dict -> JSON; str/bytes -> raw
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


def completion(content: str, model: str = "gpt-4o", prompt_tokens: int = 700,
               completion_tokens: int = 60) -> dict:
    """A chat.completion body whose message content is ``content``."""
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def decision(decision: str, confidence: float = 0.9, reasoning: str = "test reasoning",
             delay: float = 0.0, model: str = "gpt-4o") -> Reply:
    """A well-formed JSON decision."""
    content = json.dumps({"decision": decision, "confidence": confidence,
                          "reasoning": reasoning})
    return Reply(body=completion(content, model=model), delay=delay)


def error(status: int, retry_after: float | None = None, message: str = "error") -> Reply:
    """An OpenAI-style error body with an optional Retry-After header."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Reply(status=status, headers=headers,
                 body={"error": {"message": message, "type": "test_error", "code": status}})


def malformed_content(text: str = "I think they look similar {decision: maybe") -> Reply:
    """A valid completion whose content is not a parseable decision."""
    return Reply(body=completion(text))


def malformed_body() -> Reply:
    """HTTP 200 with a body that is not JSON."""
    return Reply(body=b"{this is not json", headers={"Content-Type": "application/json"})


_PAIR_RE = re.compile(r"cluster (\d+), unit B = cluster (\d+)")


def pair_of(request: dict) -> tuple[int, int] | None:
    """The (A, B) cluster ids of the pair being judged, read from the last user message."""
    for msg in reversed(request.get("messages", [])):
        content = msg.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for p in parts:
            m = _PAIR_RE.search(str(p.get("text", "")))
            if m:
                return int(m.group(1)), int(m.group(2))
    return None


def image_urls(request: dict) -> list[str]:
    """All image URLs in a request, in order."""
    out = []
    for msg in request.get("messages", []):
        if isinstance(msg.get("content"), list):
            out += [p["image_url"]["url"] for p in msg["content"] if p.get("type") == "image_url"]
    return out


class FakeChatServer:
    """Threaded HTTP server implementing POST /v1/chat/completions."""

    def __init__(self, responder=None):
        self.responder = responder or (lambda req, i: decision("merge"))
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._count = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(Reply(404, {"error": {"message": "not found"}}))
                    return
                try:
                    req = json.loads(raw)
                except ValueError:
                    self._send(Reply(400, {"error": {"message": "bad json"}}))
                    return
                with server._lock:
                    index = server._count
                    server._count += 1
                    server.requests.append(req)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server.responder(req, index)
                    if reply.delay:
                        time.sleep(reply.delay)
                    self._send(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, reply: Reply):
                body = reply.body
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                elif isinstance(body, str):
                    body = body.encode()
                body = body or b""
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        """Base URL for the openai client."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeChatServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def n_requests(self) -> int:
        with self._lock:
            return self._count
