-- The exception queue with the engine's evidence, filtered and sortable, paged.
--
-- Parameters:
--   as_of     DateTime64(3, 'UTC')
--   kind      String   one exception kind, or '' for all
--   currency  String   one currency, or '' for all
--   sort      String   'age' (by opened_at) or 'amount' (by amount_minor)
--   sign      Int8     1 ascending, -1 descending (oldest first is age with sign 1)
--   limit     UInt32   page size;  offset  UInt32
-- Which exceptions are open is decided exactly as in views/exception_queue.sql
-- (latest version with updated_at <= T; unapplied cash leaves the queue once applied
-- or superseded).  Added here: candidates and evidence, the filters and the sort.
-- Sorting is one Int64 key times `sign`, so no SQL text is ever built from input.
WITH
    latest AS (
        SELECT
            exception_id,
            argMax(opened_at, version) AS opened,
            argMax(kind, version) AS exception_kind,
            argMax(status, version) AS exception_status,
            argMax(owner, version) AS exception_owner,
            argMax(payment_id, version) AS exception_payment,
            argMax(invoice_number, version) AS exception_invoice,
            argMax(customer_id, version) AS exception_customer,
            argMax(amount_minor, version) AS exception_minor,
            argMax(currency, version) AS exception_currency,
            argMax(reason, version) AS exception_reason,
            argMax(source, version) AS exception_source,
            argMax(ref, version) AS exception_ref,
            argMax(candidates, version) AS exception_candidates,
            argMax(evidence, version) AS exception_evidence
        FROM exceptions
        WHERE updated_at <= {as_of:DateTime64(3, 'UTC')}
        GROUP BY exception_id
    ),
    newest_unapplied AS (
        SELECT exception_payment AS payment_id, max(opened) AS newest_opened
        FROM latest
        WHERE exception_kind = 'unapplied'
        GROUP BY exception_payment
    ),
    applied_last AS (
        SELECT payment_id, max(at) AS last_applied_at
        FROM applications
        WHERE at <= {as_of:DateTime64(3, 'UTC')} AND reversed = 0
          AND payment_id IN (SELECT payment_id FROM newest_unapplied)
        GROUP BY payment_id
    ),
    queue AS (
        SELECT latest.*
        FROM latest
        LEFT JOIN newest_unapplied ON newest_unapplied.payment_id = latest.exception_payment
        LEFT JOIN applied_last ON applied_last.payment_id = latest.exception_payment
        WHERE exception_status = 'open'
          AND NOT (exception_kind = 'unapplied'
                   AND (ifNull(applied_last.last_applied_at > opened, 0) = 1
                        OR ifNull(newest_unapplied.newest_opened > opened, 0) = 1))
          AND ({kind:String} = '' OR exception_kind = {kind:String})
          AND ({currency:String} = '' OR exception_currency = {currency:String})
    )
SELECT
    exception_id,
    exception_kind AS kind,
    exception_status AS status,
    exception_owner AS owner,
    exception_payment AS payment_id,
    exception_invoice AS invoice_number,
    exception_customer AS customer_id,
    exception_minor AS amount_minor,
    exception_currency AS currency,
    exception_reason AS reason,
    exception_source AS source,
    exception_ref AS ref,
    exception_candidates AS candidates,
    exception_evidence AS evidence,
    opened AS opened_at,
    intDiv(toUnixTimestamp64Milli({as_of:DateTime64(3, 'UTC')})
           - toUnixTimestamp64Milli(opened), 3600000) AS age_hours,
    toDate({as_of:DateTime64(3, 'UTC')}, 'UTC') - toDate(opened, 'UTC') AS age_days,
    count() OVER () AS total_open
FROM queue
ORDER BY
    if({sort:String} = 'amount', exception_minor, toUnixTimestamp64Milli(opened)) * {sign:Int8},
    opened_at,
    exception_id
LIMIT {limit:UInt32} OFFSET {offset:UInt32}
