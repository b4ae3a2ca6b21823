"""A local fake Ollama server for the tests: speaks the parts of Ollama's HTTP API the chat uses.

Endpoints: GET /api/tags, POST /api/show, POST /api/chat (NDJSON stream or one JSON), POST /api/generate,
GET /api/version. Models not in `models` answer 404 {"error": "model 'x' not found"} as Ollama does.
Modes (set on the server object while it runs): `delay_s` (slow server: sleep before answering, for
timeouts), `error_status` (every /api/chat and /api/generate answers this HTTP status), `stream_error`
(an {"error": ...} line after the first pieces), `reply` (text per model, default a cited answer).
Every request is recorded in `requests` as (method, path, json body).

Run alone for manual checks: `python tests/fake_ollama.py` prints its URL.
"""
from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_REPLY = "The placer spreads cells with an electrostatic density model [1], and HPWL measures wire [2]."


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class FakeOllama:
    def __init__(self, models: list[str] | None = None, reply: str | dict[str, str] = DEFAULT_REPLY):
        self.models = list(models if models is not None else ["llama3.2:3b"])
        self.reply = reply
        self.delay_s = 0.0
        self.error_status: int | None = None
        self.stream_error: str | None = None
        self.requests: list[tuple[str, str, dict]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeOllama:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output clean
                pass

            def _body(self) -> dict:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    return json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    return {"_raw": raw.decode(errors="replace")}

            def _json(self, status: int, data: dict) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802 - http.server's naming
                fake.requests.append(("GET", self.path, {}))
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                if self.path == "/api/tags":
                    self._json(200, {"models": [fake._tag(m) for m in fake.models]})
                elif self.path == "/api/version":
                    self._json(200, {"version": "0.0.0-fake"})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self):  # noqa: N802
                body = self._body()
                fake.requests.append(("POST", self.path, body))
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                model = body.get("model") or body.get("name") or ""
                if self.path in ("/api/chat", "/api/generate") and fake.error_status:
                    self._json(fake.error_status, {"error": f"fake server error {fake.error_status}"})
                    return
                if self.path in ("/api/show", "/api/chat", "/api/generate") and model not in fake.models:
                    self._json(404, {"error": f"model '{model}' not found"})
                    return
                if self.path == "/api/show":
                    self._json(200, {"modelfile": f"FROM {model}", "parameters": "", "template": "{{ .Prompt }}",
                                     "details": fake._details(), "model_info": {"general.architecture": "llama"},
                                     "capabilities": ["completion"], "modified_at": _now()})
                elif self.path == "/api/chat":
                    self._answer(model, body, key="message")
                elif self.path == "/api/generate":
                    self._answer(model, body, key="response")
                else:
                    self._json(404, {"error": "not found"})

            def _answer(self, model: str, body: dict, key: str) -> None:
                text = fake.reply.get(model, DEFAULT_REPLY) if isinstance(fake.reply, dict) else fake.reply
                pieces = re.findall(r"\S+\s*|\s+", text) or [""]
                if not body.get("stream", True):
                    payload = {"role": "assistant", "content": text} if key == "message" else text
                    self._json(200, {"model": model, "created_at": _now(), key: payload, "done": True,
                                     "done_reason": "stop", "eval_count": len(pieces)})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def line(obj: dict) -> None:
                    data = (json.dumps(obj) + "\n").encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

                for i, piece in enumerate(pieces):
                    if fake.stream_error and i == 2:
                        line({"error": fake.stream_error})
                        break
                    payload = {"role": "assistant", "content": piece} if key == "message" else piece
                    line({"model": model, "created_at": _now(), key: payload, "done": False})
                else:
                    payload = {"role": "assistant", "content": ""} if key == "message" else ""
                    line({"model": model, "created_at": _now(), key: payload, "done": True, "done_reason": "stop",
                          "total_duration": 1000, "eval_count": len(pieces)})
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -------------------------------------------------------------------------------------------
    def chat_models(self) -> list[str]:
        """Models asked for on /api/chat, in order."""
        return [body.get("model") for method, path, body in self.requests if path == "/api/chat"]

    @staticmethod
    def _details() -> dict:
        return {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}

    def _tag(self, name: str) -> dict:
        return {"name": name, "model": name, "modified_at": _now(), "size": 2019393189,
                "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
                "details": self._details()}


if __name__ == "__main__":
    server = FakeOllama().start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
