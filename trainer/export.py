"""The serving SavedModel: raw tf.train.Examples in, class probabilities (or regression
values, in the target's original units) out, no train/serve skew.

The `serving_default` signature parses requests in the RAW schema (unnormalized, unpadded
values flattened row-major, plus `length`, as the pipeline read them) and runs them through
the very transform graph that produced the training records (`transform_features_layer()`)
before the model. Normalization and padding are never re-implemented, so they cannot drift.

Requests carry no label. tf.Transform (TF2) feeds a default for an input that is not given
and returns only the outputs that do not depend on it, so the transformed label simply does
not exist at serving time.

The transform layer is an attribute of the exported module, so its variables, tables and
assets (e.g. a label vocabulary) are saved with the model. The SavedModel needs TensorFlow
only: not tf.Transform, tf_keras or this repository.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer.data import DataInfo
from transforms import features

SIGNATURE = "serving_default"


def serving_feature_spec(info: DataInfo) -> dict[str, tf.io.VarLenFeature | tf.io.FixedLenFeature]:
    """Parse spec of a serving request: the raw schema without the label."""
    spec = info.spec.raw_feature_spec()
    del spec[features.LABEL]
    return spec


def raw_example(sample: np.ndarray, x_dtype: str = "float32") -> bytes:
    """A serving request for one sample as the pipeline read it ([T, *trailing], unnormalized and
    unpadded): its values flattened row-major, its length, no label.

    x_dtype: the raw schema's dtype of `x` (`DatasetSpec.raw_x_dtype`: "int64" for int32/int64/uint32
    data, else "float32").
    """
    values = sample.reshape(-1)
    if x_dtype == "int64":
        x = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    else:
        x = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    feature = {features.X: x, features.LENGTH: tf.train.Feature(int64_list=tf.train.Int64List(value=[len(sample)]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


class ServingModule(tf.Module):
    """The trained model behind the saved transform graph, with a raw-Example signature.

    Args:
      model: the trained model ({"x", "length"} -> logits, or the predicted target [B, 1]).
      info: the preprocessing run whose transform graph and raw schema serving uses.
    """

    def __init__(self, model: keras.Model, info: DataInfo):
        super().__init__(name="serving")
        self.model = model
        # Tracked as an attribute: saved with the module, tables and assets included.
        self.tft_layer = info.tft_output.transform_features_layer()
        vocabulary = info.manifest.label_vocabulary
        self.class_names = tf.constant(vocabulary, tf.string) if vocabulary else None
        raw_spec = serving_feature_spec(info)
        head = _regression_head(info) if info.task == "regression" else self._classes

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(examples: tf.Tensor) -> dict[str, tf.Tensor]:
            raw = tf.io.parse_example(examples, raw_spec)
            transformed = self.tft_layer(raw)
            logits = self.model({features.X: transformed[features.X],
                                 features.LENGTH: transformed[features.LENGTH]}, training=False)
            return head(logits)

        self.serve = serve

    def _classes(self, logits: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = {"probabilities": tf.nn.softmax(logits), "class_id": tf.argmax(logits, axis=-1)}
        if self.class_names is not None:
            outputs["class_name"] = tf.gather(self.class_names, outputs["class_id"])
        return outputs


def _regression_head(info: DataInfo):
    """The model's [B, 1] output as `value` [B] in the target's original units: the pipeline's
    standardization (its training mean and std, from the manifest) undone inside the export."""
    target = info.manifest.statistics.target
    mean, std = (target.mean, target.std) if target is not None and target.standardized else (0.0, 1.0)

    def head(predicted: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"value": predicted[:, 0] * tf.constant(std, tf.float32) + tf.constant(mean, tf.float32)}

    return head


def export_serving(model: keras.Model, info: DataInfo, export_dir: str) -> str:
    """Writes the serving SavedModel, replacing an older export in `export_dir`.

    Args:
      model: the trained model.
      info: the preprocessing run it was trained on.
      export_dir: where the SavedModel goes (e.g. model_dir/serving).

    Returns:
      export_dir. Its `serving_default` signature takes `examples` (a [N] string tensor of
      serialized raw tf.train.Examples) and returns `probabilities` [N, num_classes] float32,
      `class_id` [N] int64 and, for string labels, `class_name` [N] string; for regression,
      `value` [N] float32 in the target's original units.
    """
    module = ServingModule(model, info)
    if tf.io.gfile.exists(export_dir):
        tf.io.gfile.rmtree(export_dir)
    try:
        tf.saved_model.save(module, export_dir, signatures={SIGNATURE: module.serve.get_concrete_function()})
    except Exception:   # a half-written SavedModel (a full disk, say) is of no use: free its space
        if tf.io.gfile.exists(export_dir):
            tf.io.gfile.rmtree(export_dir)
        raise
    return export_dir
