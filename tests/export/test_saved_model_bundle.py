"""SavedModelBundle: the TF1 loader with tag serve, signatures run by tensor name."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfopt.export._saved_model import saved_model
from tfopt.export._saved_model_bundle import SavedModelBundle


def _half_plus_two(directory):
    """TF Serving's half_plus_two, written by the TF1 builder with a ref variable: a
    SavedModel no Keras code made, which the TF1 loader (as in TF Serving) runs."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        a = tf.compat.v1.Variable(0.5, name="a", use_resource=False)
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        y = tf.add(a * x, 2.0, name="y")
        session.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(str(directory))
        signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(session, ["serve"],
                                             signature_def_map={"serving_default": signature})
        builder.save()
    return str(directory)


def test_a_tf1_saved_model_loads_and_runs_by_signature(tmp_path):
    with SavedModelBundle(_half_plus_two(tmp_path / "1")) as bundle:
        assert bundle.run("serving_default", {"x": [1.0, 2.0, 5.0]})["y"] == pytest.approx(
            [2.5, 3.0, 4.5])
        specs = bundle.input_specs("serving_default")
    assert specs["x"].shape.as_list() == [None] and specs["x"].dtype == tf.float32


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory):
    a, b = keras.Input((2,), name="a"), keras.Input((3,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    model = keras.Model([a, b], [keras.layers.Dense(1, name="sum")(joined),
                                 keras.layers.Dense(2, name="pair")(joined)])
    version = saved_model(model, tmp_path_factory.mktemp("bundle") / "m")
    with SavedModelBundle(version) as bundle:
        yield bundle


def test_outputs_can_be_filtered(two_inputs):
    feeds = {"a": np.ones((4, 2)), "b": np.ones((4, 3))}
    assert sorted(two_inputs.run("serving_default", feeds)) == ["pair", "sum"]
    only = two_inputs.run("serving_default", feeds, output_filter=["pair"])
    assert list(only) == ["pair"] and only["pair"].shape == (4, 2)


def test_a_run_can_be_traced(two_inputs):
    metadata = tf.compat.v1.RunMetadata()
    two_inputs.run("serving_default", {"a": np.ones((4, 2)), "b": np.ones((4, 3))},
                   options=tf.compat.v1.RunOptions(
                       trace_level=tf.compat.v1.RunOptions.FULL_TRACE),
                   run_metadata=metadata)
    ops = {node.node_name for device in metadata.step_stats.dev_stats
           for node in device.node_stats}
    assert any("MatMul" in op for op in ops)


@pytest.mark.parametrize("call, message", [
    (lambda b: b.run("predict", {}), r"'predict' not found in signature def.*serving_default"),
    (lambda b: b.run("serving_default", {"a": np.ones((1, 2)), "c": np.ones((1, 3))}),
     r"Sent extra: \['c'\]. Missing but required: \['b'\]"),
    (lambda b: b.run("serving_default", np.ones((1, 2))), "several inputs"),
    (lambda b: b.run("serving_default", {"a": np.ones((1, 2)), "b": np.ones((1, 3))},
                     output_filter=["total"]), "output_filter"),
])
def test_requests_that_do_not_fit_the_signature_are_refused(two_inputs, call, message):
    with pytest.raises(ValueError, match=message):
        call(two_inputs)


def test_a_directory_without_a_saved_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="holds no SavedModel"):
        SavedModelBundle(tmp_path)
