"""`--backend openai:URL`: any model behind an OpenAI-compatible chat-completions server (vLLM,
SGLang, TGI, LMDeploy, a hosted API), evaluated like a local checkpoint. [ARCH-SERVED]

- **One request per sample**: the preset image as a PNG data URL (lossless, at the preset's
  size: the server sees the pixels `hf` would feed), the prompt preset's messages,
  `temperature`, `top_p`, `max_tokens`, `seed` (the per-sample seed the `hf` sampler derives) and
  `logprobs` (token log-probs become the confidence scores; a server without them gives constant
  scores, said in the provenance).
- **Concurrency**: up to `concurrency` requests in flight (asyncio, httpx); results come back in
  sample order, so records, resume and shards work exactly as for `hf`.
- **Faults**: 429 / 5xx / timeouts / dropped connections are retried with exponential backoff
  and jitter, honouring `Retry-After`, within a per-request attempt limit and a total retry
  budget; a sample that still fails stops the run with the sample named, after every finished
  batch is on disk, and the same command resumes there. A server that is down fails before any
  sample. `finish_reason = length` marks the answer truncated.
- **Secrets**: the key comes from `COORDBENCH_API_KEY` or `OPENAI_API_KEY` and goes only into the
  `Authorization` header; URLs are written without credentials or query strings.

httpx, not the `openai` client: we need the raw status, `Retry-After` and our own retry policy
(the client retries on its own and hides them), and one small dependency for sync + async.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from coordbench.backends.base import BackendInfo, GenerationStats
from coordbench.config.options import GenerationParams
from coordbench.errors import BackendError, ConfigError
from coordbench.types import Generation, GenerationRequest

KEY_VARS = ("COORDBENCH_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def safe_url(url: str) -> str:
    """The URL without user:password@ and without a query (tokens live there too)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def endpoint(base_url: str, suffix: str) -> str:
    """`base_url` + `/suffix`, keeping a query string (some hosted APIs carry a version there)."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/") + "/" + suffix.lstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def api_key() -> str | None:
    for var in KEY_VARS:
        if os.environ.get(var):
            return os.environ[var]
    return None


def _headers() -> dict[str, str]:
    key = api_key()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _scrub(text: str) -> str:
    """An error text with the API key removed, whatever echoed it."""
    key = api_key()
    return text.replace(key, "***") if key else text


def server_info(base_url: str, served_model: str | None, timeout: float = 10.0) -> dict[str, Any]:
    """`GET /v1/models` (and `/version` when the engine has it): the model ids the server
    offers, the one this run uses, and the engine's version. A server that does not answer is
    a clear error before any work."""
    import httpx

    base = base_url.rstrip("/")
    try:
        r = httpx.get(endpoint(base, "models"), headers=_headers(), timeout=timeout)
    except httpx.HTTPError as e:
        raise BackendError(
            f"no OpenAI-compatible server answers at {safe_url(base)} ({type(e).__name__}): "
            "start it first (e.g. `vllm serve MODEL`), or check --backend openai:URL"
        ) from None
    if r.status_code != 200:
        raise BackendError(
            f"{safe_url(base)}/models answered HTTP {r.status_code}: {_scrub(r.text[:200])}"
        )
    try:
        ids = [str(m["id"]) for m in r.json().get("data", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BackendError(f"{safe_url(base)}/models: not an OpenAI model list") from None
    if served_model is None:
        if len(ids) != 1:
            raise ConfigError(
                f"the server offers {len(ids)} models ({', '.join(ids[:5])}): pass --served-model"
            )
        served_model = ids[0]
    elif served_model not in ids:
        raise ConfigError(
            f"--served-model {served_model!r} is not offered by {safe_url(base)} "
            f"(it has: {', '.join(ids[:10])})"
        )
    version = None
    parts = urlsplit(base)
    root_path = parts.path[: -len("/v1")] if parts.path.rstrip("/").endswith("/v1") else parts.path
    root = urlunsplit((parts.scheme, parts.netloc, root_path.rstrip("/"), parts.query, ""))
    try:
        v = httpx.get(endpoint(root, "version"), headers=_headers(), timeout=timeout)
        if v.status_code == 200:
            version = str(v.json().get("version"))
    except (httpx.HTTPError, ValueError, AttributeError):
        version = None
    return {"served_model": served_model, "server_model_ids": ids, "engine_version": version}


def _png_data_url(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our chat messages (PIL images inline) as OpenAI chat messages (image_url data URLs)."""
    out = []
    for m in messages:
        parts = []
        for c in m["content"]:
            if c.get("type") == "image":
                parts.append({"type": "image_url", "image_url": {"url": _png_data_url(c["image"])}})
            else:
                parts.append({"type": "text", "text": c["text"]})
        if m["role"] == "system" and all(p["type"] == "text" for p in parts):
            out.append({"role": "system", "content": "".join(p["text"] for p in parts)})
        else:
            out.append({"role": m["role"], "content": parts})
    return out


@dataclass
class RetryPolicy:
    """How hard a request is tried; each field can be set from the environment
    (`COORDBENCH_SERVED_ATTEMPTS`, `_BACKOFF`, `_BUDGET`, `_TIMEOUT`)."""

    attempts: int = 6  # per request
    base: float = 0.5  # seconds, doubled each retry
    cap: float = 30.0
    budget: float = 600.0  # seconds of waiting in all, per run
    timeout: float = 600.0  # per request

    @classmethod
    def from_env(cls) -> RetryPolicy:
        p = cls()
        for field_, var, typ in (
            ("attempts", "COORDBENCH_SERVED_ATTEMPTS", int),
            ("base", "COORDBENCH_SERVED_BACKOFF", float),
            ("budget", "COORDBENCH_SERVED_BUDGET", float),
            ("timeout", "COORDBENCH_SERVED_TIMEOUT", float),
        ):
            if os.environ.get(var):
                try:
                    setattr(p, field_, typ(os.environ[var]))
                except ValueError:
                    raise ConfigError(f"${var} must be a number, got {os.environ[var]!r}") from None
        return p


