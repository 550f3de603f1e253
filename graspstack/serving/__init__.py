"""Serving cores, transport-free: dynamic batching, the pose estimator, the shadow mirror."""
