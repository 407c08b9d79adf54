"""Fee monitor: quiet under realistic noise, loud on creep, clears afterwards."""

from __future__ import annotations

import math
import pickle
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrecon.state.events import PayoutLine, PayoutSettled
from arrecon.state.fees import (
    Baseline,
    FeeMonitor,
    FeePolicy,
    RateCard,
    observe,
    period_label,
    rate_bps,
)
from arrecon.state.outcomes import FeeAnomaly

MONDAY = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Market:
    """A seeded Stripe-like merchant: mixed tickets, 2.9% + 30, some surcharges."""

    seed: int
    international_share: float = 0.05  # +150 bps, not on the rate card
    conversion_share: float = 0.02  # +100 bps, not on the rate card
    creep_days: range = range(0)
    creep_bps: int = 40
    new_type_from_day: int | None = None

    def payouts(self, days: int) -> list[PayoutSettled]:
        rng = random.Random(self.seed)
        return [self._payout(rng, day) for day in range(days)]

    def _payout(self, rng: random.Random, day: int) -> PayoutSettled:
        lines = [self._line(rng, day, n) for n in range(rng.randint(50, 300))]
        net = sum(line.gross_minor - line.fee_minor for line in lines)
        return PayoutSettled(
            event_id=f"evt_{day}",
            occurred_at=MONDAY + timedelta(days=day),
            processor="stripe",
            payout_id=f"po_{day}",
            currency="USD",
            net_minor=net,
            lines=tuple(lines),
        )

    def _line(self, rng: random.Random, day: int, n: int) -> PayoutLine:
        # Tickets from $3 to $2,000, median about $60.
        gross = min(max(int(math.exp(rng.gauss(math.log(6_000), 1.0))), 300), 200_000)
        percent_bps = 290 + (self.creep_bps if day in self.creep_days else 0)
        types = ["stripe_fee"]
        if rng.random() < self.international_share:
            percent_bps += 150
            if self.new_type_from_day is not None and day >= self.new_type_from_day:
                types.append("international_fee")
        if rng.random() < self.conversion_share:
            percent_bps += 100
        fee = (gross * percent_bps * 2 + 10_000) // 20_000 + 30
        return PayoutLine("charge", f"ch_{day}_{n}", gross, fee, tuple(types), "card")


def run(
    payouts: list[PayoutSettled], policy: FeePolicy | None = None
) -> tuple[FeeMonitor, list[tuple[int, FeeAnomaly]]]:
    monitor: FeeMonitor | None = None
    found: list[tuple[int, FeeAnomaly]] = []
    for day, payout in enumerate(payouts):
        monitor, outcomes = observe(monitor, payout, policy)
        found.extend((day, outcome) for outcome in outcomes)
    assert monitor is not None
    return monitor, found


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_realistic_noise_raises_nothing_over_500_payouts(seed: int) -> None:
    payouts = Market(seed).payouts(500)
    small = [p for p in payouts if len(p.lines) < 80]
    assert small, "the mix must include small payouts"
    # The noise is real: small tickets pay more, surcharges move effective rates.
    rates = [
        rate_bps(sum(x.fee_minor for x in p.lines), sum(x.gross_minor for x in p.lines))
        for p in payouts
    ]
    assert max(rates) - min(rates) >= 20
    monitor, found = run(payouts)
    assert found == []
    assert monitor.alarms() == ()
    assert monitor.payouts_seen == 500


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_creep_of_40_bps_for_one_week_is_caught_and_clears(seed: int) -> None:
    creep = range(301, 308)  # day 301 is a Monday: one ISO week
    payouts = Market(seed, creep_days=creep).payouts(500)
    week = period_label(payouts[301].occurred_at, "week")
    alarms_during: list[tuple[str, ...]] = []
    monitor: FeeMonitor | None = None
    found: list[tuple[int, FeeAnomaly]] = []
    for day, payout in enumerate(payouts):
        monitor, outcomes = observe(monitor, payout)
        found.extend((day, outcome) for outcome in outcomes)
        if day in creep:
            alarms_during.append(monitor.alarms())
    assert monitor is not None
    drift_days = {day for day, a in found if a.reason == "rate_drift"}
    assert drift_days == set(creep)  # recall 100%, no false alarm
    for day, anomaly in found:
        if anomaly.reason == "rate_drift":
            assert anomaly.scope == f"po_{day}"
            assert anomaly.observed_bps - anomaly.expected_bps >= 30
            assert anomaly.payment_method == "card"
    periods = [a for _, a in found if a.reason == "period_drift"]
    assert [a.scope for a in periods] == [f"week:{week}"]
    assert periods[0].observed_bps - periods[0].expected_bps >= 35
    assert all("payout:card" in alarms for alarms in alarms_during)
    assert monitor.alarms() == ()


