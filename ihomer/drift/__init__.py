"""Concept-drift detectors as numba kernels over flat ``float64`` state rows.

Each detector's whole state is one fixed-length vector, so a pool of detectors is a 2-D array
and jitted code (e.g. a Hoeffding adaptive tree with one ADWIN per node) updates ``pool[k]``
in place. :class:`ADWIN` and :class:`PageHinkley` wrap one row with river's interface.
"""

from ihomer.drift.adwin import (
    ADWIN,
    ADWIN_MAX_BUCKETS,
    ADWIN_MAX_LEVELS,
    ADWIN_STATE_LEN,
    adwin_drift_detected,
    adwin_estimation,
    adwin_init,
    adwin_new,
    adwin_pool,
    adwin_total,
    adwin_update,
    adwin_variance,
    adwin_width,
)
from ihomer.drift.page_hinkley import (
    PH_MODE_BOTH,
    PH_MODE_DOWN,
    PH_MODE_UP,
    PH_STATE_LEN,
    PageHinkley,
    ph_drift_detected,
    ph_init,
    ph_new,
    ph_update,
)

__all__ = [
    "ADWIN",
    "ADWIN_MAX_BUCKETS",
    "ADWIN_MAX_LEVELS",
    "ADWIN_STATE_LEN",
    "PH_MODE_BOTH",
    "PH_MODE_DOWN",
    "PH_MODE_UP",
    "PH_STATE_LEN",
    "PageHinkley",
    "adwin_drift_detected",
    "adwin_estimation",
    "adwin_init",
    "adwin_new",
    "adwin_pool",
    "adwin_total",
    "adwin_update",
    "adwin_variance",
    "adwin_width",
    "ph_drift_detected",
    "ph_init",
    "ph_new",
    "ph_update",
]
