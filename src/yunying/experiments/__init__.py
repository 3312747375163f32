"""Experiments: deterministic assignment, exposure logging, analysis on the statistics engine."""
