-- The credits the reprint rules ask for: the original author, title and publication time of a
-- reprint (beside source_name and source_url), and the portal's editor and short title of any
-- article. Times are microseconds since the epoch, as everywhere.
ALTER TABLE articles ADD COLUMN source_author TEXT;
ALTER TABLE articles ADD COLUMN source_title TEXT;
ALTER TABLE articles ADD COLUMN source_published_at INTEGER;
ALTER TABLE articles ADD COLUMN editor TEXT;
ALTER TABLE articles ADD COLUMN short_title TEXT;
