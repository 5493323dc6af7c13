"""How mixed a training pipeline's batches are: where each delivered record was stored.

An `Index` reads the shards once in storage order and remembers every record by its content
(its first x values and its length); the records a pipeline delivers are looked up in it,
which gives each one's shard and position. The benchmark's own labels are independent of
the storage order, so every order mixes them perfectly; the label figures instead use the
class each record would have if the classes were stored in sorted runs, two ways:
  by_shard   classes in runs across the shards in manifest order (shard i holds classes
             ~i*C/S to (i+1)*C/S): inputs grouped by class, written to the shards in turn.
  in_shard   every shard holds every class, in the same sorted order.
From one pass of batches, `measure` computes:
  shards_per_batch     distinct source shards in a batch, averaged (at most min(batch, shards)).
  autocorr_*           lag-1 autocorrelation of the class over the pass, record by record in
                       delivery order: ~0 for a uniform shuffle, ~1 in storage order.
  spread_*             standard deviation of the class within a batch over its standard
                       deviation over the data, averaged over the batches: ~1 when a batch holds
                       as varied a mix as the data, 0 when it holds one class.
  position_corr        correlation between a record's place in the pass and its relative position
                       in its shard: 0 when every part of every shard is equally likely at any
                       time, 1 when the shards are read front to back side by side.
A gradient that averages over a batch does not see the order within it: the spreads (what a
batch holds) matter to training; the record-level autocorrelations are reported as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

# Values of x (from the start of the flattened sample) that, with the length, identify a record.
KEY_VALUES = 4


def record_keys(x: np.ndarray, length: np.ndarray) -> list[bytes]:
    """One key per record of a batch: its first KEY_VALUES x values and its length, as bytes."""
    head = np.ascontiguousarray(x.reshape(len(x), -1)[:, :KEY_VALUES], dtype="<f4").view(np.uint8)
    tail = np.ascontiguousarray(length, dtype="<i8").reshape(-1, 1).view(np.uint8)
    return [row.tobytes() for row in np.concatenate([head, tail], axis=1)]


class Index:
    """Every record of some shards, by content: its shard and position in storage order.

    Args:
      shards: per shard in manifest order, the batches of (x, length) its records hold, in order.

    Raises:
      ValueError: two records with the same key (data this index cannot tell apart).
    """

    def __init__(self, shards: Iterable[Iterable[tuple[np.ndarray, np.ndarray]]]):
        self._where: dict[bytes, int] = {}
        shard_of, position = [], []
        for shard, batches in enumerate(shards):
            keys = [k for x, length in batches for k in record_keys(x, length)]
            for k in keys:
                self._where[k] = len(self._where)
            shard_of += [shard] * len(keys)
            position += list((np.arange(len(keys)) + 0.5) / len(keys))
        self.shard = np.array(shard_of)
        self.position = np.array(position)   # relative position in its shard, in (0, 1)
        if len(self._where) != len(self.shard):
            raise ValueError(f"{len(self.shard) - len(self._where)} records share their first {KEY_VALUES} "
                             "values and length: the index cannot tell them apart")

    def __len__(self) -> int:
        return len(self.shard)

    def locate(self, x: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Storage ranks of a delivered batch's records."""
        return np.array([self._where[k] for k in record_keys(x, length)])


@dataclasses.dataclass(frozen=True)
class Mixing:
    """How mixed one pass of batches is (see the module docstring)."""

    shards_per_batch: float
    autocorr_by_shard: float
    spread_by_shard: float
    autocorr_in_shard: float
    spread_in_shard: float
    position_corr: float


def _lag1(values: np.ndarray) -> float:
    centered = values - values.mean()
    denominator = float((centered * centered).sum())
    return float((centered[1:] * centered[:-1]).sum() / denominator) if denominator else 0.0


def _spread(classes: np.ndarray) -> float:
    """Mean within-batch standard deviation of [batches, batch] classes over their overall one."""
    overall = classes.std()
    return float(classes.std(axis=1).mean() / overall) if overall else 0.0


def measure(index: Index, ranks: np.ndarray, num_classes: int) -> Mixing:
    """Mixing figures of a pass.

    Args:
      index: the records' storage places.
      ranks: [batches, batch] storage ranks of the delivered records, in delivery order.
      num_classes: classes of the sorted-runs labellings.
    """
    by_shard = (np.arange(len(index)) * num_classes // len(index))[ranks].astype(np.float64)
    in_shard = np.floor(index.position * num_classes)[ranks]
    delivered = np.arange(ranks.size, dtype=np.float64)
    return Mixing(
        shards_per_batch=float(np.mean([len(set(row)) for row in index.shard[ranks]])),
        autocorr_by_shard=_lag1(by_shard.reshape(-1)),
        spread_by_shard=_spread(by_shard),
        autocorr_in_shard=_lag1(in_shard.reshape(-1)),
        spread_in_shard=_spread(in_shard),
        position_corr=float(np.corrcoef(delivered, index.position[ranks].reshape(-1))[0, 1]),
    )


def uniform_shuffle(index: Index, batch_size: int, seed: int = 0) -> np.ndarray:
    """The reference pass: a uniform random permutation of the records, as [batches, batch] ranks."""
    batches = len(index) // batch_size
    return np.random.default_rng(seed).permutation(len(index))[:batches * batch_size].reshape(batches, batch_size)
