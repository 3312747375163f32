"""User-operations analytics: typed queries and runners (trends, funnels, retention, …).

Each analysis is a pydantic query model plus ``run_x(wh, q) -> XResult``; the same model is
the Python API, the CLI options and the HTTP body. Shared pieces live in ``common``.
"""
