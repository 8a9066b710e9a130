"""An in-process OpenAI-compatible chat-completions server on 127.0.0.1 for the served-backend
tests: a small FastAPI app answering with the embedded model through the HF backend (greedy and
sampled, with the request's seed), token log-probs and token ids in each answer, and a fault
queue (429 with Retry-After, 500, a stall past the client's timeout, a dropped connection, a
malformed body) consumed one request at a time. Bounded: it serves until the test stops it."""

import asyncio
import base64
import io
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any

MODEL = "shapes-qwen25vl"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _image(url: str):
    from PIL import Image

    head, data = url.split(",", 1)
    assert head.startswith("data:image/")
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def _messages(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in msgs:
        content = m["content"]
        if isinstance(content, str):
            out.append({"role": m["role"], "content": [{"type": "text", "text": content}]})
            continue
        parts = []
        for c in content:
            if c["type"] == "image_url":
                parts.append({"type": "image", "image": _image(c["image_url"]["url"])})
            else:
                parts.append({"type": "text", "text": c["text"]})
        out.append({"role": m["role"], "content": parts})
    return out


class FakeServer:
    def __init__(self, backend: Any):
        self.backend = backend
        self.faults: list[str] = []
        self.requests = 0
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.app = self._app()

    def _app(self):
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, PlainTextResponse

        from coordbench.config.options import GenerationParams
        from coordbench.types import GenerationRequest

        app = FastAPI()

        @app.get("/v1/models")
        def models():
            return {"object": "list", "data": [{"id": MODEL, "object": "model"}]}

        @app.get("/version")
        def version():
            return {"version": "fake-0.1"}

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            self.auth.append(request.headers.get("authorization"))
            with self.lock:
                self.requests += 1
                fault = self.faults.pop(0) if self.faults else None
            if fault == "429":
                return JSONResponse({"error": "slow down"}, 429, headers={"Retry-After": "0.2"})
            if fault == "500":
                return JSONResponse({"error": "boom"}, 500)
            if fault == "timeout":
                await asyncio.sleep(20)  # past the client's timeout: it gives up and retries
            if fault == "drop":
                raise ConnectionResetError("dropped")  # uvicorn closes the connection
            if fault == "malformed":
                return PlainTextResponse("{not json")
            params = GenerationParams(
                temperature=float(body.get("temperature", 0.0)),
                top_p=float(body.get("top_p", 1.0)),
                top_k=int(body.get("top_k", 0)),
                repetition_penalty=float(body.get("repetition_penalty", 1.0)),
                max_new_tokens=int(body["max_tokens"]),
                seed=0,
            )
            req = GenerationRequest(
                "x", _messages(body["messages"]), None, int(body.get("seed", 0))
            )
            with self.lock:
                (g,) = self.backend.generate([req], params)
            return {
                "id": "c1",
                "object": "chat.completion",
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": g.text},
                        "finish_reason": g.finish_reason,
                        "logprobs": {
                            "content": [
                                {"token": t, "logprob": lp, "token_id": i}
                                for t, lp, i in zip(
                                    g.token_texts, g.logprobs_processed, g.token_ids, strict=True
                                )
                            ]
                        },
                    }
                ],
                "usage": {
                    "prompt_tokens": g.n_prompt_tokens,
                    "completion_tokens": len(g.token_ids),
                },
            }

        return app


@contextmanager
def serve(backend: Any):
    """A running FakeServer (uvicorn in a thread), stopped on exit."""
    import uvicorn

    srv = FakeServer(backend)
    config = uvicorn.Config(srv.app, host="127.0.0.1", port=srv.port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield srv
    finally:
        server.should_exit = True
        thread.join(timeout=10)
