-- Whether a row's text was sanitized by feedcast when written. Rows that other programs write
-- (the CMS, in SQL) are sanitized when read instead. feedcast marks its own writes with the
-- transaction-local setting feedcast.writer; any other write clears the flag.
ALTER TABLE articles ADD COLUMN sanitized BOOLEAN NOT NULL DEFAULT false;

CREATE FUNCTION feedcast_mark_writer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.sanitized := coalesce(current_setting('feedcast.writer', true), '') = 'feedcast';
    RETURN NEW;
END
$$;

CREATE TRIGGER feedcast_mark_writer
BEFORE INSERT OR UPDATE ON articles
FOR EACH ROW EXECUTE FUNCTION feedcast_mark_writer();
