-- Credit exposure per customer and currency as of a moment.
--
-- Parameters:
--   as_of  DateTime64(3, 'UTC')
-- One row per (customer, currency) that has either a credit limit in that currency
-- or open invoices in it.  limit_minor and available_minor are NULL when the customer
-- has no limit in that currency (no limit, or invoices in another currency).
--   open_minor       open receivables as of T (same rules as the aging view)
--   open_disputes    disputes whose latest step at or before T is 'opened'
--   disputed_minor   their amount (already part of open_minor once the invoice reopened)
--   available_minor  limit_minor - open_minor (negative when over the limit)
-- Customer attributes are the latest customers version with version_at <= T.
WITH
    cust AS (
        SELECT
            customer_id,
            argMax(name, version) AS customer_name,
            argMax(segment, version) AS customer_segment,
            argMax(credit_limit_minor, version) AS limit_minor,
            argMax(credit_currency, version) AS limit_currency
        FROM customers
        WHERE version_at <= {as_of:DateTime64(3, 'UTC')}
        GROUP BY customer_id
    ),
    inv AS (
        SELECT
            invoice_number,
            argMax(customer_id, version) AS invoice_customer,
            argMax(status, version) AS invoice_status,
            argMax(open_minor, version) AS invoice_open_minor,
            argMax(currency, version) AS invoice_currency
        FROM invoice_events
        WHERE version_at <= {as_of:DateTime64(3, 'UTC')}
        GROUP BY invoice_number
    ),
    disputes AS (
        SELECT
            dispute_key,
            argMax(status, (at, chargeback_id)) AS dispute_status,
            argMax(amount_minor, (at, chargeback_id)) AS dispute_minor,
            argMax(currency, (at, chargeback_id)) AS dispute_currency,
            argMax(customer_id, (at, chargeback_id)) AS dispute_customer
        FROM chargebacks
        WHERE at <= {as_of:DateTime64(3, 'UTC')}
        GROUP BY dispute_key
    ),
    parts AS (
        SELECT customer_id, limit_currency AS currency, 1 AS has_limit,
               toInt64(0) AS p_open, 0 AS p_invoices, 0 AS p_disputes, toInt64(0) AS p_disputed
        FROM cust
        WHERE limit_minor IS NOT NULL
        UNION ALL
        SELECT invoice_customer, invoice_currency, 0, invoice_open_minor, 1, 0, toInt64(0)
        FROM inv
        WHERE invoice_open_minor > 0
          AND invoice_status NOT IN ('paid', 'credited', 'written_off', 'void')
        UNION ALL
        SELECT dispute_customer, dispute_currency, 0, toInt64(0), 0, 1, dispute_minor
        FROM disputes
        WHERE dispute_status = 'opened'
    ),
    exposure AS (
        SELECT
            customer_id,
            currency,
            max(has_limit) AS has_limit_here,
            sum(p_open) AS open_minor,
            sum(p_invoices) AS open_invoices,
            sum(p_disputes) AS open_disputes,
            sum(p_disputed) AS disputed_minor
        FROM parts
        GROUP BY customer_id, currency
    )
SELECT
    exposure.customer_id AS customer_id,
    cust.customer_name AS name,
    if(ifNull(cust.customer_segment, '') = '', 'unassigned', cust.customer_segment) AS segment,
    exposure.currency AS currency,
    if(exposure.has_limit_here = 1, cust.limit_minor, NULL) AS limit_minor,
    exposure.open_minor AS open_minor,
    exposure.open_invoices AS open_invoices,
    exposure.open_disputes AS open_disputes,
    exposure.disputed_minor AS disputed_minor,
    if(exposure.has_limit_here = 1, cust.limit_minor - exposure.open_minor, NULL)
        AS available_minor
FROM exposure
LEFT JOIN cust ON cust.customer_id = exposure.customer_id
ORDER BY customer_id, currency
