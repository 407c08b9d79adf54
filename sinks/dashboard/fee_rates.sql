-- Observed processor fees per day: charge lines of payouts in (T - days, T].
--
-- Parameters:
--   as_of  DateTime64(3, 'UTC');  days  UInt16
-- One row per (processor, currency, UTC day); FINAL so a replayed payout never
-- counts twice.  The effective rate is fee_minor / gross_minor (bps, computed by
-- the caller together with the rate card's expectation for `charges` lines).
SELECT
    processor,
    currency,
    toDate(at, 'UTC') AS day,
    count() AS charges,
    sum(abs(gross_minor)) AS gross_minor,
    sum(abs(fee_minor)) AS fee_minor
FROM fees FINAL
WHERE line_kind = 'charge'
  AND at > {as_of:DateTime64(3, 'UTC')} - toIntervalDay({days:UInt16})
  AND at <= {as_of:DateTime64(3, 'UTC')}
GROUP BY processor, currency, day
ORDER BY processor, currency, day
