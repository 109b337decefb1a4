"""Writes TF Serving's classic test model, half_plus_two, with TF1 graph APIs.

The model TF Serving tests its own server with
(``servables/tensorflow/testdata/saved_model_half_plus_two.py``): a
placeholder of serialized ``tf.Example``s, parsed for a float feature "x"
(and "x2", defaulting to 0), and y = a x + b with variables a = 0.5, b = 2
(y2 = a x + 3). Its signatures:

  serving_default   predict   x -> y   (fed the parsed tensor "x")
  classify_x_to_y   classify  inputs (examples) -> scores = y
  regress_x_to_y    regress   inputs (examples) -> outputs = y
  regress_x_to_y2   regress   inputs (examples) -> outputs = y2

Run as a script to write one version: ``python half_plus_two.py BASE_PATH [VERSION]``.
"""

import os
import sys

import tensorflow as tf

v1 = tf.compat.v1
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


def _signature(inputs, outputs, method):
    return v1.saved_model.signature_def_utils.build_signature_def(
        {key: v1.saved_model.utils.build_tensor_info(t) for key, t in inputs.items()},
        {key: v1.saved_model.utils.build_tensor_info(t) for key, t in outputs.items()},
        method)


def write(base_path, version=123):
    """Writes half_plus_two as version `version` under `base_path`; returns the version dir."""
    export_dir = os.path.join(os.fspath(base_path), str(version))
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(2.0, name="b")
        c = v1.Variable(3.0, name="c")
        examples = v1.placeholder(tf.string, shape=[None], name="tf_example")
        features = v1.io.parse_example(examples, {
            "x": v1.io.FixedLenFeature([1], tf.float32),
            "x2": v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
        })
        x = tf.identity(features["x"], name="x")
        y = tf.identity(a * x + b, name="y")
        y2 = tf.identity(a * x + c, name="y2")
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.builder.SavedModelBuilder(export_dir)
        builder.add_meta_graph_and_variables(session, [v1.saved_model.tag_constants.SERVING],
                                             signature_def_map={
            "serving_default": _signature({"x": x}, {"y": y}, PREDICT_METHOD),
            "classify_x_to_y": _signature({"inputs": examples}, {"scores": y}, CLASSIFY_METHOD),
            "regress_x_to_y": _signature({"inputs": examples}, {"outputs": y}, REGRESS_METHOD),
            "regress_x_to_y2": _signature({"inputs": examples}, {"outputs": y2}, REGRESS_METHOD),
        })
        builder.save()
    return export_dir


def example(x):
    """A serialized tf.Example with the float feature "x" = `x`, as the model parses it."""
    return tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))})).SerializeToString()


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: half_plus_two.py BASE_PATH [VERSION]")
    print(write(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 123))
