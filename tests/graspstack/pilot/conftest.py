"""A real Prometheus scraping a private metrics registry: what the gate and alert tests query."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from graspstack.pilot.prometheus import Prometheus
from graspstack.runtime.prometheus_server import PrometheusServer, scrape_config
from graspstack.runtime.redis_server import free_port


@pytest.fixture
def scraped_registry(tmp_path):
    """serve(registry, service, rule_files) exposes the registry over HTTP, starts a Prometheus that
    scrapes it every second (evaluating the rule files) and returns its client; both stop after
    the test."""
    stops = []

    def serve(registry: CollectorRegistry, service: str, rule_files: list[str] | None = None) -> Prometheus:
        port = free_port()
        server, _ = start_http_server(port, registry=registry)
        stops.append(server.shutdown)
        config = scrape_config({service: f"127.0.0.1:{port}"}, rule_files=rule_files)
        prom = PrometheusServer(tmp_path / f"prom-{len(stops)}", free_port(), config).start()
        stops.append(prom.stop)
        return Prometheus(prom.url)

    yield serve
    for stop in reversed(stops):
        stop()
