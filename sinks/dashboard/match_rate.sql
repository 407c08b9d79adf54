-- Today's match rate: payments whose disposition changed on T's UTC day, up to T.
--
-- Parameters:
--   as_of  DateTime64(3, 'UTC')
-- A payment counts once, by its latest status that day: applied by the engine
-- (`auto`; `auto_weak` is the part decided by a weak rule: fuzzy reference, exact
-- amount or subset sum), applied by a person (`manual`, method 'manual'), or still
-- unapplied (`open`).  The method is that of the payment's latest application.
-- `payment_key` (migration 0004) only pre-filters; the join on payment_id decides.
WITH
    day_payments AS (
        SELECT payment_id, argMax(status, version) AS payment_status
        FROM payments
        WHERE status_at >= toStartOfDay({as_of:DateTime64(3, 'UTC')}, 'UTC')
          AND status_at <= {as_of:DateTime64(3, 'UTC')}
        GROUP BY payment_id
    ),
    methods AS (
        SELECT payment_id, argMax(method, at) AS last_method
        FROM applications
        WHERE at <= {as_of:DateTime64(3, 'UTC')} AND reversed = 0
          AND payment_key IN (SELECT cityHash64(payment_id) FROM day_payments)
        GROUP BY payment_id
    )
SELECT
    countIf(payment_status = 'applied' AND ifNull(last_method, '') != 'manual') AS auto,
    countIf(payment_status = 'applied'
            AND ifNull(last_method, '') IN ('fuzzy_reference', 'exact_amount', 'subset_sum'))
        AS auto_weak,
    countIf(payment_status = 'applied' AND ifNull(last_method, '') = 'manual') AS manual,
    countIf(payment_status = 'unapplied') AS open,
    count() AS payments
FROM day_payments
LEFT JOIN methods ON methods.payment_id = day_payments.payment_id
