"""Workloads: synthetic arrival processes and length distributions, the ``[workload]`` kinds,
trace files, and planning the request stream (open loop) or the closed-loop users' state machine.
"""
