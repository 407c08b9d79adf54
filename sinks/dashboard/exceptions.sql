-- The exception queue with the engine's evidence, filtered and sortable, paged.
--
-- Parameters:
--   as_of     DateTime64(3, 'UTC')
--   kind      String   one exception kind, or '' for all
--   currency  String   one currency, or '' for all
--   sort      String   'age' (by opened_at) or 'amount' (by amount_minor)
--   sign      Int8     1 ascending, -1 descending (oldest first is age with sign 1)
--   limit     UInt32   page size;  offset  UInt32
-- Which exceptions are open is views/exception_queue.sql itself: `queries.py` puts
-- that view, without its paging, in place of the open_exceptions marker.  Added
-- here: the filters, the sort and total_open after filtering.  Sorting is one Int64
-- key times `sign`, so no SQL text is ever built from input.
SELECT * EXCEPT (total_open), count() OVER () AS total_open
FROM (
{open_exceptions}
) AS open_exceptions
WHERE ({kind:String} = '' OR kind = {kind:String})
  AND ({currency:String} = '' OR currency = {currency:String})
ORDER BY
    if({sort:String} = 'amount', amount_minor, toUnixTimestamp64Milli(opened_at)) * {sign:Int8},
    opened_at,
    exception_id
LIMIT {limit:UInt32} OFFSET {offset:UInt32}
