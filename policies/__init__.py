"""Scheduling policies: router, prefill batching and decode admission, each in a registry.

Importing this package registers every built-in policy.
"""

from disagg.policies import (  # noqa: F401  (registration)
    admission,
    batch_forming,
    load_balancing,
    ordering,
    prefix_aware,
    slo_aware,
)
from disagg.policies.batching import DECODE_ADMISSION, PREFILL_BATCHING
from disagg.policies.registry import Registry, UnknownPolicy
from disagg.policies.router import ROUTERS

__all__ = ["DECODE_ADMISSION", "PREFILL_BATCHING", "ROUTERS", "Registry", "UnknownPolicy"]
