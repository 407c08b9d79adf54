-- The ops exception queue as of a moment: open exceptions, oldest first, paged.
--
-- Parameters:
--   as_of   DateTime64(3, 'UTC')
--   limit   UInt32   page size
--   offset  UInt32   rows to skip
-- Each exception's state is its latest version with updated_at <= T, opened_at
-- included (an accepted deduction replaces its refusal and is opened at its
-- acceptance: see rows.py).  An 'unapplied' exception leaves the queue once its payment has cash applied after it
-- was opened, or once a newer 'unapplied' exception exists for the same payment.
-- age_hours is whole hours since opened_at; age_days calendar days (UTC).
-- total_open counts the whole queue, not just the page.  candidates and evidence
-- are the engine's (unapplied cash).  The dashboard's exception list and counts
-- run this query without its last line (the paging): keep that line last.
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
          AND payment_key IN (SELECT cityHash64(payment_id) FROM newest_unapplied)
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
ORDER BY opened_at, exception_id
LIMIT {limit:UInt32} OFFSET {offset:UInt32}
