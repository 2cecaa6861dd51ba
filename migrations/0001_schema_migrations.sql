-- 0001: the migration ledger itself.
-- coffer-api migrate runs each file in its own transaction and records it
-- here in that same transaction, with the SHA-256 of the file's bytes; a
-- later run refuses to start when a recorded file has changed.
CREATE TABLE schema_migrations (
    version     integer     PRIMARY KEY CHECK (version > 0),
    name        text        NOT NULL UNIQUE CHECK (name ~ '^[0-9]{4}_[a-z0-9_]+$'),
    checksum    text        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    applied_at  timestamptz NOT NULL DEFAULT now(),
    applied_by  text        NOT NULL DEFAULT current_user,
    duration_ms integer     NOT NULL DEFAULT 0 CHECK (duration_ms >= 0)
);

COMMENT ON TABLE schema_migrations IS
    'Applied migrations; written only by coffer-api migrate. Never edit a landed migration file.';
