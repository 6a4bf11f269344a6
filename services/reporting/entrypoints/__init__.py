"""HTTP, metrics and the dashboard."""
