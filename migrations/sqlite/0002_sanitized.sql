-- Whether a row's text was sanitized by feedcast when written. Only feedcast writes SQLite.
ALTER TABLE articles ADD COLUMN sanitized INTEGER NOT NULL DEFAULT 1;
