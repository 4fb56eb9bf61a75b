"""Checkout hand-off: after a hold, the viewer's ``reserved`` answer carries a link into the
merchant's own store (Shopify cart permalink, WooCommerce add-to-cart link, or the merchant's
own checkout), with the hold's signed reference in it, so that the store's order webhook, or the
merchant's checkout calling the confirm API, pays for that hold and no other. See docs/checkout.md."""
