-- Aging buckets of open receivables as of a moment, grouped by one dimension.
--
-- Parameters:
--   as_of      DateTime64(3, 'UTC')  the moment the report describes
--   dimension  Identifier            customer_id, channel, currency or segment
-- Invoice state as of T is the latest invoice_events version with version_at <= T
-- (argMax over version, one column at a time: a version names one row, and argMax
-- over a tuple of strings made this view about 1.5x slower, see BENCHMARKS.md), so
-- past dates are exact.  An invoice is open when its
-- open amount is positive and its status is not a closed one.  Days past due are
-- calendar days (UTC) from the due date to T: <= 0 is current.  The segment is the
-- customer's segment as of T ('unassigned' without a customers row).  Amounts are
-- never summed across currencies: rows are (key, currency).
WITH
    inv AS (
        SELECT
            invoice_number,
            argMax(customer_id, version) AS last_customer_id,
            argMax(status, version) AS last_status,
            argMax(open_minor, version) AS last_open_minor,
            argMax(currency, version) AS last_currency,
            argMax(due_at, version) AS last_due_at,
            argMax(channel, version) AS last_channel
        FROM invoice_events
        WHERE version_at <= {as_of:DateTime64(3, 'UTC')}
        GROUP BY invoice_number
    ),
    seg AS (
        SELECT customer_id, argMax(segment, version) AS segment
        FROM customers
        WHERE version_at <= {as_of:DateTime64(3, 'UTC')}
        GROUP BY customer_id
    ),
    open_items AS (
        SELECT
            inv.customer_id AS customer_id,
            inv.channel AS channel,
            inv.currency AS currency,
            if(ifNull(seg.segment, '') = '', 'unassigned', seg.segment) AS segment,
            inv.open_minor AS open_minor,
            toDate({as_of:DateTime64(3, 'UTC')}, 'UTC') - toDate(inv.due_at, 'UTC') AS days_past_due
        FROM (
            SELECT last_customer_id AS customer_id, last_status AS status,
                   last_open_minor AS open_minor, last_currency AS currency,
                   last_due_at AS due_at, last_channel AS channel
            FROM inv
        ) AS inv
        LEFT JOIN seg ON seg.customer_id = inv.customer_id
        WHERE inv.open_minor > 0
          AND inv.status NOT IN ('paid', 'credited', 'written_off', 'void')
    )
SELECT
    toString({dimension:Identifier}) AS key,
    currency,
    count() AS open_invoices,
    sumIf(open_minor, days_past_due <= 0) AS current_minor,
    sumIf(open_minor, days_past_due BETWEEN 1 AND 30) AS d1_30_minor,
    sumIf(open_minor, days_past_due BETWEEN 31 AND 60) AS d31_60_minor,
    sumIf(open_minor, days_past_due BETWEEN 61 AND 90) AS d61_90_minor,
    sumIf(open_minor, days_past_due > 90) AS d90_plus_minor,
    sum(open_minor) AS total_open_minor
FROM open_items
GROUP BY key, currency
ORDER BY key, currency
