-- 0002: payments, applications, exceptions, chargebacks and observed fees.

-- payments: one row per payment: who paid, in which currency, and its latest
--   disposition (applied or unapplied) from the applied/unapplied outcomes.
--   Amounts live in applications and exceptions, which keep the history.
-- Engine: ReplacingMergeTree(version), ORDER BY payment_id.  Partition: none
--   (the row is replaced over time; a changing partition key would split it).
-- TTL: none.  Latest version: FINAL, or argMax(..., version) WHERE status_at <= T.
CREATE TABLE IF NOT EXISTS payments
(
    payment_id  String,
    customer_id String,
    currency    LowCardinality(String),
    status      LowCardinality(String),
    status_at   DateTime64(3, 'UTC'),
    version     UInt64,
    row_id      String
)
ENGINE = ReplacingMergeTree(version)
ORDER BY payment_id;

-- applications: append-only journal of cash applied to invoices.  An applied
--   outcome is a row with reversed = 0 and a positive amount; a reversed outcome
--   is its own row with reversed = 1 and a negative amount, so the net applied
--   amount as of T is sum(amount_minor) over rows with at <= T.
-- Engine: ReplacingMergeTree without version (immutable rows, identical
--   re-inserts collapse).  ORDER BY (customer_id, payment_id, invoice_number,
--   application_id).  Partition: month of `at`.  TTL: none.
-- Readers: FINAL (sums must not see a not-yet-merged duplicate).
CREATE TABLE IF NOT EXISTS applications
(
    application_id String,
    at             DateTime64(3, 'UTC'),
    payment_id     String,
    invoice_number String,
    customer_id    String,
    amount_minor   Int64,
    currency       LowCardinality(String),
    method         LowCardinality(String),
    confidence     Float32,
    evidence       Array(String),
    rule_version   LowCardinality(String),
    reversed       UInt8,
    reason         String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (customer_id, payment_id, invoice_number, application_id);

-- exceptions: the ops queue.  kind is one of unapplied, short_paid (unexplained),
--   deduction, invalid_deduction, coded_gap (fee/return/promotion, resolved at
--   birth), overpaid, duplicate, dead_letter, credit_limit_exceeded.
--   status: open, resolved, ignored; owner: who works it.  An ops update inserts
--   the whole row again with a higher version and a later updated_at.
-- Engine: ReplacingMergeTree(version), ORDER BY exception_id.  Partition: month of
--   opened_at (never changes for an exception).  TTL: none.
-- Latest as of T: argMax(column, version) WHERE updated_at <= T (FINAL for "now").
CREATE TABLE IF NOT EXISTS exceptions
(
    exception_id   String,
    opened_at      DateTime64(3, 'UTC'),
    updated_at     DateTime64(3, 'UTC'),
    version        UInt64,
    kind           LowCardinality(String),
    status         LowCardinality(String),
    owner          String,
    payment_id     String,
    invoice_number String,
    customer_id    String,
    amount_minor   Int64,
    currency       LowCardinality(String),
    reason         String,
    source         LowCardinality(String),
    ref            String,
    candidates     Array(String),
    evidence       Array(String)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(opened_at)
ORDER BY exception_id;

-- chargebacks: append-only, one row per dispute step (opened, won, lost).
--   dispute_key is the provider dispute id, else the payment id.
-- Engine: ReplacingMergeTree without version.  ORDER BY (dispute_key, at,
--   chargeback_id).  Partition: month of `at`.  TTL: none.
-- State as of T: argMax(status, (at, chargeback_id)) per dispute_key, FINAL not needed.
CREATE TABLE IF NOT EXISTS chargebacks
(
    chargeback_id  String,
    at             DateTime64(3, 'UTC'),
    dispute_key    String,
    dispute_id     String,
    payment_id     String,
    invoice_number String,
    customer_id    String,
    amount_minor   Int64,
    currency       LowCardinality(String),
    status         LowCardinality(String),
    fee_minor      Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (dispute_key, at, chargeback_id);

-- fees: observed fee lines, one per balance transaction of a processor payout.
-- Engine: ReplacingMergeTree without version (immutable).  ORDER BY (processor,
--   payout_id, fee_line_id).  Partition: month of `at`.  TTL: none.
-- Readers summing fees use FINAL.
CREATE TABLE IF NOT EXISTS fees
(
    fee_line_id    String,
    at             DateTime64(3, 'UTC'),
    processor      LowCardinality(String),
    payout_id      String,
    currency       LowCardinality(String),
    line_kind      LowCardinality(String),
    source_id      String,
    gross_minor    Int64,
    fee_minor      Int64,
    fee_types      Array(LowCardinality(String)),
    payment_method LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (processor, payout_id, fee_line_id);
