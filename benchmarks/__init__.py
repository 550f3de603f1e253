"""`make bench`: throughput and latency measurements, written to reports/bench.json and .md."""
