-- A bulk import is one transaction of thousands of statements, and each statement's stamp
-- updated the same change-time rows again: a million articles left three million versions of
-- them, every later statement's ON CONFLICT walking past more of them (the import slowed from
-- 5,300 articles/s at 10,000 to 1,600 at a million) and every cold read after it too. A write
-- that feedcast marks as bulk stamps nothing per statement; it moves every feed's change time
-- once, just before it commits (see the store's Writer).
DROP TRIGGER feedcast_stamp_insert ON articles;
DROP TRIGGER feedcast_stamp_update ON articles;
DROP TRIGGER feedcast_stamp_delete ON articles;
CREATE TRIGGER feedcast_stamp_insert AFTER INSERT ON articles
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
WHEN (current_setting('feedcast.bulk', true) IS DISTINCT FROM 'on')
EXECUTE FUNCTION feedcast_stamp();
CREATE TRIGGER feedcast_stamp_update AFTER UPDATE ON articles
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
WHEN (current_setting('feedcast.bulk', true) IS DISTINCT FROM 'on')
EXECUTE FUNCTION feedcast_stamp();
CREATE TRIGGER feedcast_stamp_delete AFTER DELETE ON articles
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
WHEN (current_setting('feedcast.bulk', true) IS DISTINCT FROM 'on')
EXECUTE FUNCTION feedcast_stamp();
