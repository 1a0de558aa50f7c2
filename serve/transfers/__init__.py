"""Transfer orders between the hotlines (issue 19): an order both sides can follow to its end.

- :mod:`serve.transfers.tables`: the tables (orders, their append-only events, the outbox);
- :mod:`serve.transfers.store`: creating orders and moving them through their life cycle;
- :mod:`serve.transfers.outbox`: notices to partners' URLs, retried with backoff;
- :mod:`serve.transfers.consults`: three-way consult outcomes (三方通话) and the order they lead to
  (API ``/v1/consults`` in :mod:`serve.routes.consults`);
- :mod:`serve.routes.transfers`: the HTTP API (``/v1/transfers``).
"""
