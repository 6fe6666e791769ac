-- feedcast's own WebSub hub: one row per (canonical topic, callback), active or awaiting
-- verification, so that every replica is the same hub.
CREATE TABLE subscriptions (
    -- sha256 (hex) of the canonical topic, a newline and the callback: a short key however long
    -- they are.
    id              TEXT COLLATE "C" PRIMARY KEY,
    -- The canonical topic: the self URL of the feed document subscribed to.
    topic           TEXT NOT NULL,
    -- '<path>.<ext>' of that document: what a change fans out by, whatever its ?limit.
    feed            TEXT COLLATE "C" NOT NULL,
    callback        TEXT NOT NULL,
    -- The callback's host (lowercased, no port, no trailing dot), for the bounds per host.
    callback_host   TEXT COLLATE "C" NOT NULL,
    -- hub.topic as the subscriber sent it, echoed in verifications and deliveries.
    topic_as_sent   TEXT NOT NULL,
    secret          TEXT,
    -- Microseconds; NULL: not active (awaiting its first verification).
    expires_at      BIGINT,
    -- The request awaiting verification, if any: subscribe or unsubscribe, its lease in
    -- seconds, secret and topic as sent, and since when (which verification it is).
    pending_mode    TEXT,
    pending_lease   BIGINT,
    pending_secret  TEXT,
    pending_as_sent TEXT,
    pending_since   BIGINT
);

CREATE INDEX subscriptions_by_feed ON subscriptions (feed, expires_at);
CREATE INDEX subscriptions_by_host ON subscriptions (callback_host);
CREATE INDEX subscriptions_pending ON subscriptions (pending_since) WHERE pending_mode IS NOT NULL;
