"""Signals of the loyalty app, for the sub-apps that add to it (rewards, referrals).

`points_swept(customer_ids, wrote)` is sent at the end of every earning sweep
(`points_earn_for_orders`), after its transactions committed; `customer_ids` is None after a sweep of
everyone; `wrote` says whether the sweep enrolled, earned, upgraded or reversed anything (its writes
are set-based, so no row signal tells; what a receiver credits itself goes through `credit`). A receiver runs
in the sweep's task: an exception fails the task (and is retried by the next sweep, since receivers
must be idempotent).
"""

from django.dispatch import Signal

points_swept = Signal()
