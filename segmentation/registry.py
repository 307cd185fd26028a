"""Actions other apps offer on a churn alert in the alerts queue (a hook, like `customers.registry`).

Segmentation stands below nothing it could call for "turn this alert into a follow-up": the apps
beside it (interactions) create follow-ups from `segmentation.signals.churn_alerts_raised` and, to
show the way to what they made, register an action in their `AppConfig.ready()`:

    from segmentation.registry import AlertAction, register_alert_action

    def follow_up_links(alerts, user) -> dict[int, str]:
        # ONE query for the whole page: {alert id: url} of the follow-ups that exist and the user may see
        rows = FollowUp.objects.filter(alert_id__in=[a.pk for a in alerts]).values_list("alert_id", "pk")
        return {alert_id: reverse("interactions:followup", args=[pk]) for alert_id, pk in rows}

    register_alert_action(
        AlertAction(key="interactions.follow_up", label=_("Follow-up"), links=follow_up_links, order=10)
    )

`links(alerts, user)` gets the alerts of one page (with `customer` loaded) and the requesting user and
returns {alert id: url} for the alerts it has something for (others show nothing). It is called once
per page: keep it to one query. A failing action is logged and left out; it never breaks the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

AlertLinks = Callable[[list[Any], Any], dict[int, str]]


@dataclass(frozen=True)
class AlertAction:
    key: str
    label: Any  # a (lazy) translated string
    links: AlertLinks
    order: int = 50


_actions: dict[str, AlertAction] = {}


def register_alert_action(action: AlertAction) -> None:
    """Add (or replace, by key) an action shown on every alert row it returns a link for."""
    _actions[action.key] = action


def unregister_alert_action(key: str) -> None:
    _actions.pop(key, None)


def alert_actions() -> list[AlertAction]:
    return sorted(_actions.values(), key=lambda action: (action.order, action.key))


def alert_action_links(alerts: Iterable[Any], user: Any) -> dict[int, list[tuple[str, Any, str]]]:
    """{alert id: [(action key, label, url), ...]} for one page of alerts."""
    alerts = list(alerts)
    out: dict[int, list[tuple[str, Any, str]]] = {}
    if not alerts:
        return out
    for action in alert_actions():
        try:
            links = action.links(alerts, user) or {}
        except Exception:
            logger.exception("alert action %s failed", action.key)
            continue
        for alert_id, url in links.items():
            if url:
                out.setdefault(int(alert_id), []).append((action.key, action.label, str(url)))
    return out
