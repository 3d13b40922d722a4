"""``disagg serve``: an OpenAI-compatible HTTP endpoint, as vLLM serves it, in front of the
emulated cluster, with vLLM's Prometheus metrics (docs/serve.md)."""
