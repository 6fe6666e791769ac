-- When what each feed shows last changed, in microseconds since the epoch by the database's
-- clock: a feed's and an archive month's Last-Modified (and Atom `updated`, RSS
-- `lastBuildDate`). One row per bucket and UTC month of publication (yyyymm; 0 stands for the
-- bucket as a whole, its newest items), moved forward by the filing trigger on every write,
-- feedcast's or anyone's, that files, unfiles or edits an article there. The bucket '*' holds
-- when everything last changed (a refile; this upgrade, since nothing before it was kept).
CREATE TABLE change_times (
    bucket     TEXT COLLATE "C" NOT NULL,
    month      INTEGER NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (bucket, month)
);

CREATE FUNCTION feedcast_now() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
$$;

INSERT INTO change_times (bucket, month, changed_at) VALUES ('*', 0, feedcast_now());

-- The buckets an article with these categories and this region is filed under.
CREATE FUNCTION feedcast_buckets(categories TEXT, region TEXT) RETURNS SETOF TEXT
LANGUAGE sql STABLE AS $$
    SELECT 'c:' || c FROM regexp_split_to_table(categories, '\s+') AS c WHERE c <> ''
    UNION
    SELECT 'r:' || code FROM (
        WITH RECURSIVE lineage (code, depth) AS (
            SELECT code, 0 FROM regions WHERE code = region
            UNION ALL
            SELECT r.parent, l.depth + 1
            FROM lineage l JOIN regions r ON r.code = l.code
            WHERE r.parent IS NOT NULL AND l.depth < 64
        )
        SELECT code FROM lineage
    ) AS l
$$;

-- Moves the change time of every bucket an article is filed under, as a whole and for the UTC
-- month it was published in: to now, or by a microsecond if it is already there (a clock that
-- stepped back must not hide a change from If-Modified-Since).
CREATE FUNCTION feedcast_stamp(categories TEXT, region TEXT, published_at BIGINT) RETURNS void
LANGUAGE sql VOLATILE AS $$
    INSERT INTO change_times (bucket, month, changed_at)
    SELECT b, m, feedcast_now()
    FROM feedcast_buckets(categories, region) AS b,
         (VALUES (0), (to_char(to_timestamp(published_at / 1000000.0) AT TIME ZONE 'UTC',
                               'YYYYMM')::int)) AS months (m)
    ON CONFLICT (bucket, month) DO UPDATE
    SET changed_at = GREATEST(change_times.changed_at + 1, excluded.changed_at)
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
        IF TG_OP = 'UPDATE' THEN
            PERFORM feedcast_stamp(OLD.categories, OLD.region, OLD.published_at);
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM feedcast_stamp(OLD.categories, OLD.region, OLD.published_at);
    ELSE
        PERFORM feedcast_stamp(NEW.categories, NEW.region, NEW.published_at);
    END IF;
    -- Deleting an article removes its feed_index rows through the foreign key.
    PERFORM pg_notify('feedcast_articles', json_build_object(
        'id', CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
        'before', CASE WHEN TG_OP = 'INSERT' THEN NULL
                  ELSE json_build_object('categories', OLD.categories, 'region', OLD.region) END,
        'after', CASE WHEN TG_OP = 'DELETE' THEN NULL
                 ELSE json_build_object('categories', NEW.categories, 'region', NEW.region) END
    )::text);
    RETURN NULL;
END
$$;
