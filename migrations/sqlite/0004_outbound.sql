-- The change log and the outbound queue (see the PostgreSQL migrations 5 and 6).
--
-- On SQLite feedcast is the store's only writer, so it appends to the change log itself, in
-- each write's transaction: an entry per article written or taken down (with how it was filed
-- before and after), or one for everything when a write touches more articles than are worth
-- naming. Each entry is handled once, in one transaction: turned into outbound requests (WebSub
-- pings, CDN purges) and marked handled. Entries older than an hour are pruned.
CREATE TABLE change_log (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    at                INTEGER NOT NULL,
    -- NULL: everything changed at once.
    article_id        TEXT,
    -- NULL categories: the article did not exist before, or does not exist after.
    before_categories TEXT,
    before_region     TEXT,
    before_published  INTEGER,
    after_categories  TEXT,
    after_region      TEXT,
    after_published   INTEGER,
    handled           BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX change_log_by_time ON change_log (at);
CREATE INDEX change_log_unhandled ON change_log (seq) WHERE NOT handled;

-- Requests feedcast owes others, kept until sent or given up, so a crash loses none. One row
-- per (kind, target, topic): a topic queued again while pending is the same row (`generation`
-- counts how often, so a send that was in flight meanwhile is made again). A row is claimed by
-- setting `claimed_until` (a lease) and committing before the request is made; a claim whose
-- lease ran out is anyone's again. `rounds`: how many times it is still to be sent after a
-- success (a purge is sent twice, the second once every replica has dropped its copy).
CREATE TABLE outbound (
    kind          TEXT NOT NULL,
    target        TEXT NOT NULL,
    topic         TEXT NOT NULL,
    due           INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    rounds        INTEGER NOT NULL DEFAULT 1,
    generation    INTEGER NOT NULL DEFAULT 0,
    claimed_until INTEGER,
    -- When the change it is for was queued (microseconds): for the latency in /metrics.
    queued_at     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, target, topic)
) WITHOUT ROWID;

CREATE INDEX outbound_due ON outbound (due);
