"""Pure-Python analytics core of the segmentation app (RFM, BG/NBD + Gamma-Gamma CLV, lifecycle).

Nothing in this package imports Django: the functions take and return pandas/numpy objects so they can
be unit-tested and benchmarked on their own. Modules:

* :mod:`.rfm` -- recency/frequency/monetary measures, ties-safe 1..5 scores, the 11 named segments;
* :mod:`.clv` -- RFM summary, BG/NBD and Gamma-Gamma fits, CLV, historical fallback, holdout check;
* :mod:`.lifecycle` -- rule-based lifecycle stages;
* :mod:`.simulate` -- exact BG/NBD and Gamma-Gamma simulators (tests, demo data).
"""

from segmentation.analytics.clv import (
    BGNBDFit,
    GammaGammaFit,
    HoldoutValidation,
    ModelReport,
    bgnbd_expected_purchases,
    bgnbd_log_likelihood,
    bgnbd_population_expected_purchases,
    bgnbd_probability_alive,
    customer_lifetime_value,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_expected_value,
    gamma_gamma_log_likelihood,
    historical_clv_fallback,
    holdout_validation,
    predict_clv,
    summary_from_transactions,
)
from segmentation.analytics.lifecycle import STAGES, assign_lifecycle_stage, lifecycle_features
from segmentation.analytics.rfm import SEGMENTS, assign_segments, compute_rfm, rfm_segment, score_rfm

__all__ = [
    "SEGMENTS",
    "STAGES",
    "BGNBDFit",
    "GammaGammaFit",
    "HoldoutValidation",
    "ModelReport",
    "assign_lifecycle_stage",
    "assign_segments",
    "bgnbd_expected_purchases",
    "bgnbd_log_likelihood",
    "bgnbd_population_expected_purchases",
    "bgnbd_probability_alive",
    "compute_rfm",
    "customer_lifetime_value",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "gamma_gamma_expected_value",
    "gamma_gamma_log_likelihood",
    "historical_clv_fallback",
    "holdout_validation",
    "lifecycle_features",
    "predict_clv",
    "rfm_segment",
    "score_rfm",
    "summary_from_transactions",
]
