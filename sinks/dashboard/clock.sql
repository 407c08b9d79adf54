-- The stream's clock and size: newest invoice version time and deliveries stored.
--
-- No parameters.  `stream_at` is NULL before the first invoice arrives.
SELECT
    (SELECT if(count() = 0, NULL, max(version_at)) FROM invoice_events) AS stream_at,
    (SELECT count() FROM raw_events) AS deliveries
