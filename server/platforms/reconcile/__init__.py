"""Reconciliation of a show's stock with what the commerce platforms say (DESIGN §6).

The report of a show lists, per drop:

* **holds confirmed without a platform order**: the checkout confirmed the hold (state ``confirmed``)
  but no platform order line has matched it (``Hold.matched_line == ""``) within the grace period.
  Either the platform's webhook was lost, or the checkout confirmed something nobody bought;
* **platform orders without a hold**: sales that took units from ``available`` rather than from a
  hold, each with why — ``no_hold_ref`` (the order named none), ``hold_ref_invalid`` (the reference
  failed verification: forged, altered, or for a hold that no longer exists), ``hold_expired``,
  ``hold_released``, ``hold_taken`` (matched to another line, or paid by another order),
  ``hold_other_drop``, ``hold_not_found``;
* **conflicting confirms** (``hold_taken``): a checkout confirmed a hold already confirmed with
  another order — two payments for one hold, answered 409;
* **sales on a drop that was not live** (closed, or not launched yet): applied, but worth a look;
* **oversold** units (the counter) and the lines that were oversold;
* **cancellations restocked**: each cancel or refund that gave units back, and how many;
* lines **cancelled before their order** arrived (a whole-line cancel makes the order be ignored;
  a partial refund is applied when the order comes);

and, for the whole deployment (they belong to no drop): **unknown SKUs**, **notifications that need
a fetch** from the platform's API (TikTok Shop, Meta), lines with a quantity no sale can have
(``bad_qty``: ≤ 0 or over 10,000, not applied), and events the engine refused.

Per-drop facts come from the drop's ledger, which the stock engine writes exactly once per change,
so a delivery applied twice never shows twice; the reasons a named hold was not used come from
``ld:{show:<id>}:sale_holds``, written when the sale was applied. The ledger is read in full: the
cost is one pass over it per report, which is why the periodic reconciler runs once per interval
on one node only (a lock per show) and only for shows that are on, or ended less than a day ago.

Modules: ``report`` (the report's types and the pure fold of a ledger), ``read`` (building a
report from Redis), ``service`` (the periodic reconciler), ``cli`` (``livedrop reconcile``).
"""
