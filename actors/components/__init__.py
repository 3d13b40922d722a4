"""The components: plain asyncio classes, one per emulated machine or control-plane role (load
generator, router, prefill unit, decode unit, collector), plus their load reports, unit logs,
live state reports and the KV payload store interface. Both engines run these same classes.
"""
