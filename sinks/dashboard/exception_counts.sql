-- Open exceptions per kind as of a moment (the queue's filter chips).
--
-- Parameters:
--   as_of  DateTime64(3, 'UTC')
-- The open exceptions are views/exception_queue.sql itself: `queries.py` puts that
-- view, without its paging, in place of the open_exceptions marker.
SELECT kind, count() AS open_count
FROM (
{open_exceptions}
) AS open_exceptions
GROUP BY kind
ORDER BY kind
