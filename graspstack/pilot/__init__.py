"""Staged pilots: lab, then pilot cell, then production, gated on Prometheus queries."""
