"""How many examples a property test runs: its own number, times 20 under `make fuzz`."""

from __future__ import annotations

from hypothesis import settings

FUZZ_FACTOR = 20


def examples(n: int) -> int:
    return n * FUZZ_FACTOR if settings.get_current_profile_name() == "fuzz" else n
