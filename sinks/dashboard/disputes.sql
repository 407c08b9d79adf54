-- Open chargebacks (disputes whose latest step at or before T is 'opened'), paged.
--
-- Parameters:
--   as_of  DateTime64(3, 'UTC');  limit  UInt32;  offset  UInt32
-- State per dispute_key is argMax over (at, chargeback_id), as in views/cash_kpis.sql.
WITH
    disputes AS (
        SELECT
            dispute_key,
            argMax(status, (at, chargeback_id)) AS dispute_status,
            argMax(payment_id, (at, chargeback_id)) AS dispute_payment,
            argMax(invoice_number, (at, chargeback_id)) AS dispute_invoice,
            argMax(customer_id, (at, chargeback_id)) AS dispute_customer,
            argMax(amount_minor, (at, chargeback_id)) AS dispute_minor,
            argMax(currency, (at, chargeback_id)) AS dispute_currency,
            min(at) AS opened
        FROM chargebacks
        WHERE at <= {as_of:DateTime64(3, 'UTC')}
        GROUP BY dispute_key
    )
SELECT
    dispute_key,
    dispute_payment AS payment_id,
    dispute_invoice AS invoice_number,
    dispute_customer AS customer_id,
    dispute_minor AS amount_minor,
    dispute_currency AS currency,
    opened AS opened_at,
    toDate({as_of:DateTime64(3, 'UTC')}, 'UTC') - toDate(opened, 'UTC') AS age_days,
    count() OVER () AS total_open
FROM disputes
WHERE dispute_status = 'opened'
ORDER BY opened_at, dispute_key
LIMIT {limit:UInt32} OFFSET {offset:UInt32}
