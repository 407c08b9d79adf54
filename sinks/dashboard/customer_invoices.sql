-- One customer's open invoices as of T, most overdue first, paged.
--
-- Parameters:
--   as_of  DateTime64(3, 'UTC');  customer_id  String;  limit  UInt32;  offset  UInt32
-- Open as in views/aging.sql.  Invoices are found through the customer's
-- invoice numbers first, so the scan of versions stays on that customer's rows.
WITH
    numbers AS (
        SELECT DISTINCT invoice_number
        FROM invoice_events
        WHERE customer_id = {customer_id:String}
    ),
    inv AS (
        SELECT
            invoice_number,
            argMax((customer_id, status, open_minor, amount_minor, currency, issued_at,
                    due_at, channel), version) AS s
        FROM invoice_events
        WHERE version_at <= {as_of:DateTime64(3, 'UTC')}
          AND invoice_number IN (SELECT invoice_number FROM numbers)
        GROUP BY invoice_number
    )
SELECT
    invoice_number,
    s.2 AS status,
    s.3 AS open_minor,
    s.4 AS amount_minor,
    s.5 AS currency,
    s.6 AS issued_at,
    s.7 AS due_at,
    s.8 AS channel,
    toDate({as_of:DateTime64(3, 'UTC')}, 'UTC') - toDate(s.7, 'UTC') AS days_past_due,
    count() OVER () AS total
FROM inv
WHERE s.1 = {customer_id:String}
  AND s.3 > 0
  AND s.2 NOT IN ('paid', 'credited', 'written_off', 'void')
ORDER BY days_past_due DESC, invoice_number
LIMIT {limit:UInt32} OFFSET {offset:UInt32}
