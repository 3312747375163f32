"""The statistics engine, one module per method (modelled on GrowthBook's gbstats).

Every method works on sufficient statistics (counts, sums, sums of squares and products),
so the warehouse aggregates rows to a handful of numbers per variant and the maths runs
here, identically whichever engine produced them.
"""

from yunying.experiments.stats.models import (
    EffectEstimate,
    Proportion,
    Ratio,
    RegressionAdjusted,
    SampleMean,
    Statistic,
)

__all__ = [
    "EffectEstimate",
    "Proportion",
    "Ratio",
    "RegressionAdjusted",
    "SampleMean",
    "Statistic",
]