def test_period_alarm_clears_when_the_next_week_closes() -> None:
    creep = range(301, 308)
    monitor: FeeMonitor | None = None
    history: list[tuple[str, ...]] = []
    for payout in Market(5, creep_days=creep).payouts(330):
        monitor, _ = observe(monitor, payout)
        history.append(monitor.alarms())
    assert history[308] == ("period:card",)  # Monday after: the creep week closes
    assert history[315] == ()  # the clean week closes


def test_new_fee_type_is_reported_once() -> None:
    market = Market(7, new_type_from_day=120)
    monitor, found = run(market.payouts(200))
    new_types = [(day, a) for day, a in found if a.reason == "new_fee_type"]
    assert len(new_types) == 1
    day, anomaly = new_types[0]
    assert day >= 120
    assert (anomaly.fee_type, anomaly.scope, anomaly.processor) == (
        "international_fee",
        f"po_{day}",
        "stripe",
    )
    assert "international_fee" in monitor.fee_types
    assert [a for _, a in found if a.reason != "new_fee_type"] == []


def test_fee_types_seen_in_warm_up_are_learned_silently() -> None:
    market = Market(8, new_type_from_day=0)
    _, found = run(market.payouts(60))
    assert found == []


def test_redelivered_payout_is_ignored() -> None:
    payouts = Market(9).payouts(30)
    monitor, _ = run(payouts)
    again, outcomes = observe(monitor, payouts[-1])
    assert outcomes == []
    assert again is monitor


def test_state_pickles_and_replay_is_deterministic() -> None:
    payouts = Market(10, creep_days=range(22, 29)).payouts(40)
    first_monitor, first = run(payouts)
    second_monitor, second = run(payouts)
    assert first == second
    assert first  # the creep gives outcomes to compare
    assert len({a.outcome_id for _, a in first}) == len(first)
    restored = pickle.loads(pickle.dumps(first_monitor))
    assert restored == second_monitor
    extra = Market(11).payouts(41)[-1]
    assert observe(restored, extra) == observe(first_monitor, extra)


def test_processor_without_card_uses_baseline_only() -> None:
    policy = FeePolicy(rate_cards={})
    payouts = Market(12, creep_days=range(22, 29), international_share=0.0).payouts(40)
    _, found = run(payouts, policy)
    days = {day for day, a in found if a.reason == "rate_drift"}
    assert days == set(range(22, 29))


def test_rate_card_mismatch_alone_is_not_drift() -> None:
    """A steady price the card does not list (here 3.4%) is learned, not alarmed."""
    policy = FeePolicy(rate_cards={"stripe": RateCard(340, 30)}, warmup_payouts=10)
    _, found = run(Market(13).payouts(120), policy)
    assert found == []


