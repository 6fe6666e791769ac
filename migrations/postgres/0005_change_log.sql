-- The change log: every write to an article, feedcast's or anyone's (the CMS, in SQL), in
-- commit order, with the database's clock. Replicas follow it to keep their caches coherent:
-- NOTIFY only wakes them, the log is the truth, so a replica that could not listen for a while
-- replays what it missed instead of guessing. Entries older than an hour are pruned.
CREATE TABLE change_log (
    seq               BIGSERIAL PRIMARY KEY,
    at                BIGINT NOT NULL DEFAULT feedcast_now(),
    -- NULL: everything changed at once (the feed index was rebuilt).
    article_id        TEXT COLLATE "C",
    -- How the article was filed before and after; NULL categories: it did not exist before, or
    -- does not exist after (a takedown).
    before_categories TEXT,
    before_region     TEXT,
    after_categories  TEXT,
    after_region      TEXT
);

CREATE INDEX change_log_by_time ON change_log (at);

-- Appends to the change log in commit order. Sequence numbers are handed out at insert, not at
-- commit, so each appender first takes a transaction-level advisory lock: it waits until the
-- transaction that appended before it has committed or rolled back, and an entry a reader has
-- not seen can then never have a number below one it has (a rolled-back entry leaves a gap
-- that is never filled).
CREATE FUNCTION feedcast_log(id TEXT, before_categories TEXT, before_region TEXT,
                             after_categories TEXT, after_region TEXT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7378415046506800934); -- "feedlog&"
    INSERT INTO change_log (article_id, before_categories, before_region, after_categories,
                            after_region)
    VALUES (id, before_categories, before_region, after_categories, after_region);
    PERFORM pg_notify('feedcast_articles', '');
END
$$;

CREATE OR REPLACE FUNCTION feedcast_article_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (
        NEW.categories IS DISTINCT FROM OLD.categories
        OR NEW.region IS DISTINCT FROM OLD.region
        OR NEW.published_at IS DISTINCT FROM OLD.published_at)) THEN
        DELETE FROM feed_index WHERE article_id = NEW.id;
        INSERT INTO feed_index (bucket, published_at, article_id)
        SELECT b, NEW.published_at, NEW.id FROM feedcast_buckets(NEW.categories, NEW.region) AS b;
    END IF;
    -- Deleting an article removes its feed_index rows through the foreign key.
    IF TG_OP = 'INSERT' THEN
        PERFORM feedcast_log(NEW.id, NULL, NULL, NEW.categories, NEW.region);
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM feedcast_log(NEW.id, OLD.categories, OLD.region, NEW.categories, NEW.region);
    ELSE
        PERFORM feedcast_log(OLD.id, OLD.categories, OLD.region, NULL, NULL);
    END IF;
    RETURN NULL;
END
$$;
