-- Tombstones (RFC 6721): what is left of a taken-down article for a while, so that readers
-- holding it learn it is gone. The id and URL of the article, when it was published (which
-- archive month carries the tombstone) and when it was taken down, by the database's clock;
-- never any of its text. Times are microseconds since the epoch (UTC).
--
-- Written by statement triggers on articles, since the CMS deletes and inserts rows in SQL: a
-- DELETE, feedcast's or anyone's, leaves a tombstone; an INSERT of the same id removes it.
CREATE TABLE tombstones (
    article_id   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    url          TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    deleted_at   BIGINT NOT NULL
);

-- One row per (bucket, tombstone): the buckets the article was filed under when it was taken
-- down. A feed reads its newest tombstones as it reads its articles, one range of this index
-- per bucket, newest takedown first; an archive also bounds the publication time.
CREATE TABLE tombstone_index (
    bucket       TEXT COLLATE "C" NOT NULL,
    deleted_at   BIGINT NOT NULL,
    -- No foreign key: checking one per row made leaving 14,000 tombstones at once take four
    -- times as long as the DELETE itself (measured on PostgreSQL); whatever removes a tombstone
    -- removes its index rows first.
    article_id   TEXT COLLATE "C" NOT NULL,
    published_at BIGINT NOT NULL,
    PRIMARY KEY (bucket, deleted_at, article_id)
);

CREATE INDEX tombstone_index_by_article ON tombstone_index (article_id, bucket);

-- Leaves a tombstone for every deleted row, filed under the buckets its categories and region
-- filed it under (feed_index's rows are already gone with it). Once per statement, over its
-- transition table, each distinct filing's buckets computed once, as feedcast_stamp does.
CREATE FUNCTION feedcast_entomb() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    taken_down_at BIGINT := feedcast_now();
BEGIN
    -- A tombstone left by an earlier takedown (the row came back by UPDATE of its id, which no
    -- insert trigger saw) is replaced, index and all.
    DELETE FROM tombstone_index WHERE article_id IN (SELECT id FROM old_rows);
    DELETE FROM tombstones WHERE article_id IN (SELECT id FROM old_rows);
    INSERT INTO tombstones (article_id, url, published_at, deleted_at)
    SELECT id, url, published_at, taken_down_at FROM old_rows;
    INSERT INTO tombstone_index (bucket, deleted_at, article_id, published_at)
    SELECT f.bucket, taken_down_at, o.id, o.published_at
    FROM old_rows o
    JOIN (SELECT r.categories, r.region, b AS bucket
          FROM (SELECT DISTINCT categories, region FROM old_rows) AS r,
               feedcast_buckets(r.categories, r.region) AS b) AS f
      ON f.categories = o.categories AND f.region IS NOT DISTINCT FROM o.region;
    RETURN NULL;
END
$$;

-- Storing an id again removes its tombstone and its index rows. The buckets the tombstone was
-- shown in change too (they may not be the article's now), as a whole and for its UTC month:
-- computed per distinct UTC day, since feedcast_month once per row made re-storing 14,000
-- taken-down articles take twice as long (measured).
CREATE FUNCTION feedcast_unentomb() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_times (bucket, month, changed_at)
    SELECT bucket, month, feedcast_now() FROM (
        SELECT DISTINCT d.bucket, m AS month
        FROM (SELECT DISTINCT t.bucket, floor(t.published_at / 86400000000.0)::bigint AS day
              FROM tombstone_index t
              WHERE t.article_id IN (SELECT id FROM new_rows)) AS d,
             LATERAL (VALUES (0), (feedcast_month(d.day * 86400000000))) AS months (m)
    ) AS keys
    ON CONFLICT (bucket, month) DO UPDATE
    SET changed_at = GREATEST(change_times.changed_at + 1, excluded.changed_at);
    DELETE FROM tombstone_index WHERE article_id IN (SELECT id FROM new_rows);
    DELETE FROM tombstones WHERE article_id IN (SELECT id FROM new_rows);
    RETURN NULL;
END
$$;

CREATE TRIGGER feedcast_entomb AFTER DELETE ON articles
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION feedcast_entomb();
CREATE TRIGGER feedcast_unentomb AFTER INSERT ON articles
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feedcast_unentomb();
