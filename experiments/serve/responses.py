"""Response bodies of ``disagg serve``: whole replies and Server-Sent-Event chunks, shaped as
vLLM's OpenAI server writes them (``chat.completion.chunk`` deltas, ``data: [DONE]``). With
``n`` > 1 every choice has its own ``index``; a stop cuts each choice's text before it."""

from __future__ import annotations

import json
from typing import Any

from disagg.experiments.serve.protocol import Generation, token_text

DONE = "data: [DONE]\n\n"


def _base(gen: Generation, obj: str) -> dict[str, Any]:
    return {"id": gen.response_id, "object": obj, "created": gen.created, "model": gen.model}


def token_piece(gen: Generation, index: int) -> str:
    """Output token ``index``'s text in the reply: the synthetic word, cut where a stop cut it."""
    if gen.text_chars is None:
        return token_text(index)
    start = sum(len(token_text(i)) for i in range(index))
    return token_text(index)[: max(0, gen.text_chars - start)]


def usage(gen: Generation) -> dict[str, int]:
    """The ``usage`` object: the prompt once, the output tokens of every choice."""
    out = gen.output_tokens * gen.n
    return {"prompt_tokens": gen.prompt_tokens, "completion_tokens": out,
            "total_tokens": gen.prompt_tokens + out}


def full_response(gen: Generation) -> dict[str, Any]:
    """The non-streaming reply to a finished generation (``n`` identical choices)."""
    text = "".join(token_piece(gen, i) for i in range(gen.output_tokens))
    choices: list[dict[str, Any]] = []
    for index in range(gen.n):
        if gen.kind == "completion":
            choices.append({"index": index, "text": text, "logprobs": None,
                            "finish_reason": gen.finish_reason, "stop_reason": gen.stop_reason})
        else:
            choices.append({"index": index, "message": {"role": "assistant", "content": text},
                            "logprobs": None, "finish_reason": gen.finish_reason,
                            "stop_reason": gen.stop_reason})
    obj = "text_completion" if gen.kind == "completion" else "chat.completion"
    return {**_base(gen, obj), "choices": choices, "usage": usage(gen)}


def sse(payload: dict[str, Any]) -> str:
    """One Server-Sent Event carrying ``payload`` as JSON."""
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def role_chunk(gen: Generation, choice: int = 0) -> str:
    """Chat only: a choice's first chunk, naming the assistant role with empty content."""
    body = {"index": choice, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
            "finish_reason": None}
    return sse({**_base(gen, "chat.completion.chunk"), "choices": [body]})


def token_chunk(gen: Generation, index: int, choice: int = 0) -> str:
    """The chunk of output token ``index`` of ``choice``; the last one carries the finish."""
    last = index == gen.output_tokens - 1
    finish = gen.finish_reason if last else None
    if gen.kind == "completion":
        body: dict[str, Any] = {"index": choice, "text": token_piece(gen, index),
                                "logprobs": None, "finish_reason": finish,
                                "stop_reason": gen.stop_reason if last else None}
        return sse({**_base(gen, "text_completion"), "choices": [body]})
    body = {"index": choice, "delta": {"content": token_piece(gen, index)}, "logprobs": None,
            "finish_reason": finish}
    if last:
        body["stop_reason"] = gen.stop_reason
    return sse({**_base(gen, "chat.completion.chunk"), "choices": [body]})


def usage_chunk(gen: Generation) -> str:
    """With ``stream_options.include_usage``: the last chunk, no choices, the usage."""
    obj = "text_completion" if gen.kind == "completion" else "chat.completion.chunk"
    return sse({**_base(gen, obj), "choices": [], "usage": usage(gen)})


def error_event(message: str, kind: str, code: int) -> str:
    """An error after the stream began (the request failed in the cluster mid-way)."""
    return sse({"error": {"message": message, "type": kind, "param": None, "code": code}})
