-- Articles and the feed index. Times are microseconds since the Unix epoch (UTC).
CREATE TABLE articles (
    id           TEXT PRIMARY KEY NOT NULL,
    title        TEXT NOT NULL,
    summary      TEXT NOT NULL,
    content_html TEXT NOT NULL,
    url          TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    updated_at   BIGINT,
    author       TEXT,
    source_name  TEXT,
    source_url   TEXT,
    categories   TEXT NOT NULL, -- category slugs separated by one space
    region       TEXT,
    image        TEXT,
    language     TEXT NOT NULL
);

-- One row per (bucket, article): every category or region feed is one range of this index,
-- newest first, so building a feed reads N rows whatever the size of the store.
CREATE TABLE feed_index (
    bucket       TEXT NOT NULL, -- 'c:<category slug>' or 'r:<region code>' (with every ancestor)
    published_at BIGINT NOT NULL,
    article_id   TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    PRIMARY KEY (bucket, published_at, article_id)
) WITHOUT ROWID;

CREATE INDEX feed_index_by_article ON feed_index (article_id, bucket);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
