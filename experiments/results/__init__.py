"""A run's results: the request, timeseries and transfer tables, the summary, writing the folder
(atomically, never over a user's data), and the event-log timeline."""
