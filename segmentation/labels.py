"""Translated labels for the analytics keys.

`segmentation.analytics` holds stable keys and plain English strings (it must not import Django). The
Django layer shows them through these tables, wrapped in `gettext_lazy` so makemessages collects
them and every page shows them in the user's language. A test checks that every analytics key has a
label here, so a new segment or stage cannot appear untranslated.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from segmentation.analytics import lifecycle, rfm


class RfmSegment(models.TextChoices):
    CHAMPIONS = rfm.SEGMENT_CHAMPIONS, _("Champions")
    LOYAL = rfm.SEGMENT_LOYAL, _("Loyal")
    POTENTIAL_LOYALIST = rfm.SEGMENT_POTENTIAL_LOYALIST, _("Potential Loyalist")
    NEW = rfm.SEGMENT_NEW, _("New")
    PROMISING = rfm.SEGMENT_PROMISING, _("Promising")
    NEED_ATTENTION = rfm.SEGMENT_NEED_ATTENTION, _("Need Attention")
    ABOUT_TO_SLEEP = rfm.SEGMENT_ABOUT_TO_SLEEP, _("About to Sleep")
    AT_RISK = rfm.SEGMENT_AT_RISK, _("At Risk")
    CANNOT_LOSE = rfm.SEGMENT_CANNOT_LOSE, _("Cannot Lose Them")
    HIBERNATING = rfm.SEGMENT_HIBERNATING, _("Hibernating")
    LOST = rfm.SEGMENT_LOST, _("Lost")


# The action each RFM segment calls for (the analytics text, shortened and translated).
SEGMENT_ACTIONS = {
    RfmSegment.CHAMPIONS: _("Reward them. Ask for reviews and referrals; offer new products first."),
    RfmSegment.LOYAL: _("Upsell higher-value products, ask for reviews, keep them engaged."),
    RfmSegment.POTENTIAL_LOYALIST: _("Offer membership or the loyalty programme; recommend other products."),
    RfmSegment.NEW: _("Welcome them: on-boarding support and an early success build the relationship."),
    RfmSegment.PROMISING: _("Build brand awareness; offer free trials and samples."),
    RfmSegment.NEED_ATTENTION: _("Make limited-time offers; recommend based on past purchases."),
    RfmSegment.ABOUT_TO_SLEEP: _("Reconnect: share useful content, popular products or renewal discounts."),
    RfmSegment.AT_RISK: _("Send personalised win-back messages; offer renewals and help."),
    RfmSegment.CANNOT_LOSE: _(
        "Call them: win them back with renewals or new products before a competitor does."
    ),
    RfmSegment.HIBERNATING: _("Offer other relevant products and special discounts."),
    RfmSegment.LOST: _("Try one reach-out campaign; otherwise do not spend on them."),
}

# Overview order: best to worst, as the analytics module lists them.
SEGMENT_ORDER = [info.key for info in rfm.SEGMENTS]


class LifecycleStage(models.TextChoices):
    PROSPECT = lifecycle.STAGE_PROSPECT, _("Prospect")
    NEW = lifecycle.STAGE_NEW, _("New")
    REPEAT = lifecycle.STAGE_REPEAT, _("Repeat")
    LOYAL = lifecycle.STAGE_LOYAL, _("Loyal")
    AT_RISK = lifecycle.STAGE_AT_RISK, _("At risk")
    CHURNED = lifecycle.STAGE_CHURNED, _("Churned")
    REACTIVATED = lifecycle.STAGE_REACTIVATED, _("Reactivated")


STAGE_DESCRIPTIONS = {
    LifecycleStage.PROSPECT: _("Known contact without any purchase yet."),
    LifecycleStage.NEW: _("Made a first purchase recently and has not bought again yet."),
    LifecycleStage.REPEAT: _("Bought on at least two different days and is active."),
    LifecycleStage.LOYAL: _("Buys regularly (many purchase days or a Champions/Loyal RFM segment)."),
    LifecycleStage.AT_RISK: _(
        "Overdue compared with their usual purchase interval, or unlikely to be active."
    ),
    LifecycleStage.CHURNED: _("Silent for far longer than their usual purchase interval."),
    LifecycleStage.REACTIVATED: _("Was at risk or churned and has purchased again since."),
}

# Funnel order: from first contact to the most valuable stage, then the ones slipping away.
STAGE_ORDER = [
    LifecycleStage.PROSPECT,
    LifecycleStage.NEW,
    LifecycleStage.REPEAT,
    LifecycleStage.LOYAL,
    LifecycleStage.REACTIVATED,
    LifecycleStage.AT_RISK,
    LifecycleStage.CHURNED,
]


class ClvModel(models.TextChoices):
    BGNBD_GG = "bgnbd_gg", _("BG/NBD + Gamma-Gamma")
    HISTORICAL = "historical", _("Historical estimate")


def segment_label(key: str | None) -> str:
    if not key:
        return ""
    try:
        return RfmSegment(key).label
    except ValueError:
        return key


def stage_label(key: str | None) -> str:
    if not key:
        return ""
    try:
        return LifecycleStage(key).label
    except ValueError:
        return key
