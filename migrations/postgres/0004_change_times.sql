-- When what each feed shows last changed, in microseconds since the epoch by the database's
-- clock: a feed's and an archive month's Last-Modified (and Atom `updated`, RSS
-- `lastBuildDate`). One row per bucket and UTC month of publication (yyyymm; 0 stands for the
-- bucket as a whole, its newest items), moved forward by a statement trigger on every write,
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

-- The UTC month (yyyymm) of a stored time, as change_times keys it; 0 (the bucket as a whole,
-- which every write stamps) for a time outside the years 1900 to 9999, which the CMS may write
-- but to_timestamp may refuse, and which no feed shows.
CREATE FUNCTION feedcast_month(micros BIGINT) RETURNS INTEGER LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN micros BETWEEN -2208988800000000 AND 253402300799000000
        THEN to_char(to_timestamp(micros / 1000000.0) AT TIME ZONE 'UTC', 'YYYYMM')::int
        ELSE 0 END
$$;

-- Moves the change time of every bucket the changed rows are filed under, as a whole and for
-- the UTC month each was published in: to now, or by a microsecond if it is already there (a
-- clock that stepped back must not hide a change from If-Modified-Since). Once per statement,
-- over its transition tables. Measured: a row-level upsert of the same few hot rows, once per
-- article, made one 20,000-article INSERT take 219 s instead of 4 s, since each update of a row
-- the transaction already updated walks the chain of its earlier versions.
CREATE FUNCTION feedcast_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO change_times (bucket, month, changed_at)
        SELECT bucket, month, feedcast_now() FROM (
            -- The few distinct filings first, then their buckets: not once per row.
            SELECT DISTINCT b AS bucket, m AS month
            FROM (SELECT DISTINCT categories, region, feedcast_month(published_at) AS month
                  FROM (SELECT categories, region, published_at FROM new_rows) AS c) AS r,
                 feedcast_buckets(r.categories, r.region) AS b,
                 LATERAL (VALUES (0), (r.month)) AS months (m)
        ) AS keys
        ON CONFLICT (bucket, month) DO UPDATE
        SET changed_at = GREATEST(change_times.changed_at + 1, excluded.changed_at);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO change_times (bucket, month, changed_at)
        SELECT bucket, month, feedcast_now() FROM (
            -- The few distinct filings first, then their buckets: not once per row.
            SELECT DISTINCT b AS bucket, m AS month
            FROM (SELECT DISTINCT categories, region, feedcast_month(published_at) AS month
                  FROM (SELECT categories, region, published_at FROM old_rows
                  UNION SELECT categories, region, published_at FROM new_rows) AS c) AS r,
                 feedcast_buckets(r.categories, r.region) AS b,
                 LATERAL (VALUES (0), (r.month)) AS months (m)
        ) AS keys
        ON CONFLICT (bucket, month) DO UPDATE
        SET changed_at = GREATEST(change_times.changed_at + 1, excluded.changed_at);
    ELSE
        INSERT INTO change_times (bucket, month, changed_at)
        SELECT bucket, month, feedcast_now() FROM (
            -- The few distinct filings first, then their buckets: not once per row.
            SELECT DISTINCT b AS bucket, m AS month
            FROM (SELECT DISTINCT categories, region, feedcast_month(published_at) AS month
                  FROM (SELECT categories, region, published_at FROM old_rows) AS c) AS r,
                 feedcast_buckets(r.categories, r.region) AS b,
                 LATERAL (VALUES (0), (r.month)) AS months (m)
        ) AS keys
        ON CONFLICT (bucket, month) DO UPDATE
        SET changed_at = GREATEST(change_times.changed_at + 1, excluded.changed_at);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER feedcast_stamp_insert AFTER INSERT ON articles
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feedcast_stamp();
CREATE TRIGGER feedcast_stamp_update AFTER UPDATE ON articles
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION feedcast_stamp();
CREATE TRIGGER feedcast_stamp_delete AFTER DELETE ON articles
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION feedcast_stamp();