def test_one_large_surcharged_charge_is_not_a_price_change() -> None:
    """Effective rate jumps, the typical line does not: no alarm. Then all lines move."""
    monitor, _ = run(Market(15, international_share=0.0, conversion_share=0.0).payouts(30))
    small = [
        PayoutLine("charge", f"ch_s{n}", 2_000, 88, ("stripe_fee",), "card") for n in range(60)
    ]
    big_gross = 100_000  # $1,000 international card at 4.4% + 30: 45% of the gross
    big = PayoutLine("charge", "ch_big", big_gross, big_gross * 440 // 10_000 + 30, (), "card")
    lumpy = PayoutSettled(
        "e1", MONDAY + timedelta(days=30), "stripe", "po_lumpy", "USD", 0, (*small, big)
    )
    observed = rate_bps(
        sum(x.fee_minor for x in lumpy.lines), sum(x.gross_minor for x in lumpy.lines)
    )
    expected = rate_bps(
        sum(RateCard(290, 30).fee_minor(x.gross_minor) for x in lumpy.lines), 220_000
    )
    assert observed - expected >= 60
    monitor, outcomes = observe(monitor, lumpy)
    assert outcomes == []
    pricier = tuple(
        PayoutLine("charge", f"ch_p{n}", 2_000, 2_000 * 340 // 10_000 + 30, ("stripe_fee",), "card")
        for n in range(60)
    )
    raised = PayoutSettled(
        "e2", MONDAY + timedelta(days=31), "stripe", "po_raised", "USD", 0, pricier
    )
    _, outcomes = observe(monitor, raised)
    assert [(a.reason, a.scope) for a in outcomes] == [("rate_drift", "po_raised")]


def test_small_payouts_are_not_judged_alone() -> None:
    lines = tuple(
        PayoutLine("charge", f"ch_{n}", 1_000, 500, ("stripe_fee",), "card") for n in range(5)
    )
    payout = PayoutSettled("e", MONDAY, "stripe", "po_tiny", "USD", 0, lines)
    monitor, _ = run(Market(14).payouts(30))
    _, outcomes = observe(monitor, payout)
    assert outcomes == []


def test_non_charge_lines_do_not_count() -> None:
    lines = (
        PayoutLine("charge", "ch_1", 10_000, 320, ("stripe_fee",), "card"),
        PayoutLine("refund", "re_1", -5_000, 0, (), "card"),
        PayoutLine("fee", "fee_1", -2_000, 0, ("stripe_fee",)),
    )
    payout = PayoutSettled("e", MONDAY, "stripe", "po_1", "USD", 0, lines, status="paid")
    monitor, _ = observe(None, payout)
    assert monitor.methods["card"].open_period is not None
    assert monitor.methods["card"].open_period.gross_minor == 10_000
    assert set(monitor.methods) == {"card"}


@pytest.mark.parametrize(
    ("part", "whole", "bps"),
    [(290, 10_000, 290), (1, 3, 3333), (2, 3, 6667), (5, 0, 0), (-1, 3, -3333), (0, 7, 0)],
)
def test_rate_bps(part: int, whole: int, bps: int) -> None:
    assert rate_bps(part, whole) == bps


@pytest.mark.parametrize(
    ("card", "gross", "fee"),
    [(RateCard(290, 30), 10_000, 320), (RateCard(290, 30), 50, 31), (RateCard(1500), 1_999, 300)],
)
def test_rate_card_fee(card: RateCard, gross: int, fee: int) -> None:
    assert card.fee_minor(gross) == fee


def test_policy_card_falls_back_to_processor() -> None:
    policy = FeePolicy(rate_cards={"stripe": RateCard(290, 30), "stripe/ach": RateCard(80)})
    assert policy.card("stripe", "ach") == RateCard(80)
    assert policy.card("stripe", "card") == RateCard(290, 30)
    assert policy.card("adyen", "card") is None


@pytest.mark.parametrize(
    ("moment", "period", "label"),
    [
        (datetime(2026, 1, 1, tzinfo=UTC), "week", "2026-W01"),
        (datetime(2024, 12, 30, tzinfo=UTC), "week", "2025-W01"),
        (datetime(2026, 3, 2, 23, 59, tzinfo=UTC), "day", "2026-03-02"),
    ],
)
def test_period_label(moment: datetime, period: str, label: str) -> None:
    assert period_label(moment, period) == label


def test_period_label_refuses_unknown_period() -> None:
    with pytest.raises(ValueError, match="unknown period"):
        period_label(MONDAY, "month")


def test_baseline_is_robust_to_one_outlier() -> None:
    base = Baseline()
    for value in [5, 6, 4, 5, 7, 5, 3, 5, 6, 400]:
        base = base.push(value, window=60)
    assert base.level_bps() == 5
    assert base.spread_bps() <= 2
    assert len(base.push(1, window=4).residuals_bps) == 4


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-500, 500), min_size=1, max_size=80), st.integers(-500, 500))
def test_baseline_never_alarms_on_its_own_level(values: list[int], probe: int) -> None:
    base = Baseline(tuple(values))
    level = base.level_bps()
    assert min(values) <= level <= max(values)
    assert not base.drifted(level, True, 1, 4, 1)
    if len(values) < 10:
        assert not base.drifted(probe, True, 1, 4, 10)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 10**12), st.integers(0, 10**12))
def test_rate_bps_is_exact_rounding(whole: int, part: int) -> None:
    bps = rate_bps(part, whole)
    # |part/whole*10000 - bps| <= 1/2, in integers.
    assert abs(part * 20_000 - bps * 2 * whole) <= whole
