"""Writes TF Serving REST requests for real digits, and a reference sample for drift reports.

Run in this folder after the export (README.md, "First requests"):

    python make_requests.py models/digits

predict.json and classify.json ask about two digits; traffic.json holds the
last 797 of scikit-learn's 1,797 digits in one predict request, and
reference.npz the first 1,000 with their labels (`x_train`, `y_train`), what
`tfopt-monitor --reference` compares logged requests with. The classify
request's feature is named like the model's input, which is read from the
newest version's serving_default signature, so the files fit whatever the
model's input layer is called.
"""

import json
import os
import sys

import numpy as np
from sklearn.datasets import load_digits

REFERENCE_DIGITS = 1000


def _input_name(base_path):
    # The SavedModel proto alone: no TensorFlow graph needs to load for a name.
    from tensorflow.core.protobuf import saved_model_pb2
    version = max((name for name in os.listdir(base_path) if name.isdigit()), key=int)
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(base_path, version, "saved_model.pb"), "rb") as stream:
        saved_model.ParseFromString(stream.read())
    [meta_graph] = saved_model.meta_graphs
    [name] = meta_graph.signature_def["serving_default"].inputs
    return name


def main(base_path, count=2):
    # The images as tfopt.datasets.load_digits gives them: 8x8x1 floats in [0, 1].
    digits = load_digits()
    every = digits.images[:, :, :, None] / 16.0
    images = every[:count]
    # Row format, one input: each instance is one image as nested lists.
    with open("predict.json", "w") as stream:
        json.dump({"instances": images.tolist()}, stream)
    # tf.Example features: the image flattened, JSON floats (an integer would be int64).
    name = _input_name(base_path)
    with open("classify.json", "w") as stream:
        json.dump({"signature_name": "classify",
                   "examples": [{name: [float(v) for v in image.ravel()]} for image in images]},
                  stream)
    with open("traffic.json", "w") as stream:
        json.dump({"instances": every[REFERENCE_DIGITS:].tolist()}, stream)
    np.savez("reference.npz", x_train=every[:REFERENCE_DIGITS].astype(np.float32),
             y_train=digits.target[:REFERENCE_DIGITS])
    print(f"predict.json, classify.json: {count} digits (feature {name!r}); traffic.json: "
          f"{len(every) - REFERENCE_DIGITS} digits; reference.npz: {REFERENCE_DIGITS} digits")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join("models", "digits"))
