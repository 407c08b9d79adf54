-- One customer's cash applications up to T, newest first, at most `limit`.
--
-- Parameters:
--   as_of  DateTime64(3, 'UTC');  customer_id  String;  limit  UInt32
-- FINAL so a replayed row is listed once; reversals are their own (negative) rows.
SELECT
    application_id, at, payment_id, invoice_number, amount_minor, currency, method,
    confidence, evidence, reversed, reason
FROM applications FINAL
WHERE customer_id = {customer_id:String} AND at <= {as_of:DateTime64(3, 'UTC')}
ORDER BY at DESC, application_id
LIMIT {limit:UInt32}
