-- The change log gains what the outbound queue needs: each entry's publication times (which
-- archive months it touched) and whether a replica has handled it (turned it into WebSub pings
-- and CDN purges). Entries are claimed for handling with FOR UPDATE SKIP LOCKED, so each is
-- handled by one replica, whoever wrote it: feedcast or the CMS in SQL.
ALTER TABLE change_log
    ADD COLUMN before_published BIGINT,
    ADD COLUMN after_published  BIGINT,
    ADD COLUMN handled          BOOLEAN NOT NULL DEFAULT FALSE;

-- Entries from before this upgrade were acted on by the feedcast that wrote them (its pings
-- went out then); handling them again would only repeat those.
UPDATE change_log SET handled = TRUE;

CREATE INDEX change_log_unhandled ON change_log (seq) WHERE NOT handled;

CREATE FUNCTION feedcast_log(id TEXT, before_categories TEXT, before_region TEXT,
                             before_published BIGINT, after_categories TEXT, after_region TEXT,
                             after_published BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7378415046506800934); -- "feedlog&", as in migration 5
    INSERT INTO change_log (article_id, before_categories, before_region, before_published,
                            after_categories, after_region, after_published)
    VALUES (id, before_categories, before_region, before_published, after_categories,
            after_region, after_published);
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
        PERFORM feedcast_log(NEW.id, NULL, NULL, NULL, NEW.categories, NEW.region,
                             NEW.published_at);
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM feedcast_log(NEW.id, OLD.categories, OLD.region, OLD.published_at,
                             NEW.categories, NEW.region, NEW.published_at);
    ELSE
        PERFORM feedcast_log(OLD.id, OLD.categories, OLD.region, OLD.published_at, NULL, NULL,
                             NULL);
    END IF;
    RETURN NULL;
END
$$;

DROP FUNCTION feedcast_log(TEXT, TEXT, TEXT, TEXT, TEXT);

-- Requests feedcast owes others, kept until sent or given up (see the SQLite migration 4 for
-- the columns). Claimed across replicas with FOR UPDATE SKIP LOCKED and a `claimed_until`
-- lease committed before the request is made: a replica that dies mid-request loses nothing,
-- another sends it once the lease has run out.
CREATE TABLE outbound (
    kind          TEXT COLLATE "C" NOT NULL,
    target        TEXT COLLATE "C" NOT NULL,
    topic         TEXT COLLATE "C" NOT NULL,
    due           BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    rounds        BIGINT NOT NULL DEFAULT 1,
    generation    BIGINT NOT NULL DEFAULT 0,
    claimed_until BIGINT,
    -- When the change it is for was queued (microseconds): for the latency in /metrics.
    queued_at     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, target, topic)
);

CREATE INDEX outbound_due ON outbound (due);
