-- Cash-side KPIs per currency as of a moment, over a trailing period.
--
-- Parameters:
--   as_of        DateTime64(3, 'UTC')  T
--   period_days  UInt32                window for average days to pay: (T - period, T]
-- Definitions:
--   avg_days_to_pay    amount-weighted calendar days from invoice issue to the first
--                      application of each (payment, invoice) pair first applied in
--                      the window, weighted by the pair's net applied amount (after
--                      reversals up to T); pairs netting to <= 0 are left out
--   unapplied_*        open 'unapplied' exceptions as of T: the latest one per
--                      payment, unless the payment had cash applied after it
--   deductions_*       open 'deduction' / 'invalid_deduction' exceptions as of T;
--                      ages are calendar days from opened_at to T
--   disputed_*         disputes whose latest step at or before T is 'opened'
-- How it stays fast: a pair counts only if its first application is inside the
-- window, so it has a non-reversed row there; the whole history (every row up to
-- T, reversals included) is read only for pairs whose hashed key (`pair_key`,
-- migration 0004) appears in the window.  Keys pre-filter, strings decide: all rows
-- of a pair share its key, so a pair passes whole, and a hash collision only adds
-- pairs that HAVING / the joins on the string columns then drop.  Issue dates are
-- read for the window's invoices only, and `pairs` is referenced once (a CTE is
-- inlined at every reference).
-- Applications are read with FINAL so a re-inserted row never counts twice (filtering
-- before or after FINAL gives the same rows: a re-inserted row is identical to the
-- first, same `at`, so also in the same month partition, which is why FINAL need not
-- merge across partitions); exceptions and chargebacks are reduced with argMax, which
-- duplicates cannot skew.
WITH
    window_keys AS (
        SELECT pair_key, invoice_number
        FROM applications
        WHERE at > {as_of:DateTime64(3, 'UTC')} - toIntervalDay({period_days:UInt32})
          AND at <= {as_of:DateTime64(3, 'UTC')}
          AND reversed = 0
    ),
    pairs AS (
        SELECT
            payment_id,
            invoice_number,
            any(currency) AS currency,
            sum(amount_minor) AS net_minor,
            minIf(at, reversed = 0) AS first_at
        FROM applications FINAL
        PREWHERE at <= {as_of:DateTime64(3, 'UTC')}
             AND pair_key IN (SELECT pair_key FROM window_keys)
        GROUP BY payment_id, invoice_number
        HAVING net_minor > 0
           AND first_at > {as_of:DateTime64(3, 'UTC')} - toIntervalDay({period_days:UInt32})
        SETTINGS do_not_merge_across_partitions_select_final = 1
    ),
    issued AS (
        SELECT invoice_number, any(issued_at) AS issued_at
        FROM invoice_events
        WHERE cityHash64(invoice_number) IN (
            SELECT cityHash64(invoice_number) FROM window_keys)
        GROUP BY invoice_number
    ),
    paid AS (
        SELECT
            pairs.currency AS currency,
            toFloat64(pairs.net_minor) AS weight,
            toFloat64(toDate(pairs.first_at, 'UTC') - toDate(issued.issued_at, 'UTC')) AS days
        FROM pairs
        INNER JOIN issued ON issued.invoice_number = pairs.invoice_number
    ),
    latest_exceptions AS (
        SELECT
            exception_id,
            argMax(opened_at, version) AS opened_at,
            argMax(kind, version) AS exception_kind,
            argMax(status, version) AS status,
            argMax(payment_id, version) AS payment_id,
            argMax(amount_minor, version) AS amount_minor,
            argMax(currency, version) AS currency
        FROM exceptions
        WHERE updated_at <= {as_of:DateTime64(3, 'UTC')}
          AND kind IN ('unapplied', 'deduction', 'invalid_deduction')
        GROUP BY exception_id
    ),
    unapplied AS (
        SELECT
            payment_id,
            argMax(currency, opened_at) AS currency,
            argMax(amount_minor, opened_at) AS amount_minor,
            argMax(status, opened_at) AS status,
            max(opened_at) AS last_opened_at
        FROM latest_exceptions
        WHERE exception_kind = 'unapplied'
        GROUP BY payment_id
    ),
    applied_last AS (
        SELECT payment_id, max(at) AS last_applied_at
        FROM applications
        WHERE at <= {as_of:DateTime64(3, 'UTC')} AND reversed = 0
          AND payment_key IN (SELECT cityHash64(payment_id) FROM unapplied)
        GROUP BY payment_id
    ),
    disputes AS (
        SELECT
            dispute_key,
            argMax(status, (at, chargeback_id)) AS status,
            argMax(amount_minor, (at, chargeback_id)) AS amount_minor,
            argMax(currency, (at, chargeback_id)) AS currency
        FROM chargebacks
        WHERE at <= {as_of:DateTime64(3, 'UTC')}
        GROUP BY dispute_key
    ),
    parts AS (
        SELECT currency, weight AS w, weight * days AS wd,
               0 AS u_n, toInt64(0) AS u_minor,
               0 AS d_n, toInt64(0) AS d_minor, toInt64(0) AS d_age, toInt64(0) AS d_max_age,
               0 AS c_n, toInt64(0) AS c_minor
        FROM paid
        UNION ALL
        SELECT unapplied.currency, 0., 0., 1, unapplied.amount_minor, 0, toInt64(0),
               toInt64(0), toInt64(0), 0, toInt64(0)
        FROM unapplied
        LEFT JOIN applied_last ON applied_last.payment_id = unapplied.payment_id
        WHERE unapplied.status = 'open'
          AND ifNull(applied_last.last_applied_at > unapplied.last_opened_at, 0) = 0
        UNION ALL
        SELECT currency, 0., 0., 0, toInt64(0), 1, amount_minor,
               toInt64(toDate({as_of:DateTime64(3, 'UTC')}, 'UTC') - toDate(opened_at, 'UTC')),
               toInt64(toDate({as_of:DateTime64(3, 'UTC')}, 'UTC') - toDate(opened_at, 'UTC')),
               0, toInt64(0)
        FROM latest_exceptions
        WHERE exception_kind IN ('deduction', 'invalid_deduction') AND status = 'open'
        UNION ALL
        SELECT currency, 0., 0., 0, toInt64(0), 0, toInt64(0), toInt64(0), toInt64(0),
               1, amount_minor
        FROM disputes
        WHERE status = 'opened'
    )
SELECT
    currency,
    if(sum(w) = 0, NULL, sum(wd) / sum(w)) AS avg_days_to_pay,
    toInt64(sum(w)) AS paid_minor,
    sum(u_n) AS unapplied_count,
    sum(u_minor) AS unapplied_minor,
    sum(d_n) AS deductions_count,
    sum(d_minor) AS deductions_minor,
    if(sum(d_n) = 0, NULL, sum(d_age) / sum(d_n)) AS deductions_avg_age_days,
    max(d_max_age) AS deductions_max_age_days,
    sum(c_n) AS disputes_count,
    sum(c_minor) AS disputed_minor
FROM parts
GROUP BY currency
ORDER BY currency
