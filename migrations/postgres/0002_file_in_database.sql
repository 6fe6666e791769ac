-- On PostgreSQL the database files articles itself, so that rows written by anything else (the
-- portal's CMS, in SQL) land in the right feeds too, and every replica hears of every change.

-- The region tree as feedcast's configuration declares it; feedcast keeps it in sync at start.
CREATE TABLE regions (
    code   TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    parent TEXT COLLATE "C"
);

CREATE FUNCTION feedcast_article_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (
        NEW.categories IS DISTINCT FROM OLD.categories
        OR NEW.region IS DISTINCT FROM OLD.region
        OR NEW.published_at IS DISTINCT FROM OLD.published_at)) THEN
        DELETE FROM feed_index WHERE article_id = NEW.id;
        INSERT INTO feed_index (bucket, published_at, article_id)
        SELECT DISTINCT 'c:' || c, NEW.published_at, NEW.id
        FROM regexp_split_to_table(NEW.categories, '\s+') AS c
        WHERE c <> '';
        INSERT INTO feed_index (bucket, published_at, article_id)
        WITH RECURSIVE lineage (code, depth) AS (
            SELECT code, 0 FROM regions WHERE code = NEW.region
            UNION ALL
            SELECT r.parent, l.depth + 1
            FROM lineage l JOIN regions r ON r.code = l.code
            WHERE r.parent IS NOT NULL AND l.depth < 64
        )
        SELECT DISTINCT 'r:' || code, NEW.published_at, NEW.id FROM lineage;
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

CREATE TRIGGER feedcast_article_changed
AFTER INSERT OR UPDATE OR DELETE ON articles
FOR EACH ROW EXECUTE FUNCTION feedcast_article_changed();
