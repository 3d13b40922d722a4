"""The emulated cluster as data and math: the config tree, request and message types, the
component base (clock, peers, dispatch, lag, held messages), and the sub-packages ``hardware``
(specs, catalog, performance models, calibration) and ``workload`` (arrivals, lengths, workload
kinds, traces, request planning). Pure: no Ray, no I/O beyond reading a config or a trace.
"""
