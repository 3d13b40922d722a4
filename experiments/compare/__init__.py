"""Comparing policies: planning and running the runs, their data and confidence intervals, capacity
by bisection, router regret, the summary table, plots, the report, and the fabric sweep.
"""
