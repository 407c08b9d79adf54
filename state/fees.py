"""Fee monitor: catch processor fee creep per payout and per period.

Why two references: a rate card alone alarms on every legitimate surcharge
(international cards, currency conversion) that the card does not list, and a
rolling baseline alone follows a slow creep without ever alarming. A drift is
reported only when the effective rate is off from BOTH, by more than
max(threshold, k x baseline spread).

Why residuals: the expected rate is computed per charge line from the card
(percentage plus a fixed fee), so a payout of small tickets expects a higher
effective rate than one of large tickets. The baseline then tracks the residual
(observed minus card-expected, in bps), which stays flat whatever the ticket mix.
Median and MAD keep one bad week from moving the baseline much, so the alarm
clears when the rate returns.

All rates are integer basis points; all money is integer minor units. State is a
frozen, picklable `FeeMonitor` per processor, replaced on every `observe`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from arrecon.state.events import PayoutLine, PayoutSettled
from arrecon.state.outcomes import FeeAnomaly, make_outcome_id

__all__ = [
    "DEFAULT_FEE_TYPES",
    "DEFAULT_RATE_CARDS",
    "Baseline",
    "FeeMonitor",
    "FeePolicy",
    "MethodState",
    "PeriodTotals",
    "RateCard",
    "observe",
    "period_label",
    "rate_bps",
]

BPS = 10_000


def rate_bps(part_minor: int, whole_minor: int) -> int:
    """`part / whole` in basis points, rounded half up; 0 for an empty whole."""
    if whole_minor <= 0:
        return 0
    return (part_minor * BPS * 2 + whole_minor) // (whole_minor * 2)


@dataclass(frozen=True, slots=True)
class RateCard:
    """A contracted price: `percent_bps` of the gross plus `fixed_minor` per charge."""

    percent_bps: int
    fixed_minor: int = 0

    def fee_minor(self, gross_minor: int) -> int:
        return (gross_minor * self.percent_bps * 2 + BPS) // (BPS * 2) + self.fixed_minor


# Keys are "processor/method" or "processor" (any method). Fixed fees are in the
# payout currency's minor units.
DEFAULT_RATE_CARDS: Mapping[str, RateCard] = {
    "stripe": RateCard(290, 30),
    "stripe/card": RateCard(290, 30),
    "shopify": RateCard(290, 30),
    "shopify/card": RateCard(290, 30),
    "amazon": RateCard(1500, 0),
}

DEFAULT_FEE_TYPES: Mapping[str, frozenset[str]] = {
    "stripe": frozenset({"stripe_fee", "application_fee", "tax"}),
}


@dataclass(frozen=True, slots=True)
class FeePolicy:
    rate_cards: Mapping[str, RateCard] = field(default_factory=lambda: dict(DEFAULT_RATE_CARDS))
    known_fee_types: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: dict(DEFAULT_FEE_TYPES)
    )
    # Payout level: floor of the tolerance, spread multiplier, baseline size.
    threshold_bps: int = 25
    spread_k: int = 4
    window_payouts: int = 60
    warmup_payouts: int = 10
    # Groups with fewer charges are too noisy to judge (they still count per period).
    min_charges: int = 10
    # Period level ("day" or "week"): aggregates are judged when the period closes.
    period: str = "week"
    period_threshold_bps: int = 12
    window_periods: int = 12
    warmup_periods: int = 4
    # Fee types seen in the first payouts are learned silently.
    warmup_fee_types: int = 10
    charge_kinds: frozenset[str] = frozenset({"charge", "payment"})
    # Payout ids remembered to ignore redelivered payouts.
    remember_payouts: int = 256

    def card(self, processor: str, method: str) -> RateCard | None:
        if method and f"{processor}/{method}" in self.rate_cards:
            return self.rate_cards[f"{processor}/{method}"]
        return self.rate_cards.get(processor)


def period_label(moment: datetime, period: str) -> str:
    """ "2026-03-02" for days, ISO "2026-W10" for weeks."""
    if period == "day":
        return moment.date().isoformat()
    if period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    raise ValueError(f"unknown period {period!r}")


# --- rolling baseline ------------------------------------------------------------


def _median(values: Iterable[int]) -> int:
    ordered = sorted(values)
    if not ordered:
        return 0
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


@dataclass(frozen=True, slots=True)
class Baseline:
    """The last N residuals (bps); level = median, spread = 1.4826 x MAD."""

    residuals_bps: tuple[int, ...] = ()

    def push(self, residual_bps: int, window: int) -> Baseline:
        return Baseline((*self.residuals_bps, residual_bps)[-window:])

    def level_bps(self) -> int:
        return _median(self.residuals_bps)

    def spread_bps(self) -> int:
        level = self.level_bps()
        mad = _median(abs(value - level) for value in self.residuals_bps)
        return (mad * 14826 + 9999) // 10000

    def drifted(
        self, residual_bps: int, has_card: bool, threshold_bps: int, spread_k: int, warmup: int
    ) -> bool:
        """Off from the baseline and (when there is one) from the card, beyond tolerance."""
        if len(self.residuals_bps) < warmup:
            return False
        tolerance = max(threshold_bps, spread_k * self.spread_bps())
        off_baseline = abs(residual_bps - self.level_bps()) > tolerance
        off_card = abs(residual_bps) > tolerance if has_card else True
        return off_baseline and off_card


# --- per-method state ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    """Charges of one period: observed and card-expected fees."""

    label: str
    gross_minor: int = 0
    fee_minor: int = 0
    expected_minor: int = 0

    def add(self, sample: _Sample) -> PeriodTotals:
        return replace(
            self,
            gross_minor=self.gross_minor + sample.gross_minor,
            fee_minor=self.fee_minor + sample.fee_minor,
            expected_minor=self.expected_minor + sample.expected_minor,
        )


@dataclass(frozen=True, slots=True)
class MethodState:
    """Baselines and the open period of one processor/method slice."""

    payouts: Baseline = Baseline()
    typical: Baseline = Baseline()
    periods: Baseline = Baseline()
    open_period: PeriodTotals | None = None
    payout_alarm: bool = False
    period_alarm: bool = False


@dataclass(frozen=True, slots=True)
class FeeMonitor:
    """State of one processor; replaced, never mutated."""

    processor: str
    methods: Mapping[str, MethodState] = field(default_factory=dict)
    fee_types: frozenset[str] = frozenset()
    payouts_seen: int = 0
    recent_payouts: tuple[str, ...] = ()

    def alarms(self) -> tuple[str, ...]:
        """Slices currently in alarm, as "payout:<method>" / "period:<method>"."""
        found = []
        for method, state in sorted(self.methods.items()):
            if state.payout_alarm:
                found.append(f"payout:{method}")
            if state.period_alarm:
                found.append(f"period:{method}")
        return tuple(found)


@dataclass(frozen=True, slots=True)
class _Sample:
    """The charge lines of one payout for one method."""

    method: str
    charges: int
    gross_minor: int
    fee_minor: int
    expected_minor: int
    has_card: bool
    typical_bps: int

    def observed_bps(self) -> int:
        return rate_bps(self.fee_minor, self.gross_minor)

    def expected_bps(self) -> int:
        return rate_bps(self.expected_minor, self.gross_minor)

    def residual_bps(self) -> int:
        return self.observed_bps() - self.expected_bps()


def _samples(event: PayoutSettled, policy: FeePolicy) -> list[_Sample]:
    groups: dict[str, list[PayoutLine]] = {}
    for line in event.lines:
        if line.kind in policy.charge_kinds and line.gross_minor > 0:
            groups.setdefault(line.payment_method or "", []).append(line)
    samples = []
    for method, lines in sorted(groups.items()):
        card = policy.card(event.processor, method)
        expected = [card.fee_minor(line.gross_minor) if card else 0 for line in lines]
        samples.append(
            _Sample(
                method=method,
                charges=len(lines),
                gross_minor=sum(line.gross_minor for line in lines),
                fee_minor=sum(line.fee_minor for line in lines),
                expected_minor=sum(expected),
                has_card=card is not None,
                typical_bps=_typical_residual_bps(lines, expected),
            )
        )
    return samples


def _typical_residual_bps(lines: list[PayoutLine], expected_minor: list[int]) -> int:
    """Gross-weighted median of per-line residuals (observed minus card, bps).

    Why: one large charge with a surcharge the card does not list can move a
    payout's effective rate by tens of bps; it cannot move the typical line.
    A real price change moves every line, so both statistics shift.
    """
    residuals = sorted(
        (rate_bps(line.fee_minor - expected, line.gross_minor), line.gross_minor)
        for line, expected in zip(lines, expected_minor, strict=True)
    )
    half = sum(gross for _, gross in residuals) / 2
    running = 0
    for residual, gross in residuals:
        running += gross
        if running >= half:
            return residual
    return 0


# --- observe -----------------------------------------------------------------------


def observe(
    monitor: FeeMonitor | None, event: PayoutSettled, policy: FeePolicy | None = None
) -> tuple[FeeMonitor, list[FeeAnomaly]]:
    """Fold one payout into the monitor; return the new state and any anomalies.

    A payout id seen recently is ignored, so redelivery cannot skew baselines.
    """
    policy = policy or FeePolicy()
    if monitor is None:
        known = policy.known_fee_types.get(event.processor, frozenset())
        monitor = FeeMonitor(processor=event.processor, fee_types=known)
    if event.payout_id in monitor.recent_payouts:
        return monitor, []
    outcomes = _new_fee_types(monitor, event, policy)
    methods = dict(monitor.methods)
    for sample in _samples(event, policy):
        state, found = _observe_sample(
            methods.get(sample.method, MethodState()), sample, event, policy
        )
        methods[sample.method] = state
        outcomes.extend(found)
    seen_types = {kind for line in event.lines for kind in line.fee_types}
    monitor = replace(
        monitor,
        methods=methods,
        fee_types=monitor.fee_types | seen_types,
        payouts_seen=monitor.payouts_seen + 1,
        recent_payouts=(*monitor.recent_payouts, event.payout_id)[-policy.remember_payouts :],
    )
    return monitor, outcomes


def _new_fee_types(
    monitor: FeeMonitor, event: PayoutSettled, policy: FeePolicy
) -> list[FeeAnomaly]:
    if monitor.payouts_seen < policy.warmup_fee_types:
        return []
    seen = {kind for line in event.lines for kind in line.fee_types}
    charges = [line for line in event.lines if line.kind in policy.charge_kinds]
    gross = sum(line.gross_minor for line in charges)
    observed = rate_bps(sum(line.fee_minor for line in charges), gross)
    card = policy.card(event.processor, "")
    expected = (
        rate_bps(sum(card.fee_minor(line.gross_minor) for line in charges), gross) if card else 0
    )
    return [
        _anomaly(
            event,
            event.payout_id,
            method="",
            expected_bps=expected,
            observed_bps=observed,
            reason="new_fee_type",
            fee_type=kind,
        )
        for kind in sorted(seen - monitor.fee_types)
    ]


def _observe_sample(
    state: MethodState, sample: _Sample, event: PayoutSettled, policy: FeePolicy
) -> tuple[MethodState, list[FeeAnomaly]]:
    """Judge the payout, then the period it may close, then update baselines."""
    outcomes: list[FeeAnomaly] = []
    state, closed = _roll_period(state, event, sample, policy)
    if closed is not None:
        state, found = _judge_period(state, closed, sample, event, policy)
        outcomes.extend(found)
    if sample.charges < policy.min_charges:
        return state, outcomes
    residual = sample.residual_bps()
    limits = (policy.threshold_bps, policy.spread_k, policy.warmup_payouts)
    drifted = state.payouts.drifted(residual, sample.has_card, *limits) and state.typical.drifted(
        sample.typical_bps, sample.has_card, *limits
    )
    if drifted:
        outcomes.append(_payout_anomaly(state, sample, event))
    state = replace(
        state,
        payouts=state.payouts.push(residual, policy.window_payouts),
        typical=state.typical.push(sample.typical_bps, policy.window_payouts),
        payout_alarm=drifted,
    )
    return state, outcomes


def _payout_anomaly(state: MethodState, sample: _Sample, event: PayoutSettled) -> FeeAnomaly:
    expected = sample.expected_bps() if sample.has_card else state.payouts.level_bps()
    return _anomaly(
        event,
        event.payout_id,
        method=sample.method,
        expected_bps=expected,
        observed_bps=sample.observed_bps(),
        reason="rate_drift",
    )


def _roll_period(
    state: MethodState, event: PayoutSettled, sample: _Sample, policy: FeePolicy
) -> tuple[MethodState, PeriodTotals | None]:
    """Add the sample to its period; hand back the previous period if this one is new."""
    label = period_label(event.occurred_at, policy.period)
    current = state.open_period
    if current is not None and current.label == label:
        return replace(state, open_period=current.add(sample)), None
    return replace(state, open_period=PeriodTotals(label).add(sample)), current


def _judge_period(
    state: MethodState,
    closed: PeriodTotals,
    sample: _Sample,
    event: PayoutSettled,
    policy: FeePolicy,
) -> tuple[MethodState, list[FeeAnomaly]]:
    observed = rate_bps(closed.fee_minor, closed.gross_minor)
    expected = rate_bps(closed.expected_minor, closed.gross_minor)
    residual = observed - expected
    drifted = state.periods.drifted(
        residual,
        sample.has_card,
        policy.period_threshold_bps,
        policy.spread_k,
        policy.warmup_periods,
    )
    reported = expected if sample.has_card else state.periods.level_bps()
    state = replace(
        state,
        periods=state.periods.push(residual, policy.window_periods),
        period_alarm=drifted,
    )
    if not drifted:
        return state, []
    scope = f"{policy.period}:{closed.label}"
    anomaly = _anomaly(
        event,
        scope,
        method=sample.method,
        expected_bps=reported,
        observed_bps=observed,
        reason="period_drift",
    )
    return state, [anomaly]


def _anomaly(
    event: PayoutSettled,
    scope: str,
    *,
    method: str,
    expected_bps: int,
    observed_bps: int,
    reason: str,
    fee_type: str = "",
) -> FeeAnomaly:
    return FeeAnomaly(
        outcome_id=make_outcome_id("fee_anomaly", event.processor, scope, method, reason, fee_type),
        at=event.occurred_at,
        processor=event.processor,
        scope=scope,
        expected_bps=expected_bps,
        observed_bps=observed_bps,
        reason=reason,
        payment_method=method,
        fee_type=fee_type,
    )
