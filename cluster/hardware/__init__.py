"""Hardware and models: specifications, the shipped catalog (every number with its source), the
performance models (prefill time, decode step time, KV bytes) and the calibration table.
"""
