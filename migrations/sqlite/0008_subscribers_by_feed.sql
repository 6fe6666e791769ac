-- A change fans out to a document's subscribers a page at a time, in id order (so that on
-- SQLite no page holds the one writer long): the index walks one feed's subscriptions in that
-- order. It replaces (feed, expires_at), which nothing needs once fan-out pages by id.
DROP INDEX subscriptions_by_feed;
CREATE INDEX subscriptions_by_feed ON subscriptions (feed, id);
