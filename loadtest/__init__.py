"""Locust load tests of LiveDrop: viewers, buyers and commerce platforms during a flash sale.

``loadtest/locustfile.py`` is what Locust runs (locally, or master + workers in
docker-compose); ``python -m loadtest.run`` starts a whole local stack, plays a bounded show
through Locust and checks the stock ledger and the webhooks afterwards (see its docstring).
Everything here talks to LiveDrop through its public surfaces only: the host API, the viewer
WebSocket, signed webhooks over HTTP and the ``livedrop`` command (tests/test_loadtest_imports.py).
The modules other than the locustfile and ``wsclient`` import neither Locust nor gevent, so the
runner, the verdict and the tests can use them in an ordinary asyncio process.
"""
