"""The OpenAI / vLLM request and response shapes ``disagg serve`` speaks, the prompt-token
counting rule and the synthetic output text (docs/serve.md).

Everything here is pure: request bodies in, a :class:`Generation` (how many prompt and output
tokens the emulated request has) or an :class:`ApiError` out; response bodies from a finished or
streaming generation.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

BYTES_PER_TOKEN = 4  # the counting rule: one prompt token per 4 UTF-8 bytes, rounded up
WORDS = ("the", "cluster", "emulates", "a", "token", "stream", "at", "its", "modeled", "time",
         "prefill", "decode", "fabric", "kv", "cache", "moves")


class ApiError(Exception):
    """A request the API refuses: HTTP ``status``, OpenAI error ``kind`` and a message."""

    def __init__(self, status: int, message: str, kind: str = "BadRequestError",
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param

    def body(self) -> dict[str, Any]:
        """The OpenAI-style error body."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.status}}


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a final chunk with ``usage``."""

    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients send many parameters we accept and ignore
    model: str
    max_tokens: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    ignore_eos: bool = False
    prompt_token_ids: list[int] | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    min_tokens: int = 0


class CompletionRequest(_Common):
    """``POST /v1/completions``: one prompt (text, or token ids)."""

    prompt: str | list[str] | list[int] | list[list[int]] = Field(default="")
    max_tokens: int | None = 16  # the OpenAI and vLLM default for completions


class ChatCompletionRequest(_Common):
    """``POST /v1/chat/completions``: messages with string or text-part contents."""

    messages: list[dict[str, Any]]
    max_completion_tokens: int | None = None


@dataclass(frozen=True)
class Generation:
    """One emulated request as the API sees it: token counts and how the reply ends."""

    kind: Literal["completion", "chat"]
    model: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str
    stream: bool
    include_usage: bool
    response_id: str
    created: int
    n: int = 1
    text_chars: int | None = None  # a stop cut the reply's text here (characters)
    stop_reason: str | int | None = None


WORDS_PER_TOKEN = 0.75  # OpenAI's rule of thumb: 100 tokens ~ 75 English words
TOKENIZERS = ("bytes4", "chars4", "words")  # ``--tokenizer``: how prompt text is counted


def count_text_tokens(text: str, rule: str = "bytes4") -> int:
    """Prompt tokens of a text by ``rule``, at least 1 (a BOS token): ``bytes4`` ceil(UTF-8
    bytes / 4); ``chars4`` ceil(characters / 4) (OpenAI's ~4 characters per token);
    ``words`` ceil(whitespace-separated words / 0.75)."""
    if rule == "bytes4":
        n = math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)
    elif rule == "chars4":
        n = math.ceil(len(text) / 4)
    elif rule == "words":
        n = math.ceil(len(text.split()) / WORDS_PER_TOKEN)
    else:
        raise ValueError(f"unknown tokenizer {rule!r}; known: {', '.join(TOKENIZERS)}")
    return max(1, n)


def _prompt_tokens_completion(req: CompletionRequest, rule: str) -> int:
    p = req.prompt
    if isinstance(p, list) and p and isinstance(p[0], list | str):
        if len(p) != 1:
            raise ApiError(400, "disagg serve takes one prompt per request", param="prompt")
        p = p[0]  # type: ignore[assignment]
    if isinstance(p, list):
        if not p:
            raise ApiError(400, "the prompt is empty", param="prompt")
        return len(p)
    return count_text_tokens(p, rule)  # type: ignore[arg-type]


def chat_text(messages: list[dict[str, Any]]) -> str:
    """The text the counting rule sees for a chat: one ``role: content`` line per message."""
    lines = []
    for m in messages:
        content = m.get("content") or ""
        if isinstance(content, list):
            content = "".join(str(part.get("text", "")) for part in content
                              if isinstance(part, dict))
        lines.append(f"{m.get('role', 'user')}: {content}\n")
    return "".join(lines)


@dataclass(frozen=True)
class Limits:
    """What the server accepts: the model's name and context length (tokens)."""

    model: str
    max_model_len: int
    default_max_tokens: int  # chat requests without max_tokens (no EOS to stop them)
    tokenizer: str = "bytes4"  # how prompt text is counted (``count_text_tokens``)


def parse_generation(kind: Literal["completion", "chat"], body: dict[str, Any],
                     limits: Limits, request_id: str | None = None) -> Generation:
    """Validate a request body against ``limits``; raises :class:`ApiError`. A prompt at or over
    the context is refused; prompt + max tokens over it clamps the max tokens (as vLLM 0.32).
    ``request_id`` (the client's ``X-Request-Id``) names the response, as vLLM does."""
    model_cls = CompletionRequest if kind == "completion" else ChatCompletionRequest
    try:
        req = model_cls.model_validate(body)
    except ValueError as e:
        first: dict[str, Any] = getattr(e, "errors", lambda: [{}])()[0]
        loc = ".".join(str(x) for x in first.get("loc", ())) or None
        raise ApiError(400, f"invalid request: {loc}: {first.get('msg', e)}", param=loc) from None
    if req.model != limits.model:
        raise ApiError(404, f"The model `{req.model}` does not exist.", "NotFoundError", "model")
    if req.prompt_token_ids is not None:
        prompt = len(req.prompt_token_ids)
    elif isinstance(req, CompletionRequest):
        prompt = _prompt_tokens_completion(req, limits.tokenizer)
    else:
        prompt = count_text_tokens(chat_text(req.messages), limits.tokenizer)
    asked = req.max_completion_tokens if isinstance(req, ChatCompletionRequest) else None
    asked = asked if asked is not None else req.max_tokens
    if asked is not None and asked < 1:
        raise ApiError(400, f"max_tokens must be at least 1, got {asked}", param="max_tokens")
    if prompt >= limits.max_model_len:
        raise ApiError(400, f"This model's maximum context length is {limits.max_model_len} "
                       f"tokens. However, your request has {prompt} input tokens. Please reduce "
                       "the length of the input messages.", param="messages"
                       if kind == "chat" else "prompt")
    output = asked if asked is not None else limits.default_max_tokens
    clamped = output > limits.max_model_len - prompt  # vLLM clamps max_tokens to the context
    output = min(output, limits.max_model_len - prompt)
    prefix = "cmpl-" if kind == "completion" else "chatcmpl-"
    include = bool(req.stream_options and req.stream_options.include_usage)
    return Generation(kind, req.model, prompt, output, "length" if asked or req.ignore_eos
                      or clamped else "stop", req.stream, include,
                      prefix + (request_id or uuid.uuid4().hex), int(time.time()), req.n)


def token_text(index: int) -> str:
    """Output token ``index``'s synthetic text (deterministic: the same for every request)."""
    return " " + WORDS[index % len(WORDS)]