class ServedBackend:
    """Generations from an OpenAI-compatible server, `concurrency` requests at a time."""

    def __init__(
        self,
        base_url: str,
        *,
        served_model: str | None = None,
        concurrency: int = 8,
        policy: RetryPolicy | None = None,
    ):
        if concurrency < 1:
            raise ConfigError(f"--concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy.from_env()
        self.concurrency = concurrency
        info = server_info(self.base_url, served_model)
        self.model = info["served_model"]
        self.info = BackendInfo(
            name="openai",
            model_path=safe_url(self.base_url),
            device="server",
            dtype="server",
            provenance={**info, "url": safe_url(self.base_url), "concurrency": concurrency},
        )
        self.stats = GenerationStats()
        self.retries = 0
        self.waited = 0.0
        self.no_logprobs = 0

    # ------------------------------------------------------------------ requests

    def _body(self, req: GenerationRequest, params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": openai_messages(req.messages),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "logprobs": True,
            "top_logprobs": 0,
        }
        if req.seed is not None:
            body["seed"] = int(req.seed) % (2**63)
        if params.top_k:
            body["top_k"] = params.top_k  # vLLM / SGLang extension; others ignore it
        if params.repetition_penalty != 1.0:
            body["repetition_penalty"] = params.repetition_penalty
        return body

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self.policy.cap, self.policy.base * 2**attempt) * (0.5 + random.random() / 2)
        if retry_after:
            try:
                delay = max(delay, min(self.policy.cap, float(retry_after)))
            except ValueError:
                pass
        return delay

    async def _one(
        self, client: Any, req: GenerationRequest, params: GenerationParams
    ) -> Generation:
        import httpx

        body = self._body(req, params)
        last = ""
        for attempt in range(self.policy.attempts):
            retry_after = None
            try:
                r = await client.post(
                    endpoint(self.base_url, "chat/completions"), json=body, headers=_headers()
                )
                if r.status_code == 200:
                    try:
                        return self._generation(req.sample_id, r.json())
                    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
                        last = f"malformed response body ({type(e).__name__}: {r.text[:120]!r})"
                elif r.status_code in RETRY_STATUS:
                    retry_after = r.headers.get("retry-after")
                    last = f"HTTP {r.status_code}"
                else:
                    raise BackendError(
                        f"sample {req.sample_id}: the server refused the request: HTTP "
                        f"{r.status_code}: {_scrub(r.text[:300])}"
                    )
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last = f"{type(e).__name__}"
            if attempt + 1 == self.policy.attempts:
                break
            delay = self._wait(attempt, retry_after)
            if self.waited + delay > self.policy.budget:
                last += f"; the run's retry budget of {self.policy.budget:.0f} s is spent"
                break
            self.waited += delay
            self.retries += 1
            await asyncio.sleep(delay)
        raise BackendError(
            f"sample {req.sample_id}: no answer from {safe_url(self.base_url)} after "
            f"{attempt + 1} attempt(s) ({_scrub(last)}); every finished batch is saved: re-run "
            "the same command to resume"
        )

    def _generation(self, sample_id: str, doc: dict[str, Any]) -> Generation:
        choice = doc["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            raise TypeError("message.content is not a string")
        entries = ((choice.get("logprobs") or {}).get("content")) or []
        texts = [str(e["token"]) for e in entries]
        lps = [float(e["logprob"]) for e in entries]
        ids = [int(e["token_id"]) for e in entries if "token_id" in e]
        if not entries:
            self.no_logprobs += 1
        usage = doc.get("usage") or {}
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        self.stats.decode_tokens += int(usage.get("completion_tokens") or len(texts))
        self.stats.prefill_tokens += int(usage.get("prompt_tokens") or 0)
        return Generation(
            sample_id=sample_id,
            text=text,
            token_ids=ids if len(ids) == len(texts) else [],
            token_texts=texts,
            logprobs_raw=lps,
            logprobs_processed=lps,
            finish_reason=finish,
            n_prompt_tokens=int(usage.get("prompt_tokens") or 0),
        )

    async def _all(
        self, batch: Sequence[GenerationRequest], params: GenerationParams
    ) -> list[Generation]:
        import httpx

        sem = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.policy.timeout, limits=limits) as client:

            async def guarded(req: GenerationRequest) -> Generation:
                async with sem:
                    return await self._one(client, req, params)

            return list(await asyncio.gather(*(guarded(r) for r in batch)))

    def generate(
        self, batch: Sequence[GenerationRequest], params: GenerationParams
    ) -> list[Generation]:
        """One request per sample, `concurrency` at a time; results in the batch's order."""
        t0 = time.perf_counter()
        out = asyncio.run(self._all(batch, params))
        self.stats.decode_seconds += time.perf_counter() - t0
        self.info.provenance.update(
            retries=self.retries,
            retry_wait_seconds=round(self.waited, 3),
            answers_without_logprobs=self.no_logprobs,
        )
        return out

    def close(self) -> None:
        pass
