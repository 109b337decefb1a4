"""SavedModelBundle: a SavedModel version loaded the way TF Serving loads it.

TF Serving does not use Keras or ``tf.saved_model.load``: it loads the meta
graph tagged ``serve`` with TensorFlow's SavedModel loader into a session of
its own (restoring the variables and running ``__saved_model_init_op``), reads
the SignatureDefs from that meta graph, and runs a signature by feeding and
fetching the tensor names the SignatureDef lists. `SavedModelBundle` does the
same, so what passes here is what the server sees; the export's check and the
local TF-Serving-compatible server both use it.
"""

import collections.abc
import os

import numpy as np
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl

SERVE_TAG = "serve"


class SavedModelBundle:
    """A SavedModel version in its own graph and session, run by signature.

    Args:
      export_dir: a version directory (``<base path>/<version>``) holding
        ``saved_model.pb`` and ``variables/``.
      tags: the meta graph to load. Defaults to ``("serve",)``, TF Serving's
        ``--saved_model_tags`` default.
      session_config: an optional ``tf.compat.v1.ConfigProto`` for the
        session (thread pools). Defaults to None.

    Attributes:
      signatures: ``{signature name: SignatureDef proto}``, as TF Serving's
        metadata API reports them.

    Example:
      >>> with SavedModelBundle("models/digits/1") as bundle:
      ...     outputs = bundle.run("serving_default", {"input_1": x[:4]})
    """

    def __init__(self, export_dir, tags=(SERVE_TAG,), session_config=None):
        export_dir = os.fspath(export_dir)
        if not tf.saved_model.contains_saved_model(export_dir):
            raise ValueError(f"{export_dir!r} holds no SavedModel (no saved_model.pb); give a "
                             "version directory such as '<base path>/1'.")
        self.export_dir = export_dir
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph, config=session_config)
        try:
            with self._graph.as_default():
                # loader_impl's class is tf.compat.v1.saved_model.load without its
                # deprecation warning: the TF1 loader is the point here.
                meta_graph = loader_impl.SavedModelLoader(export_dir).load(
                    self._session, list(tags))
        except Exception:
            self._session.close()
            raise
        self.signatures = dict(meta_graph.signature_def)

    def signature(self, name):
        """The SignatureDef called `name`; ValueError naming the known ones otherwise."""
        if name not in self.signatures:
            raise ValueError(f"Serving signature name: {name!r} not found in signature def; "
                             f"{self.export_dir!r} has {sorted(self.signatures)}.")
        return self.signatures[name]

    def input_specs(self, name):
        """``{input key: tf.TensorSpec}`` of signature `name` (shape, dtype, tensor name)."""
        return {key: _spec(info) for key, info in self.signature(name).inputs.items()}

    def output_specs(self, name):
        """``{output key: tf.TensorSpec}`` of signature `name`."""
        return {key: _spec(info) for key, info in self.signature(name).outputs.items()}

    def run(self, name, inputs, output_filter=None, options=None, run_metadata=None):
        """Runs signature `name` on `inputs` and returns its outputs.

        Args:
          name: the signature, e.g. "serving_default" or "classify".
          inputs: ``{input key: array}`` with exactly the signature's input
            keys; a bare array for a signature with one input. Arrays are fed
            as they are (the session casts numbers to the input's dtype).
          output_filter: output keys to fetch. Defaults to all of them.
          options: a ``tf.compat.v1.RunOptions`` (tracing, timeouts) for the
            session run. Defaults to None.
          run_metadata: a ``tf.compat.v1.RunMetadata`` that receives the
            run's step stats when `options` asks for a trace. Defaults to None.

        Returns:
          ``{output key: numpy array}``.

        Raises:
          ValueError: unknown signature, missing or extra input keys,
            unknown output keys. TensorFlow's own errors (wrong shape, a
            string fed to a float input) propagate as ``tf.errors.OpError``.
        """
        signature = self.signature(name)
        if not isinstance(inputs, collections.abc.Mapping) and len(signature.inputs) == 1:
            inputs = {next(iter(signature.inputs)): inputs}
        if not isinstance(inputs, collections.abc.Mapping):
            raise ValueError(f"Signature {name!r} takes several inputs "
                             f"{sorted(signature.inputs)}: give a dict keyed by them.")
        sent, wanted = set(inputs), set(signature.inputs)
        if sent != wanted:
            raise ValueError(
                f"input size does not match signature {name!r}: {len(sent)}!={len(wanted)} "
                f"len({sorted(sent)}) != len({sorted(wanted)}). Sent extra: "
                f"{sorted(sent - wanted)}. Missing but required: {sorted(wanted - sent)}.")
        keys = list(signature.outputs) if output_filter is None else list(output_filter)
        unknown = [key for key in keys if key not in signature.outputs]
        if unknown or len(set(keys)) != len(keys):
            raise ValueError(f"output_filter {keys} must name distinct outputs of signature "
                             f"{name!r}: {sorted(signature.outputs)}.")
        feeds = {signature.inputs[key].name: np.asarray(value) for key, value in inputs.items()}
        fetches = {key: signature.outputs[key].name for key in keys}
        return self._session.run(fetches, feeds, options=options, run_metadata=run_metadata)

    @property
    def session(self):
        """The `tf.compat.v1.Session` holding the loaded graph, for callers that build
        their own run calls (a server's cached callables); closed by `close`."""
        return self._session

    def close(self):
        """Releases the session; the bundle cannot run afterwards."""
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        self.close()


def _spec(info):
    shape = (None if info.tensor_shape.unknown_rank else
             [None if d.size < 0 else d.size for d in info.tensor_shape.dim])
    return tf.TensorSpec(shape, tf.as_dtype(info.dtype), name=info.name)
