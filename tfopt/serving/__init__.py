"""Serving: a TF Serving client, the serving core of a local TF-Serving-compatible server,
and monitoring of deployed models.

- `Client` calls TF Serving (or tfopt's local server) over gRPC, through the official
  tensorflow-serving-api stubs, or over REST, in TF Serving's JSON formats; numpy in,
  numpy out; server errors raise `ServingError` with the server's code and message.
- The server side: ``_manager`` (`ServableManager`: versions, policies, labels, warmup,
  polling), ``_servable`` (one loaded version, by signature, as TF Serving runs it),
  ``_grpc`` (PredictionService and ModelService), ``_rest`` and the ``_json_*`` modules
  (TF Serving's REST API and JSON formats), ``_batching``.
- Monitoring, behind the ``tfopt-monitor`` tool: ``_request_logs`` reads request logs
  (TFRecord files of `PredictionLog`), ``_drift`` measures input and prediction drift,
  ``_monitor`` and ``_monitor_report`` compare logs with a reference and write the report.

Example:
  >>> from tfopt import serving
  >>> client = serving.Client("localhost", model_name="digits", protocol="grpc")
  >>> client.predict(x_test[:4])
"""

from tfopt.serving._client import Client
from tfopt.serving._errors import ServingError
