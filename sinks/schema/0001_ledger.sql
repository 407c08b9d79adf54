-- 0001: raw deliveries, invoice history and current state, customers.
--
-- Conventions for every table:
--   * money is Int64 minor units next to a LowCardinality(String) ISO-4217 currency;
--   * times are DateTime64(3, 'UTC');
--   * each row carries a deterministic id (the outcome id, or a digest of the input),
--     and that id is part of the sorting key, so re-inserting a row after a crash
--     and replay only adds an identical duplicate that merges away; readers that
--     sum amounts use FINAL (or group by the id) so duplicates never count twice;
--   * `version` is UInt64 = event time in epoch milliseconds * 1000 + a sequence
--     number (0..999) that orders outcomes sharing the same millisecond.

-- raw_events: every delivery exactly as received, for audit and replay.
-- Engine: ReplacingMergeTree without version (rows are immutable; identical
--   re-inserts collapse).  ORDER BY (source, kind, received_at, raw_id).
-- Partition: month of receipt, so retention drops whole parts.
-- TTL: the body is cleared after 400 days (metadata stays), rows after 7 years.
-- Latest version: not applicable (immutable); count with FINAL or uniqExact(raw_id).
CREATE TABLE IF NOT EXISTS raw_events
(
    raw_id      String,
    source      LowCardinality(String),
    kind        LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    position    Int64,
    body_bytes  UInt32,
    body        String CODEC(ZSTD(3)) TTL toDateTime(received_at) + INTERVAL 400 DAY
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (source, kind, received_at, raw_id)
TTL toDateTime(received_at) + INTERVAL 7 YEAR;

-- invoice_events: append-only history of every invoice_status outcome.
-- Engine: ReplacingMergeTree without version: each version is its own row (the
--   version is in the sorting key), only identical re-inserts collapse.
-- ORDER BY (invoice_number, version, row_id).  Partition: month of issue, which
--   never changes for an invoice, so all its versions share a partition.
-- TTL: none (this is the ledger history that "as of" queries read).
-- Reading state as of T: argMax(column, version) over rows with version_at <= T,
--   grouped by invoice_number (see sinks/views/*.sql).
CREATE TABLE IF NOT EXISTS invoice_events
(
    row_id         String,
    version_at     DateTime64(3, 'UTC'),
    version        UInt64,
    invoice_number String,
    customer_id    String,
    status         LowCardinality(String),
    open_minor     Int64,
    amount_minor   Int64,
    currency       LowCardinality(String),
    issued_at      DateTime64(3, 'UTC'),
    due_at         DateTime64(3, 'UTC'),
    channel        LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(issued_at)
ORDER BY (invoice_number, version, row_id);

-- invoices: current state per invoice, fed only by invoices_mv from invoice_events.
-- Engine: ReplacingMergeTree(version), ORDER BY invoice_number: merges keep the
--   highest version.  Partition: month of issue (stable per invoice).
-- Latest version: SELECT ... FROM invoices FINAL (or argMax(..., version)).
CREATE TABLE IF NOT EXISTS invoices
(
    invoice_number String,
    version        UInt64,
    version_at     DateTime64(3, 'UTC'),
    customer_id    String,
    status         LowCardinality(String),
    open_minor     Int64,
    amount_minor   Int64,
    currency       LowCardinality(String),
    issued_at      DateTime64(3, 'UTC'),
    due_at         DateTime64(3, 'UTC'),
    channel        LowCardinality(String)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(issued_at)
ORDER BY invoice_number;

-- The only materialized view: over invoice_events, which is append-only.
CREATE MATERIALIZED VIEW IF NOT EXISTS invoices_mv TO invoices AS
SELECT invoice_number, version, version_at, customer_id, status, open_minor,
       amount_minor, currency, issued_at, due_at, channel
FROM invoice_events;

-- customers: every CustomerUpserted version (credit limit, terms, segment).
-- Engine: ReplacingMergeTree, ORDER BY (customer_id, version): versions are kept
--   (history for "as of"), identical re-inserts collapse.  Partition: none (small).
-- TTL: none.  Latest as of T: argMax(column, version) WHERE version_at <= T.
-- credit_limit_minor is NULL when the customer has no limit.
CREATE TABLE IF NOT EXISTS customers
(
    customer_id        String,
    version_at         DateTime64(3, 'UTC'),
    version            UInt64,
    row_id             String,
    name               String,
    segment            LowCardinality(String),
    terms_days         UInt16,
    credit_limit_minor Nullable(Int64),
    credit_currency    LowCardinality(String),
    allowance_bps      UInt32,
    aliases            Array(String),
    external_ids       Array(String),
    source             LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_id, version, row_id);
