-- Tombstones (RFC 6721): what is left of a taken-down article for a while, so that readers
-- holding it learn it is gone. The id and URL of the article, when it was published (which
-- archive month carries the tombstone) and when it was taken down; never any of its text.
-- Storing the id again removes its tombstone. Times are microseconds since the epoch (UTC).
CREATE TABLE tombstones (
    article_id   TEXT PRIMARY KEY NOT NULL,
    url          TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    deleted_at   BIGINT NOT NULL
);

-- One row per (bucket, tombstone): the buckets the article was filed under when it was taken
-- down. A feed reads its newest tombstones as it reads its articles, one range of this index
-- per bucket, newest takedown first; an archive also bounds the publication time.
CREATE TABLE tombstone_index (
    bucket       TEXT NOT NULL,
    deleted_at   BIGINT NOT NULL,
    -- No foreign key: checking one per row made leaving 14,000 tombstones at once take four
    -- times as long as the DELETE itself (measured on PostgreSQL); whatever removes a tombstone
    -- removes its index rows first.
    article_id   TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    PRIMARY KEY (bucket, deleted_at, article_id)
) WITHOUT ROWID;

CREATE INDEX tombstone_index_by_article ON tombstone_index (article_id, bucket);
