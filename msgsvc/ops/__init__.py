"""The operator's view of a running server (``--metrics``, ``--log-format``): Prometheus metrics, health
checks and JSON logs.

* :mod:`msgsvc.ops.counts`: what the hub's events tell (refusals, logins, drops), counted.
* :mod:`msgsvc.ops.lag`: how late the reactor turns.
* :mod:`msgsvc.ops.metrics`: every count and gauge, read when Prometheus scrapes.
* :mod:`msgsvc.ops.site`: ``/metrics``, ``/healthz`` and ``/readyz`` over twisted.web.
* :mod:`msgsvc.ops.logs`: twisted.logger's JSON events, one a line, for a log shipper.
* :mod:`msgsvc.ops.watchdog`: systemd's watchdog, told the reactor turns.
"""
