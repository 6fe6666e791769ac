-- When what each feed shows last changed, in microseconds since the epoch: a feed's and an
-- archive month's Last-Modified (and Atom `updated`, RSS `lastBuildDate`). One row per bucket
-- and UTC month of publication (yyyymm; 0 stands for the bucket as a whole, its newest items),
-- moved forward by every write that files, unfiles or edits an article there. The bucket '*'
-- holds when everything last changed (a refile; this upgrade, since nothing before it was kept).
CREATE TABLE change_times (
    bucket     TEXT NOT NULL,
    month      INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (bucket, month)
) WITHOUT ROWID;

INSERT INTO change_times (bucket, month, changed_at)
VALUES ('*', 0, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
