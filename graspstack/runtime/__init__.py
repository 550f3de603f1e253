"""Running the local system's parts: Redis, Prometheus and the services as processes."""
