"""Review: percentiles on small samples and empty stages in the analysis report."""

from __future__ import annotations

import numpy as np
import pytest

from latentspeed_core.datacollect.analysis import STAT_KEYS, describe, stage_values


def test_an_empty_stage_has_count_zero_and_no_numbers():
    assert describe(np.asarray([], dtype=np.float64)) == {k: (0 if k == "count" else None) for k in STAT_KEYS}


def test_percentiles_on_small_samples_stay_within_the_data_and_ordered():
    one = describe(np.asarray([5.0]))
    assert one["count"] == 1 and one["p50"] == one["p99.9"] == one["min"] == one["max"] == 5.0
    ten = describe(np.arange(1.0, 11.0))
    assert ten["min"] <= ten["p50"] <= ten["p95"] <= ten["p99"] <= ten["p99.9"] <= ten["max"] == 10.0
    # Linear interpolation at rank 0.999 x 9 = 8.991 (0-based): 9 + 0.991 x (10 - 9) = 9.991.
    assert ten["p99.9"] == pytest.approx(9.991)
    assert ten["p50"] == pytest.approx(5.5)


def test_stages_take_only_orders_with_both_stamps_and_drop_negative_intervals():
    orders = [
        {
            "md_receipt_ns": 1_000,
            "decision_ns": 3_000,
            "sent_ns": 4_000,
            "ack_ns": None,
            "first_fill_ns": None,
        },
        {
            "md_receipt_ns": 5_000,
            "decision_ns": 4_000,
            "sent_ns": 9_000,
            "ack_ns": 12_000,
            "first_fill_ns": None,
        },
    ]
    values, negative = stage_values(orders)
    assert list(values["md_to_decision"]) == [2.0] and negative == {"md_to_decision": 1}
    assert list(values["order_to_ack"]) == [3.0] and values["order_to_fill"].size == 0
    assert describe(values["order_to_fill"])["p99.9"] is None
