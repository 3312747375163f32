"""The demo company: deterministic, realistic data for every part of the loop."""

from yunying.demo.generator import DemoSpec, DemoStats, generate

__all__ = ["DemoSpec", "DemoStats", "generate"]
