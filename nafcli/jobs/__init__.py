"""The job layer: what runs a batch of jobs, on this machine or on a cluster (``ray_backend``)."""
