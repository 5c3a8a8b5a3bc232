"""Dashboards generated from the platform config (Grafana: `dashboards.grafana`)."""
