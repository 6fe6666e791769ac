-- Former names (`formerly` in feeds.toml): each category slug and region code a feed had before,
-- with the one it has now. feedcast replaces them at start, as it does the region tree, in the
-- refile's transaction. Until now only that refile mapped a former name, so a row the CMS wrote
-- in SQL under one while feedcast ran was filed under the old category bucket, or, for a former
-- region code, which the region tree does not hold, under no region at all, and stayed out of
-- the current feeds until the next start.
CREATE TABLE former_names (
    kind    TEXT COLLATE "C" NOT NULL, -- 'c' (a category slug) or 'r' (a region code)
    former  TEXT COLLATE "C" NOT NULL,
    current TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (kind, former)
);

-- Rewrites a row's former category slugs and region code to the current ones before it is
-- stored, as the intake maps what the admin API and imports are sent, and as the refile at
-- start rewrites rows: every trigger after it (filing, change log, change times, tombstones)
-- then sees the current names, and the row is as a start would leave it. Categories keep their
-- order, each once; a list that holds no former name is left exactly as written.
CREATE FUNCTION feedcast_current_names() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.region IS NOT NULL THEN
        NEW.region := coalesce(
            (SELECT f.current FROM former_names f WHERE f.kind = 'r' AND f.former = NEW.region),
            NEW.region);
    END IF;
    IF EXISTS (SELECT 1 FROM former_names f
               WHERE f.kind = 'c'
                 AND f.former = ANY (regexp_split_to_array(NEW.categories, '\s+'))) THEN
        NEW.categories := (
            SELECT string_agg(n.name, ' ' ORDER BY n.first) FROM (
                SELECT coalesce(f.current, c.name) AS name, min(c.at) AS first
                FROM regexp_split_to_table(NEW.categories, '\s+') WITH ORDINALITY AS c (name, at)
                LEFT JOIN former_names f ON f.kind = 'c' AND f.former = c.name
                WHERE c.name <> ''
                GROUP BY 1
            ) AS n);
    END IF;
    RETURN NEW;
END
$$;

-- Not for feedcast's bulk writes (an import, migration 11's mark): they come through its intake,
-- which has mapped every former name already, and the two lookups a row cost 19 µs (measured:
-- 200,000 rows took 4.9 s instead of 1.0 s), a tenth of a bulk import's time per article. Every
-- other write is mapped: the CMS's, and that of a replica whose feeds.toml is older than the
-- one stored here (during a rolling deploy).
CREATE TRIGGER feedcast_current_names
BEFORE INSERT OR UPDATE OF categories, region ON articles
FOR EACH ROW
WHEN (current_setting('feedcast.bulk', true) IS DISTINCT FROM 'on')
EXECUTE FUNCTION feedcast_current_names();
