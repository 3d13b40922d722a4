"""A run's results: the request, timeseries and transfer tables, the summary (with prefix-cache
hit rates), writing the folder (atomically, never over a user's data), golden digests of
`requests.parquet`, and the event-log timeline."""
