"""The EFA fabric: hosts and links (topology), flows sharing bandwidth by max-min fairness, the
fabric component that delivers KV at modeled times, and KV payloads as checksummed Arrow buffers.
"""
