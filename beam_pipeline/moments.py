"""Exact float64 count, mean, variance, min and max per column, mergeable in any order.

Chan et al.'s parallel update: each batch is summarized on its own (a mean and the sum of
squared deviations from it), and summaries merge pairwise. Unlike running sums of x and
x**2, this keeps full precision on data with large offsets (float32 values of 1e4 +- 1).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Moments:
    """Moments of `count` rows of `width` columns (every column has the same count).

    Attributes:
      count: rows summarized.
      mean: float64 [width].
      m2: float64 [width], the sum of squared deviations from `mean`.
      min: float64 [width] (+inf when empty).
      max: float64 [width] (-inf when empty).
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def empty(cls, width: int) -> Moments:
        """The moments of no rows: the identity of `merge`."""
        return cls(0, np.zeros(width), np.zeros(width), np.full(width, np.inf), np.full(width, -np.inf))

    @classmethod
    def of(cls, rows: np.ndarray) -> Moments:
        """Summarizes a [rows, width] array of any numeric dtype, in float64."""
        values = np.asarray(rows, dtype=np.float64)
        if not len(values):
            return cls.empty(values.shape[1])
        mean = values.mean(axis=0)
        return cls(len(values), mean, ((values - mean) ** 2).sum(axis=0), values.min(axis=0), values.max(axis=0))

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets of rows together."""
        n = self.count + other.count
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        delta = other.mean - self.mean
        return Moments(n, self.mean + delta * (other.count / n),
                       self.m2 + other.m2 + delta ** 2 * (self.count * other.count / n),
                       np.minimum(self.min, other.min), np.maximum(self.max, other.max))

    @property
    def variance(self) -> np.ndarray:
        """Population variance (ddof=0), 0 when empty."""
        return self.m2 / max(self.count, 1)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (ddof=0), as Keras Normalization and tft.var use."""
        return np.sqrt(self.variance)
