-- Open exceptions per kind as of a moment (the queue's filter chips).
--
-- Parameters:
--   as_of  DateTime64(3, 'UTC')
-- Same open rules as exceptions.sql and views/exception_queue.sql.
WITH
    latest AS (
        SELECT
            exception_id,
            argMax(opened_at, version) AS opened,
            argMax(kind, version) AS exception_kind,
            argMax(status, version) AS exception_status,
            argMax(payment_id, version) AS exception_payment
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
    )
SELECT exception_kind AS kind, count() AS open_count
FROM latest
LEFT JOIN newest_unapplied ON newest_unapplied.payment_id = latest.exception_payment
LEFT JOIN applied_last ON applied_last.payment_id = latest.exception_payment
WHERE exception_status = 'open'
  AND NOT (exception_kind = 'unapplied'
           AND (ifNull(applied_last.last_applied_at > opened, 0) = 1
                OR ifNull(newest_unapplied.newest_opened > opened, 0) = 1))
GROUP BY kind
ORDER BY kind
