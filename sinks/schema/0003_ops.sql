-- 0003: alerts and dunning reminders.

-- alerts: what was raised (fee anomalies, credit limit breaches, ...); details is a
--   JSON object with the rule's numbers.
-- Engine: ReplacingMergeTree without version (immutable).  ORDER BY (kind, at,
--   alert_id).  Partition: month of `at`.  TTL: 400 days.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id     String,
    at           DateTime64(3, 'UTC'),
    kind         LowCardinality(String),
    severity     LowCardinality(String),
    customer_id  String,
    processor    LowCardinality(String),
    subject      String,
    amount_minor Int64,
    currency     LowCardinality(String),
    details      String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (kind, at, alert_id)
TTL toDateTime(at) + INTERVAL 400 DAY;

-- reminders: dunning steps that fell due, one row per reminder_due outcome.
-- Engine: ReplacingMergeTree without version (immutable).  ORDER BY
--   (invoice_number, at, reminder_id).  Partition: month of `at`.  TTL: 2 years.
CREATE TABLE IF NOT EXISTS reminders
(
    reminder_id    String,
    at             DateTime64(3, 'UTC'),
    invoice_number String,
    customer_id    String,
    step           LowCardinality(String),
    open_minor     Int64,
    currency       LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (invoice_number, at, reminder_id)
TTL toDateTime(at) + INTERVAL 2 YEAR;
