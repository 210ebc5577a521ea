-- Migration 2: the web view's review pages. Events are paged newest first by (start_ms, id), a keyset that
-- stays fast however deep the page, so each filter a page starts from has an index in that order: all
-- events, one camera's, one label's; and the labels themselves are read from the label index, one seek each.
-- Shipped: never edit, add a migration.
CREATE INDEX IF NOT EXISTS events_by_time_id ON events (scope, start_ms, id);
CREATE INDEX IF NOT EXISTS events_by_camera ON events (scope, camera, start_ms, id);
CREATE INDEX IF NOT EXISTS events_by_label ON events (scope, label, start_ms, id);
-- A camera's newest snapshot, found without walking the frames since (a quiet night has none).
CREATE INDEX IF NOT EXISTS frames_with_snapshot ON frames (camera, seq) WHERE snapshot IS NOT NULL;
