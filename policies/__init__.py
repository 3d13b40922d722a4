"""Scheduling policies: router, prefill batching and decode admission, each in a registry."""

from disagg.policies.batching import DECODE_ADMISSION, PREFILL_BATCHING
from disagg.policies.registry import Registry, UnknownPolicy
from disagg.policies.router import ROUTERS

__all__ = ["DECODE_ADMISSION", "PREFILL_BATCHING", "ROUTERS", "Registry", "UnknownPolicy"]
