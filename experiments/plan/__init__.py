"""``disagg plan``: search clusters and policies for the most goodput per dollar, watt or rack
under an SLO — the search space file, candidate configurations and their cost, power and racks,
optimistic capacity bounds for pruning, the search itself (capacity by bisection per candidate,
in parallel, resumable), and its outputs (plan.parquet, the Pareto frontier, the report, the
winning experiment file).
"""
