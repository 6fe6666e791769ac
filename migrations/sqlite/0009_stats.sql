-- Subscriber statistics (see the `stats` module). Days are the site's ('YYYY-MM-DD' in its
-- time zone); feeds are paths below /feeds/ without extension, whatever the format.

-- One row per day and feed: what every replica tallied, added up.
CREATE TABLE stats_days (
    day          TEXT NOT NULL,
    feed         TEXT NOT NULL,
    -- 200s and 304s of the feed's documents, of which 304s, and the body bytes sent.
    polls        INTEGER NOT NULL DEFAULT 0,
    not_modified INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    -- Rows of stats_pairs stored for the day (at most the cap; past it a sketch counts).
    pairs        INTEGER NOT NULL DEFAULT 0,
    -- Distinct direct clients, added when the day is closed and its pairs deleted.
    direct       INTEGER NOT NULL DEFAULT 0,
    -- Push subscriptions counted for the feed, as last measured that day.
    push         INTEGER NOT NULL DEFAULT 0,
    -- Aggregator reports ignored as implausible.
    suspect      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, feed)
) WITHOUT ROWID;

-- The latest count each aggregator reported on a day, per its own feed id (or '' without).
CREATE TABLE stats_reports (
    day         TEXT NOT NULL,
    feed        TEXT NOT NULL,
    aggregator  TEXT NOT NULL,
    feed_key    TEXT NOT NULL,
    subscribers INTEGER NOT NULL,
    -- Microseconds: the latest report wins, whichever replica writes last.
    seen_at     INTEGER NOT NULL,
    PRIMARY KEY (day, feed, aggregator, feed_key)
) WITHOUT ROWID;

-- Distinct (client address, User-Agent) pairs of the open day, as HMAC-SHA256 under the day's
-- salt (hex): no address is stored. Deleted, with the salt, when the day is closed.
CREATE TABLE stats_pairs (
    day  TEXT NOT NULL,
    feed TEXT NOT NULL,
    pair TEXT NOT NULL,
    PRIMARY KEY (day, feed, pair)
) WITHOUT ROWID;

-- Past the cap of stored pairs, each replica's HyperLogLog of the day's pairs (base64).
CREATE TABLE stats_sketches (
    day       TEXT NOT NULL,
    feed      TEXT NOT NULL,
    replica   TEXT NOT NULL,
    registers TEXT NOT NULL,
    PRIMARY KEY (day, feed, replica)
) WITHOUT ROWID;

-- The random salt of each open day, shared so that every replica hashes alike.
CREATE TABLE stats_salts (
    day  TEXT PRIMARY KEY,
    salt TEXT NOT NULL
) WITHOUT ROWID;
