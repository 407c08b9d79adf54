-- The open invoices behind one aging bucket: what a click on a bar lists.
--
-- Parameters:
--   as_of      DateTime64(3, 'UTC')
--   dimension  Identifier   customer_id, channel, currency or segment (as in views/aging.sql)
--   key        String       the dimension's value (the aging row's `key`)
--   currency   String
--   min_days   Int32        bucket bounds in days past due, inclusive
--   max_days   Int32
--   limit      UInt32       page size;  offset  UInt32
-- The open-item rules are those of views/aging.sql, so the invoices listed for a
-- bucket add up to that bucket's amount and count (`total` counts the whole bucket).
WITH
    inv AS (
        SELECT
            invoice_number,
            argMax(customer_id, version) AS last_customer_id,
            argMax(status, version) AS last_status,
            argMax(open_minor, version) AS last_open_minor,
            argMax(currency, version) AS last_currency,
            argMax(due_at, version) AS last_due_at,
            argMax(channel, version) AS last_channel,
            argMax(amount_minor, version) AS last_amount_minor,
            argMax(issued_at, version) AS last_issued_at
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
            inv.invoice_number AS invoice_number,
            inv.customer_id AS customer_id,
            inv.channel AS channel,
            inv.currency AS currency,
            if(ifNull(seg.segment, '') = '', 'unassigned', seg.segment) AS segment,
            inv.status AS status,
            inv.amount_minor AS amount_minor,
            inv.open_minor AS open_minor,
            inv.issued_at AS issued_at,
            inv.due_at AS due_at,
            toDate({as_of:DateTime64(3, 'UTC')}, 'UTC') - toDate(inv.due_at, 'UTC') AS days_past_due
        FROM (
            SELECT invoice_number, last_customer_id AS customer_id, last_status AS status,
                   last_open_minor AS open_minor, last_currency AS currency,
                   last_due_at AS due_at, last_channel AS channel,
                   last_amount_minor AS amount_minor, last_issued_at AS issued_at
            FROM inv
        ) AS inv
        LEFT JOIN seg ON seg.customer_id = inv.customer_id
        WHERE inv.open_minor > 0
          AND inv.status NOT IN ('paid', 'credited', 'written_off', 'void')
    )
SELECT
    invoice_number,
    customer_id,
    channel,
    currency,
    segment,
    status,
    amount_minor,
    open_minor,
    issued_at,
    due_at,
    days_past_due,
    count() OVER () AS total,
    sum(open_minor) OVER () AS total_open_minor
FROM open_items
WHERE toString({dimension:Identifier}) = {key:String}
  AND currency = {currency:String}
  AND days_past_due BETWEEN {min_days:Int32} AND {max_days:Int32}
ORDER BY days_past_due DESC, open_minor DESC, invoice_number
LIMIT {limit:UInt32} OFFSET {offset:UInt32}
