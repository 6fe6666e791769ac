-- What the change-time triggers cost a bulk write on PostgreSQL: the same 20,000-article INSERT
-- without them (migrations 1-3) and with them (migration 4), then an UPDATE and a DELETE of
-- 20,000 rows. In a scratch schema, dropped at the end. From the repository's root:
--   psql -h 127.0.0.1 -U postgres -d test -q -f bench/postgres-change-times.sql
DROP SCHEMA IF EXISTS trigbench CASCADE; CREATE SCHEMA trigbench; SET search_path = trigbench;
\i migrations/postgres/0001_articles.sql
\i migrations/postgres/0002_file_in_database.sql
\i migrations/postgres/0003_sanitized.sql
INSERT INTO regions VALUES ('320000', NULL), ('320200', '320000'), ('320281', '320200');
\timing on
-- without change times (0003's trigger)
INSERT INTO articles (id, title, summary, content_html, url, published_at, categories, region, language)
SELECT 'a' || g, 't', 's', '<p>x</p>', 'https://e.x/' || g, 1700000000000000 + g::bigint * 1000000, 'hydrogen parks', '320281', 'zh-CN' FROM generate_series(1, 20000) g;
\i migrations/postgres/0004_change_times.sql
-- with change times (0004's trigger)
INSERT INTO articles (id, title, summary, content_html, url, published_at, categories, region, language)
SELECT 'b' || g, 't', 's', '<p>x</p>', 'https://e.x/' || g, 1700000000000000 + g::bigint * 1000000, 'hydrogen parks', '320281', 'zh-CN' FROM generate_series(1, 20000) g;
SELECT count(*) FROM change_times;
SELECT max(changed_at) AS before_update FROM change_times WHERE bucket = 'c:hydrogen' AND month = 0;
UPDATE articles SET title = 'u' WHERE id LIKE 'b%';
SELECT max(changed_at) AS after_update FROM change_times WHERE bucket = 'c:hydrogen' AND month = 0;
DELETE FROM articles WHERE id LIKE 'a%';
SELECT max(changed_at) AS after_delete FROM change_times WHERE bucket = 'r:320000' AND month = 0;
DROP SCHEMA trigbench CASCADE;
