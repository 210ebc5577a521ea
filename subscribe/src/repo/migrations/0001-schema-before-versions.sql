-- Migration 1: the schema as `subscribe store` created it before versions were recorded (commit 3fd2ab7,
-- subscribe/src/db.rs `Db::migrate`), to the letter but for `{serial_key}`, which stood for
-- "INTEGER PRIMARY KEY AUTOINCREMENT" on SQLite and "BIGSERIAL PRIMARY KEY" on PostgreSQL. `IF NOT EXISTS`
-- throughout: on a database made before versions it changes nothing. Shipped: never edit, add a migration.
CREATE TABLE IF NOT EXISTS frames (
                camera TEXT NOT NULL, seq BIGINT NOT NULL, model TEXT NOT NULL,
                capture_ms BIGINT NOT NULL, detected_ms BIGINT NOT NULL, stored_ms BIGINT NOT NULL,
                width BIGINT NOT NULL, height BIGINT NOT NULL, inference_ms DOUBLE PRECISION NOT NULL,
                source_partition BIGINT NOT NULL, source_offset BIGINT NOT NULL, box_count BIGINT NOT NULL,
                snapshot TEXT,
                PRIMARY KEY (camera, seq, model));
            CREATE INDEX IF NOT EXISTS frames_by_time ON frames (capture_ms);
            CREATE TABLE IF NOT EXISTS boxes (
                camera TEXT NOT NULL, seq BIGINT NOT NULL, model TEXT NOT NULL, idx BIGINT NOT NULL,
                label TEXT NOT NULL, class_id BIGINT NOT NULL, score DOUBLE PRECISION NOT NULL,
                x1 DOUBLE PRECISION NOT NULL, y1 DOUBLE PRECISION NOT NULL,
                x2 DOUBLE PRECISION NOT NULL, y2 DOUBLE PRECISION NOT NULL,
                capture_ms BIGINT NOT NULL,
                PRIMARY KEY (camera, seq, model, idx));
            CREATE INDEX IF NOT EXISTS boxes_by_label ON boxes (label, capture_ms);
            CREATE TABLE IF NOT EXISTS events (
                id TEXT PRIMARY KEY, scope TEXT NOT NULL, camera TEXT NOT NULL, model TEXT NOT NULL,
                label TEXT NOT NULL, start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
                start_seq BIGINT NOT NULL, end_seq BIGINT NOT NULL, frames BIGINT NOT NULL,
                peak_score DOUBLE PRECISION NOT NULL, peak_seq BIGINT NOT NULL,
                best_snapshot TEXT, best_score DOUBLE PRECISION NOT NULL,
                open BIGINT NOT NULL, alerted BIGINT NOT NULL,
                x1 DOUBLE PRECISION NOT NULL, y1 DOUBLE PRECISION NOT NULL,
                x2 DOUBLE PRECISION NOT NULL, y2 DOUBLE PRECISION NOT NULL);
            CREATE INDEX IF NOT EXISTS events_by_time ON events (scope, start_ms);
            CREATE INDEX IF NOT EXISTS events_open ON events (open);
            CREATE TABLE IF NOT EXISTS alerts (
                id TEXT PRIMARY KEY, rule TEXT NOT NULL, camera TEXT NOT NULL, model TEXT NOT NULL,
                label TEXT NOT NULL, score DOUBLE PRECISION NOT NULL, seq BIGINT NOT NULL,
                capture_ms BIGINT NOT NULL, started_ms BIGINT NOT NULL, duration_ms BIGINT NOT NULL,
                created_ms BIGINT NOT NULL, payload TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS cursors (
                scope TEXT NOT NULL, camera TEXT NOT NULL, model TEXT NOT NULL, last_seq BIGINT NOT NULL,
                PRIMARY KEY (scope, camera, model));
            CREATE TABLE IF NOT EXISTS outbox (
                id {serial_key}, kind TEXT NOT NULL, target TEXT NOT NULL, msg_key TEXT NOT NULL,
                payload TEXT NOT NULL, attempts BIGINT NOT NULL, created_ms BIGINT NOT NULL);
