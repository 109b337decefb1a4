"""Serving: TF Serving's client side, a local TF-Serving-compatible server, monitoring.

The modules here are private for now; the public names are added as each piece lands.
Monitoring, behind the ``tfopt-monitor`` tool: ``_request_logs`` reads request logs
(TFRecord files of `PredictionLog`; classify and regress records through
``_example_logs``), ``_drift`` measures input and prediction drift, ``_monitor``
compares the logs with a reference sample, and ``_monitor_report`` writes the report.
"""
