"""A run's results: the per-request table and the others, summary.json, the event log and timeline,
and writing the results folder.
"""
