"""Response bodies of ``disagg serve``: whole replies and Server-Sent-Event chunks, shaped as
vLLM's OpenAI server writes them (``chat.completion.chunk`` deltas, ``data: [DONE]``)."""

from __future__ import annotations

import json
from typing import Any

from disagg.experiments.serve.protocol import Generation, token_text, usage

DONE = "data: [DONE]\n\n"


def _base(gen: Generation, obj: str) -> dict[str, Any]:
    return {"id": gen.response_id, "object": obj, "created": gen.created, "model": gen.model}


def full_response(gen: Generation) -> dict[str, Any]:
    """The non-streaming reply to a finished generation."""
    text = "".join(token_text(i) for i in range(gen.output_tokens))
    if gen.kind == "completion":
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None,
                                  "finish_reason": gen.finish_reason, "stop_reason": None}
        return {**_base(gen, "text_completion"), "choices": [choice], "usage": usage(gen)}
    choice = {"index": 0, "message": {"role": "assistant", "content": text},
              "logprobs": None, "finish_reason": gen.finish_reason, "stop_reason": None}
    return {**_base(gen, "chat.completion"), "choices": [choice], "usage": usage(gen)}


def sse(payload: dict[str, Any]) -> str:
    """One Server-Sent Event carrying ``payload`` as JSON."""
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def role_chunk(gen: Generation) -> str:
    """Chat only: the first chunk, naming the assistant role with empty content."""
    choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
              "finish_reason": None}
    return sse({**_base(gen, "chat.completion.chunk"), "choices": [choice]})


def token_chunk(gen: Generation, index: int) -> str:
    """The chunk of output token ``index``; the last one carries the finish reason."""
    finish = gen.finish_reason if index == gen.output_tokens - 1 else None
    if gen.kind == "completion":
        choice: dict[str, Any] = {"index": 0, "text": token_text(index), "logprobs": None,
                                  "finish_reason": finish, "stop_reason": None}
        return sse({**_base(gen, "text_completion"), "choices": [choice]})
    choice = {"index": 0, "delta": {"content": token_text(index)}, "logprobs": None,
              "finish_reason": finish}
    return sse({**_base(gen, "chat.completion.chunk"), "choices": [choice]})


def usage_chunk(gen: Generation) -> str:
    """With ``stream_options.include_usage``: the last chunk, no choices, the usage."""
    obj = "text_completion" if gen.kind == "completion" else "chat.completion.chunk"
    return sse({**_base(gen, obj), "choices": [], "usage": usage(gen)})


def error_event(message: str, kind: str, code: int) -> str:
    """An error after the stream began (the request failed in the cluster mid-way)."""
    return sse({"error": {"message": message, "type": kind, "param": None, "code": code}})
