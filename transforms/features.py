"""The features of a dataset: names, dtypes, shapes, padding and normalization choices.

Every other module takes feature names and shapes from here. A `DatasetSpec` is what the
pipeline learned about the input (trailing shape, dtype, longest sample, label kind) plus
the user's choices (normalization, max length). It is written into the manifest, so the
trainer and the serving export rebuild nothing by hand.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # TensorFlow loads lazily: the CLI validates flags before paying for it.
    import tensorflow as tf

# Feature keys, in the raw (pipeline input / serving input) and transformed (TFRecord) schema.
X = "x"
LENGTH = "length"
LABEL = "label"

NORMALIZE_MODES = ("zscore", "minmax", "none")
LABEL_KINDS = ("int", "string", "float", "none")
# The CLI's --label_type, and the label kinds each allows: class ids (ints or strings),
# regression targets (floats), or unlabeled data (a placeholder 0 in every record).
LABEL_TYPES = {"classification": ("int", "string"), "regression": ("float",), "none": ("none",)}
# Vocabulary file name of string labels, saved with the transform graph.
LABEL_VOCABULARY = "label"
# Label id given to a label the training vocabulary does not know (the pipeline quarantines it).
UNKNOWN_LABEL_ID = -1

# Source dtypes whose values are carried exactly by float32 in the raw Example; the wider
# integers travel as int64 so no precision is lost before the float64 statistics.
_INT64_SOURCE_DTYPES = frozenset({"int32", "int64", "uint32"})


@dataclasses.dataclass(frozen=True)
class Feature:
    """One feature of the transformed (training-ready) records.

    Attributes:
      name: feature key in the tf.train.Example.
      dtype: dtype name after the transform ("float32", "int64").
      shape: fixed shape of one example's value ([] for scalars).
      description: what the value means, for the manifest and docs.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    description: str

    def to_json(self) -> dict[str, Any]:
        """Returns a JSON-ready description of the feature."""
        return {"dtype": self.dtype, "shape": list(self.shape), "description": self.description}


_LABEL_FEATURES = {
    "classification": Feature(LABEL, "int64", (), "class id"),
    "regression": Feature(LABEL, "float32", (), "regression target, in its original units"),
    "none": Feature(LABEL, "int64", (), "placeholder 0: the data is unlabeled"),
}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a dataset's samples look like, and how they are padded and normalized.

    A sample is an array of shape [T, *trailing_shape]: T (its length) may vary between
    samples, the trailing dimensions may not.

    Attributes:
      trailing_shape: dimensions after the time axis, equal across the dataset.
      source_dtype: NumPy dtype name of the input arrays (e.g. "float32", "uint8").
      max_length: T after padding; longer samples are truncated.
      label_kind: "int" (ids used as they are), "string" (mapped through a vocabulary),
        "float" (regression targets, float32 as they are) or "none" (unlabeled: `label` is 0).
      normalize: "zscore", "minmax" or "none".
      per_element: statistics per element of [T, *trailing] instead of per channel of the
        last axis (only for fixed-shape data, where every sample has T == max_length).
      length_buckets: bounds of the length buckets, ascending, the last max_length; each
        sample is stored padded to the smallest bound that holds it. Empty: one length,
        max_length, for every sample.
    """

    trailing_shape: tuple[int, ...]
    source_dtype: str
    max_length: int
    label_kind: str = "int"
    normalize: str = "zscore"
    per_element: bool = False
    length_buckets: tuple[int, ...] = ()
    standardize_target: bool = False

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {self.normalize!r}")
        if self.label_kind not in LABEL_KINDS:
            raise ValueError(f"label_kind must be one of {LABEL_KINDS}, got {self.label_kind!r}")
        if self.standardize_target and self.label_kind != "float":
            raise ValueError("standardize_target is for regression targets only")
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        if self.length_buckets:
            b = self.length_buckets
            if list(b) != sorted(set(b)) or b[0] < 1 or b[-1] != self.max_length or self.per_element:
                raise ValueError(f"length_buckets must ascend from >= 1 to max_length={self.max_length}, "
                                 f"for sequences only; got {b}")

    @property
    def bucket_bounds(self) -> tuple[int, ...]:
        """The padded lengths records are stored at: the buckets' bounds, or max_length alone."""
        return self.length_buckets or (self.max_length,)

    @property
    def step_size(self) -> int:
        """Number of values in one time step (product of the trailing dimensions)."""
        return math.prod(self.trailing_shape)

    @property
    def num_channels(self) -> int:
        """Channels that get their own statistics: the last axis, or 1 for 1-D samples."""
        return self.trailing_shape[-1] if self.trailing_shape else 1

    @property
    def stats_shape(self) -> tuple[int, ...]:
        """Shape of each statistic (mean, std, ...)."""
        if self.per_element:
            return (self.max_length, *self.trailing_shape)
        return (self.num_channels,)

    @property
    def stats_width(self) -> int:
        """Number of statistics of each kind (the product of stats_shape)."""
        return math.prod(self.stats_shape)

    @property
    def raw_x_dtype(self) -> str:
        """dtype name of the flattened values in a raw Example ("float32" or "int64")."""
        return "int64" if self.source_dtype in _INT64_SOURCE_DTYPES else "float32"

    @property
    def raw_label_dtype(self) -> str:
        """dtype name of the label in a raw Example ("string" or "int64")."""
        return {"string": "string", "float": "float32"}.get(self.label_kind, "int64")

    @property
    def label_type(self) -> str:
        """The task the labels serve: "classification", "regression" or "none"."""
        return next(t for t, kinds in LABEL_TYPES.items() if self.label_kind in kinds)

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """Shape of one transformed `x`: [max_length, *trailing_shape]."""
        return (self.max_length, *self.trailing_shape)

    def raw_feature_spec(self) -> dict[str, tf.io.RaggedFeature | tf.io.FixedLenFeature]:
        """Feature spec of the raw schema: unpadded, unnormalized values and their length.

        `x` holds the sample's values flattened row-major ([T * prod(trailing)] values),
        parsed as a RaggedTensor [batch, (values)]; this is also what serving parses.
        """
        import tensorflow as tf

        return {
            X: tf.io.RaggedFeature(tf.as_dtype(self.raw_x_dtype), value_key=X, row_splits_dtype=tf.int64),
            LENGTH: tf.io.FixedLenFeature([], tf.int64),
            LABEL: tf.io.FixedLenFeature([], tf.as_dtype(self.raw_label_dtype)),
        }

    def transformed_features(self) -> dict[str, Feature]:
        """The features of the written TFRecords, all fixed-length."""
        return {
            X: Feature(X, "float32", self.padded_shape,
                       f"normalized ({self.normalize}) values, zero-padded after `length` steps"),
            LENGTH: Feature(LENGTH, "int64", (), "valid time steps before padding"),
            LABEL: _LABEL_FEATURES[self.label_type],
        }

    def to_json(self) -> dict[str, Any]:
        """Returns the spec as a JSON-ready dict (stored in the manifest)."""
        data = dataclasses.asdict(self)
        data["trailing_shape"] = list(self.trailing_shape)
        data["length_buckets"] = list(self.length_buckets)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetSpec:
        """Rebuilds a spec written by `to_json`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["trailing_shape"] = tuple(kwargs["trailing_shape"])
        kwargs["length_buckets"] = tuple(kwargs.get("length_buckets", ()))
        return cls(**kwargs)
