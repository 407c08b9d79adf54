-- 0004: hashed pre-filter keys on applications.
--
-- Why: the cash KPIs read the whole history of the (payment, invoice) pairs applied
--   in a window, and the unapplied / match-rate reads look up payments among all
--   applications.  Probing a set of strings over millions of rows costs more than
--   the rest of those queries; a stored UInt64 key turns the probe into an integer
--   set look-up.
-- A key is only a pre-filter: equal strings give equal keys, so every row of a
--   selected pair (or payment) passes together; a collision only lets extra rows
--   through, which the exact GROUP BY / JOIN on the string columns then drops.
--   Never join or group on these keys alone.
-- MATERIALIZED: computed at insert (not part of the writer's column list); parts
--   written before this migration compute them on read until they are merged.
ALTER TABLE applications
    ADD COLUMN IF NOT EXISTS pair_key UInt64 MATERIALIZED cityHash64(payment_id, invoice_number);

ALTER TABLE applications
    ADD COLUMN IF NOT EXISTS payment_key UInt64 MATERIALIZED cityHash64(payment_id);
