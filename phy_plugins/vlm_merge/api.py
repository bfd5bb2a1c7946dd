"""The OpenAI-compatible model call: key/base URL lookup, retries with backoff, parsing."""
from __future__ import annotations

import email.utils
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import openai

from .prompt import RESPONSE_FORMAT

DEFAULT_MODEL = "gpt-4o"
LOCAL_PLACEHOLDER_KEY = "not-needed"  # vLLM/Ollama accept any key; never a real secret


class CallError(RuntimeError):
    """A model call failed for good (after retries, or not retryable)."""

    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.attempts = attempts


class Cancelled(RuntimeError):
    """The run was cancelled before this call completed."""


@dataclass
class RetryPolicy:
    """Retry/backoff settings. Delays in seconds."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    timeout: float = 60.0


@dataclass
class CallOutcome:
    """The raw answer text and accounting of one successful call."""

    text: str
    input_tokens: int
    output_tokens: int
    latency_s: float
    attempts: int
    model: str


def _dotenv_values(dirs: list[Path]) -> dict[str, str]:
    from dotenv import dotenv_values

    values: dict[str, str] = {}
    for d in dirs:
        f = Path(d) / ".env"
        if f.is_file():
            for k, v in dotenv_values(f).items():
                if v is not None and k not in values:
                    values[k] = v
    return values


@dataclass(frozen=True)
class Connection:
    """Where to send requests and with which key. The key is kept in memory only (not in repr)."""

    base_url: str | None
    api_key: str | None = field(default=None, repr=False)


def _first(*values: str | None) -> str | None:
    for v in values:
        if v and v.strip():
            return v.strip()
    return None


def resolve_connection(explicit_base_url: str | None = None, search_dirs: list[Path] | tuple = (),
                       configured_base_url: str | None = None) -> Connection:
    """Key and base URL, reading ``.env`` at most once (orders: see :func:`resolve_api_key`
    and :func:`resolve_base_url`). The key is returned, never stored or logged."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    url = _first(explicit_base_url, os.environ.get("OPENAI_BASE_URL"))
    if not (key and url):
        dotenv = _dotenv_values([*search_dirs, Path.cwd()])
        key = key or dotenv.get("OPENAI_API_KEY", "").strip()
        url = url or _first(dotenv.get("OPENAI_BASE_URL"), configured_base_url)
    return Connection(url, key or None)


def resolve_api_key(search_dirs: list[Path] | tuple = ()) -> str | None:
    """OPENAI_API_KEY from the environment, else from a ``.env`` file in ``search_dirs``
    (then the working directory). The key is returned, never stored or logged."""
    return resolve_connection(None, search_dirs).api_key


def resolve_base_url(explicit: str | None = None, search_dirs: list[Path] | tuple = (),
                     configured: str | None = None) -> str | None:
    """Base URL: explicit argument, env OPENAI_BASE_URL, ``.env``, then the plugin config."""
    return resolve_connection(explicit, search_dirs, configured).base_url


def make_client(base_url: str | None, api_key: str | None, timeout: float = 60.0) -> openai.OpenAI:
    """The real ``openai`` client with SDK retries off (we retry ourselves)."""
    if not api_key:
        if not base_url:
            raise CallError(
                "No API key: set OPENAI_API_KEY in the environment or in a .env file "
                "(or use --model offline, or --base-url for a local server).")
        api_key = LOCAL_PLACEHOLDER_KEY
    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)


def retry_after_seconds(headers) -> float | None:
    """Parse ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date) from headers."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(ra)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _retryable(exc: Exception) -> tuple[bool, float | None, str]:
    """(retry?, server-requested delay, message) for an exception from the client."""
    if isinstance(exc, openai.APITimeoutError):
        return True, None, "request timed out"
    if isinstance(exc, openai.APIConnectionError):
        return True, None, f"connection error: {exc}"
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        delay = retry_after_seconds(exc.response.headers if exc.response is not None else None)
        msg = f"HTTP {code}: {exc.message}"
        if code in (408, 409, 429) or code >= 500:
            return True, delay, msg
        if code in (401, 403):
            msg = f"HTTP {code}: the server rejected the API key or access ({exc.message})"
        return False, delay, msg
    if isinstance(exc, (openai.APIResponseValidationError, ValueError)):  # e.g. a non-JSON body
        return True, None, f"malformed response from the server: {exc}"
    return False, None, f"{type(exc).__name__}: {exc}"


def backoff_delay(attempt: int, policy: RetryPolicy, server_delay: float | None) -> float:
    """Delay before retry number ``attempt`` (1-based): the server's Retry-After when given,
    else exponential backoff with jitter."""
    if server_delay is not None:
        return min(server_delay, policy.max_retry_after)
    d = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
    return d / 2 + random.uniform(0, d / 2)


def call_model(
    client: openai.OpenAI,
    model: str,
    messages: list[dict],
    *,
    policy: RetryPolicy | None = None,
    cancel: threading.Event | None = None,
    structured: bool = True,
    max_tokens: int = 400,
) -> CallOutcome:
    """One chat completion with retries. Raises CallError or Cancelled."""
    policy = policy or RetryPolicy()
    cancel = cancel or threading.Event()
    use_schema = structured
    attempt = 0
    t_first = time.perf_counter()
    while True:
        if cancel.is_set():
            raise Cancelled("cancelled by the user")
        attempt += 1
        kwargs = dict(model=model, messages=messages, temperature=0, max_tokens=max_tokens,
                      timeout=policy.timeout)
        if use_schema:
            kwargs["response_format"] = RESPONSE_FORMAT
        t0 = time.perf_counter()
        try:
            resp = client.chat.completions.create(**kwargs)
            if not getattr(resp, "choices", None):
                raise ValueError("no choices in the response")
            text = resp.choices[0].message.content or ""
            usage = getattr(resp, "usage", None)
            return CallOutcome(
                text=text,
                input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                latency_s=time.perf_counter() - t0,
                attempts=attempt,
                model=str(getattr(resp, "model", "") or model),
            )
        except Exception as exc:  # noqa: BLE001 - classified below, never swallowed
            if (use_schema and isinstance(exc, openai.BadRequestError)
                    and "response_format" in str(exc).lower()):
                use_schema = False  # server lacks structured outputs: use the tolerant parser
                attempt -= 1
                continue
            retry, server_delay, msg = _retryable(exc)
            if not retry or attempt >= policy.max_attempts:
                raise CallError(f"{msg} (after {attempt} attempt(s), "
                                f"{time.perf_counter() - t_first:.1f} s)", attempt) from exc
            if cancel.wait(backoff_delay(attempt, policy, server_delay)):
                raise Cancelled("cancelled by the user") from exc
