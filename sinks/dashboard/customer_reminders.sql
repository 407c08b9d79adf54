-- One customer's dunning reminders up to T, newest first, at most `limit`.
--
-- Parameters:
--   as_of  DateTime64(3, 'UTC');  customer_id  String;  limit  UInt32
SELECT reminder_id, at, invoice_number, step, open_minor, currency
FROM reminders FINAL
WHERE customer_id = {customer_id:String} AND at <= {as_of:DateTime64(3, 'UTC')}
ORDER BY at DESC, reminder_id
LIMIT {limit:UInt32}
