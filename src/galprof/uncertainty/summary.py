"""Accessors shared by the sample-based error estimates (bootstrap replicates, posterior draws)."""

from __future__ import annotations

import numpy as np


class SampleSummary:
    """Mixin for frozen dataclasses with ``names`` ((component, 1-based), parameter name),
    ``std`` (B, P) and ``intervals`` {level: ((B, P) low, (B, P) high)}."""

    def interval(self, level: float = 0.68) -> tuple[np.ndarray, np.ndarray]:
        """((B, P) low, (B, P) high): the central percentile interval holding ``level`` of the samples."""
        for key, value in self.intervals.items():
            if abs(key - level) < 1e-9:
                return value
        raise KeyError(f"no {level} interval; computed: {sorted(self.intervals)}")

    def column(self, component: int, name: str) -> int:
        """Column of parameter ``name`` of component ``component`` (1-based)."""
        try:
            return self.names.index((component, name))
        except ValueError:
            raise KeyError(f"no parameter {name!r} in component {component}") from None

    def error(self, component: int, name: str) -> np.ndarray:
        """(B,) standard deviation of the samples of one parameter; ``component`` is 1-based."""
        return self.std[:, self.column(component, name)]
