-- The credits the reprint rules ask for: the original author, title and publication time of a
-- reprint (beside source_name and source_url), and the portal's editor and short title of any
-- article. Times are microseconds since the epoch, as everywhere. Nullable without a default,
-- so adding them rewrites no row, and the CMS's INSERTs that do not name them still work.
ALTER TABLE articles
    ADD COLUMN source_author TEXT,
    ADD COLUMN source_title TEXT,
    ADD COLUMN source_published_at BIGINT,
    ADD COLUMN editor TEXT,
    ADD COLUMN short_title TEXT;
