"""Sales channels: LiveDrop's stock pushed to every platform, and the orders their webhooks leave thin
pulled back (docs/channels.md).

* ``base``: the ``Channel`` protocol every connector implements, and the pure types of a push.
* ``http``: the one HTTP client (timeouts, ``Retry-After``, jittered backoff) and its errors.
* ``shopify``, ``tiktok`` (with ``signing``), ``meta``, ``woocommerce``: one connector each.
* ``config``: channels and credentials from the environment (secrets never in a ``repr``).
* ``mapping``: a drop SKU's ids on each channel, in Redis.
* ``store``: the channel keys' scripts: dirty marks, acknowledgements, the lease.
* ``push``: the flush loop of one channel (coalescing, budgets, alerts).
* ``pull``: TikTok Shop and Meta orders read back into the webhook pipeline.
* ``service``: the wiring for the app's lifespan.
"""
