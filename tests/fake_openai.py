"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for fault tests (errors, 429s, dropped
connections) that a real server cannot be made to produce on cue."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    """One scripted answer: an HTTP status with headers and body, or `drop` to close the connection
    without answering; `delay` holds the answer back first."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    drop: bool = False
    delay: float = 0.0  # seconds to wait before answering (a hung server when longer than the client's timeout)


class FakeOpenAIServer:
    """Answers /v1/chat/completions and /v1/completions; `script` is consumed first, then every
    request gets a 200 whose text is `answer` (and prompt logprobs when `logprobs` is on)."""

    def __init__(self, answer: str = "unanswerable", logprobs: bool = True) -> None:
        self.answer = answer
        self.logprobs = logprobs
        self.script: list[Scripted] = []
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.seen.append({"path": self.path, "payload": payload, "headers": dict(self.headers)})
                    step = server.script.pop(0) if server.script else None
                if step is not None and step.delay:
                    time.sleep(step.delay)
                if step is not None and step.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                status = step.status if step else 200
                body = step.body if step and step.body is not None else server._ok(self.path, payload)
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in (step.headers if step else {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def _ok(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        if path.endswith("/chat/completions"):
            return {"choices": [{"index": 0, "message": {"role": "assistant", "content": self.answer}}]}
        choice: dict[str, Any] = {"index": 0, "text": self.answer}
        if payload.get("echo") and self.logprobs:
            prompt = payload["prompt"]
            n = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
            choice["logprobs"] = {
                "token_logprobs": [None] + [-1.0] * (n - 1),
                "top_logprobs": [None] + [{"x": -0.5}] * (n - 1),
                "tokens": ["t"] * n,
                "text_offset": list(range(n)),
            }
        return {"choices": [choice]}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
