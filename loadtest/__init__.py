"""Locust load tests of LiveDrop: viewers, buyers and commerce platforms during a flash sale.

``loadtest/locustfile.py`` is what Locust runs (locally, or master + workers in
docker-compose); ``python -m loadtest.run`` starts a whole local stack, plays a bounded show
through Locust and checks the stock ledger and the webhooks afterwards (see its docstring).
The modules other than the locustfile and ``wsclient`` import neither Locust nor gevent, so the
runner, the verdict and the tests can use them in an ordinary asyncio process.
"""
