"""Serving: TF Serving's client side, a local TF-Serving-compatible server, monitoring.

The modules here are private for now; the public names are added as each piece lands.
Request logs (`PredictionLog` TFRecord files) are read by ``_request_logs``,
input and prediction drift are measured by ``_drift`` and reported by
``_monitor_report``, behind the ``tfopt-monitor`` tool.
"""
