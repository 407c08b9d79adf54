-- Fee anomaly alerts in (T - days, T], newest first, at most `limit`.
--
-- Parameters:
--   as_of  DateTime64(3, 'UTC');  days  UInt16;  limit  UInt32
SELECT alert_id, at, processor, subject AS scope, details
FROM alerts
WHERE kind = 'fee_anomaly'
  AND at > {as_of:DateTime64(3, 'UTC')} - toIntervalDay({days:UInt16})
  AND at <= {as_of:DateTime64(3, 'UTC')}
ORDER BY at DESC, alert_id
LIMIT {limit:UInt32}
