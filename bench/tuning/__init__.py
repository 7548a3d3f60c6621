"""Tuning scripts: the measurements behind a default (e.g. the anomaly threshold floor)."""
