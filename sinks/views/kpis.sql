-- Receivables KPIs per currency as of a moment, over a trailing period.
--
-- Parameters:
--   as_of        DateTime64(3, 'UTC')  end of the period (T)
--   period_days  UInt32                period length (B = T - period_days days)
-- Definitions (all amounts in minor units of `currency`):
--   ar_minor            open receivables at T;  ar_begin_minor: open at B
--   past_due_minor      open at T with due date (UTC calendar day) before T's day
--   sales_minor         invoice amounts issued in (B, T]  (credit sales)
--   dso_days            ar / sales * period_days
--   best_dso_days       (ar - past_due) / sales * period_days
--   add_days            average days delinquent = dso_days - best_dso_days
--   countback_dso_days  days of most recent sales, counted back day by day from
--                       T's day (day 0) over up to 366 days, that add up to ar;
--                       the last day counts fractionally; NULL if sales never cover ar
--   cei_pct             (ar_begin + sales - ar) / (ar_begin + sales - current) * 100
--   past_due_pct        past_due / ar * 100
--   ar_turnover         sales / ((ar_begin + ar) / 2), for the period
-- Ratios are NULL when their denominator is zero.  State at T and at B both come
-- from one scan of invoice_events (argMax / argMaxIf over version).
WITH
    inv AS (
        SELECT
            invoice_number,
            argMax(currency, version) AS currency,
            argMax(amount_minor, version) AS amount_minor,
            argMax(issued_at, version) AS issued_at,
            argMax(due_at, version) AS due_at,
            argMax(open_minor, version) AS open_end,
            argMax(status, version) AS status_end,
            argMaxIf(open_minor, version,
                     version_at <= {as_of:DateTime64(3, 'UTC')} - toIntervalDay({period_days:UInt32}))
                AS open_begin,
            argMaxIf(status, version,
                     version_at <= {as_of:DateTime64(3, 'UTC')} - toIntervalDay({period_days:UInt32}))
                AS status_begin
        FROM invoice_events
        WHERE version_at <= {as_of:DateTime64(3, 'UTC')}
        GROUP BY invoice_number
    ),
    flags AS (
        SELECT
            currency,
            amount_minor,
            toDate({as_of:DateTime64(3, 'UTC')}, 'UTC') - toDate(issued_at, 'UTC') AS days_back,
            if(open_end > 0 AND status_end NOT IN ('paid', 'credited', 'written_off', 'void'),
               open_end, 0) AS ar_item,
            if(open_begin > 0 AND status_begin NOT IN ('', 'paid', 'credited', 'written_off', 'void'),
               open_begin, 0) AS ar_begin_item,
            toDate(due_at, 'UTC') < toDate({as_of:DateTime64(3, 'UTC')}, 'UTC') AS is_past_due,
            issued_at > {as_of:DateTime64(3, 'UTC')} - toIntervalDay({period_days:UInt32}) AS in_period
        FROM inv
    ),
    totals AS (
        SELECT
            currency,
            sum(ar_item) AS ar_minor,
            sum(ar_begin_item) AS ar_begin_minor,
            sumIf(ar_item, is_past_due) AS past_due_minor,
            sumIf(amount_minor, in_period) AS sales_minor,
            sumMapIf([toUInt16(days_back)], [amount_minor], days_back BETWEEN 0 AND 365) AS daily
        FROM flags
        GROUP BY currency
    ),
    countback AS (
        SELECT
            *,
            arrayMap(d -> toInt64(if(indexOf(daily.1, d) = 0, 0,
                                     daily.2[indexOf(daily.1, d)])), range(366)) AS sales_by_day,
            arrayCumSum(sales_by_day) AS cumulative,
            arrayFirstIndex(c -> c >= ar_minor, cumulative) AS cover_index
        FROM totals
    )
SELECT
    currency,
    ar_minor,
    ar_begin_minor,
    past_due_minor,
    ar_minor - past_due_minor AS current_minor,
    sales_minor,
    {period_days:UInt32} AS period_days,
    if(sales_minor = 0, NULL, ar_minor / sales_minor * period_days) AS dso_days,
    if(sales_minor = 0, NULL, (ar_minor - past_due_minor) / sales_minor * period_days)
        AS best_dso_days,
    if(sales_minor = 0, NULL, past_due_minor / sales_minor * period_days) AS add_days,
    multiIf(
        ar_minor <= 0, 0.,
        cover_index = 0, NULL,
        (cover_index - 1)
            + (ar_minor - if(cover_index = 1, 0, cumulative[cover_index - 1]))
              / sales_by_day[cover_index]
    ) AS countback_dso_days,
    if(ar_begin_minor + sales_minor - (ar_minor - past_due_minor) = 0, NULL,
       (ar_begin_minor + sales_minor - ar_minor)
       / (ar_begin_minor + sales_minor - (ar_minor - past_due_minor)) * 100) AS cei_pct,
    if(ar_minor = 0, NULL, past_due_minor / ar_minor * 100) AS past_due_pct,
    if(ar_begin_minor + ar_minor = 0, NULL, sales_minor / ((ar_begin_minor + ar_minor) / 2))
        AS ar_turnover
FROM countback
ORDER BY currency
