"""``python -m standins shopify|tiktok|meta|woocommerce|all``: see ``standins.cli``."""

from __future__ import annotations

import sys

from standins.cli import main

sys.exit(main())
