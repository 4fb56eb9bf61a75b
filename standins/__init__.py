"""Stand-in commerce platforms (Shopify, TikTok Shop, Meta, WooCommerce) for tests and demos.

Each is a small Starlette app that keeps its own stock, checks credentials and signatures as
the platform documents them, refuses what the platform refuses, throttles by its documented
limits, and sends signed order webhooks when something is "sold" on it. It plays an external
platform, so this package imports nothing from LiveDrop. See docs/standins.md.
"""
