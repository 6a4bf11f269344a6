"""Reporting: every event folded into live cumulative counters, read as "as of" reports."""
