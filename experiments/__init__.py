"""The front door: experiment files (TOML), running one (``run``), the command line (``cli``),
results tables and writing (``results``), policy comparisons, capacity and reports (``compare``),
and the live view (``view``).
"""
