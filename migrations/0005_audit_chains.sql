-- 0005: the audit log as one hash chain per client (docs/ledger.md "Audit
-- log hash chains").
--
-- Until now every audit row was appended to one chain under one advisory
-- lock held from the insert to COMMIT, so every audited write in the
-- cluster (every money operation) serialized there. From this migration
-- on, each client's rows form a chain of their own, and the platform's
-- rows (client_id NULL) one more; an append takes only its chain's lock.
--
-- The rows written before this migration are immutable and stay as they
-- are: they form the "legacy" chain (chain_seq NULL), verified exactly as
-- before (migration 0002's formula), and frozen here: audit_log_boundary
-- records its last id, row count and head hash. Every new chain starts from
-- a genesis hash that commits to that head, so the legacy chain cannot be
-- cut or rewritten without breaking the first row of every new chain (and
-- the recorded boundary).
--
-- New rows (chain_seq NOT NULL):
--   chain      = client_id (NULL: the platform chain)
--   chain_seq  = 1, 2, 3, ... within the chain (unique per chain)
--   prev_hash  = hash of the chain's row chain_seq - 1, or for chain_seq 1
--                audit_log_genesis(client_id) =
--                sha256('coffer.audit_log.v2' \n label \n hex(legacy head))
--                where label is the client id text or 'platform'
--   hash       = sha256(prev_hash || convert_to(audit_log_canonical_v2(...), 'UTF8'))
--   canonical  = 'v2' \n chain_seq \n id \n at_us \n actor \n client_id ('' when NULL)
--                \n action \n entity_type \n entity_id \n details::text
-- Within a chain, chain_seq, id and at increase together (all three are
-- assigned under the chain's lock); ids of different chains interleave.
-- The client id is hashed, so a row moved to another chain no longer
-- verifies, and both chains show a gap or a broken link where it was.

-- ALTER TABLE takes ACCESS EXCLUSIVE: no append runs while the boundary is
-- read, and none is lost between the old trigger and the new one.
ALTER TABLE audit_log
    ADD COLUMN chain_seq bigint CONSTRAINT audit_log_chain_seq_positive CHECK (chain_seq >= 1);

COMMENT ON COLUMN audit_log.chain_seq IS
    'Position of the row in its chain (the client''s, or the platform''s when client_id is NULL): 1, 2, 3, ... NULL for the rows written before migration 0005 (the legacy single chain).';

CREATE UNIQUE INDEX audit_log_chain_pos ON audit_log (client_id, chain_seq) NULLS NOT DISTINCT
    WHERE chain_seq IS NOT NULL;

CREATE TABLE audit_log_boundary (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    v1_last_id  bigint      NOT NULL CHECK (v1_last_id >= 0),
    v1_rows     bigint      NOT NULL CHECK (v1_rows >= 0),
    v1_head     bytea       NOT NULL CHECK (octet_length(v1_head) = 32),
    sealed_at   timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE audit_log_boundary IS
    'Where the legacy single audit chain ends (written once by migration 0005): its last id (0 when empty), row count and head hash (32 zero bytes when empty). Every per-client chain''s genesis hash commits to v1_head. Never changed.';

INSERT INTO audit_log_boundary (v1_last_id, v1_rows, v1_head)
SELECT coalesce(max(id), 0), count(*),
       coalesce((SELECT a.hash FROM audit_log a ORDER BY a.id DESC LIMIT 1),
                '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
  FROM audit_log;

-- Platform data, readable in any scope (the chain trigger and
-- VerifyAuditChain read it); the application has SELECT only.
ALTER TABLE audit_log_boundary ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log_boundary FORCE ROW LEVEL SECURITY;
CREATE POLICY read_all ON audit_log_boundary FOR SELECT USING (true);

CREATE FUNCTION audit_log_boundary_refuse() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
        MESSAGE = format('audit_log_boundary is written once by migration 0005: %s refused', TG_OP);
END
$$;

CREATE TRIGGER audit_log_boundary_no_change BEFORE INSERT OR UPDATE OR DELETE ON audit_log_boundary
    FOR EACH ROW EXECUTE FUNCTION audit_log_boundary_refuse();
CREATE TRIGGER audit_log_boundary_no_truncate BEFORE TRUNCATE ON audit_log_boundary
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_boundary_refuse();
ALTER TABLE audit_log_boundary ENABLE ALWAYS TRIGGER audit_log_boundary_no_change;
ALTER TABLE audit_log_boundary ENABLE ALWAYS TRIGGER audit_log_boundary_no_truncate;

-- The text hashed for a row of a per-client chain.
CREATE FUNCTION audit_log_canonical_v2(p_chain_seq bigint, p_id bigint, p_at timestamptz, p_actor text,
                                       p_client_id uuid, p_action text, p_entity_type text, p_entity_id text,
                                       p_details jsonb)
    RETURNS text
    LANGUAGE sql STABLE
    AS $$
    SELECT 'v2' || E'\n'
        || p_chain_seq::text || E'\n'
        || p_id::text || E'\n'
        || (extract(epoch FROM p_at) * 1000000)::bigint::text || E'\n'
        || p_actor || E'\n'
        || coalesce(p_client_id::text, '') || E'\n'
        || p_action || E'\n'
        || p_entity_type || E'\n'
        || p_entity_id || E'\n'
        || p_details::text
$$;

COMMENT ON FUNCTION audit_log_canonical_v2(bigint, bigint, timestamptz, text, uuid, text, text, text, jsonb) IS
    'Canonical text of a per-client chain row: ''v2'', chain_seq, id, epoch microseconds of at, actor, client_id (or empty), action, entity_type, entity_id, details::text, joined by newlines.';

-- prev_hash of a chain's first row.
CREATE FUNCTION audit_log_genesis(p_client_id uuid) RETURNS bytea
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT sha256(convert_to('coffer.audit_log.v2' || E'\n' || coalesce(p_client_id::text, 'platform') || E'\n'
                             || encode(b.v1_head, 'hex'), 'UTF8'))
      FROM public.audit_log_boundary b
$$;

COMMENT ON FUNCTION audit_log_genesis(uuid) IS
    'prev_hash of a chain''s first row: sha256(''coffer.audit_log.v2'' \n (client id or ''platform'') \n hex of the legacy head).';

-- The advisory lock an append to the chain of p_client_id holds until its
-- transaction ends (pg_locks shows it as classid/objid: the high and low
-- halves of this bigint). Schema-qualified and without SET, so that the
-- planner inlines it.
CREATE FUNCTION audit_log_chain_lock_key(p_client_id uuid) RETURNS bigint
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT pg_catalog.hashtextextended('coffer.audit_log:' || coalesce(p_client_id::text, 'platform'), 0)
$$;

-- Appends to one chain are serialized by that chain's lock, so the row's
-- predecessor is the chain's row with the highest chain_seq, read after the
-- lock is taken. That read needs a fresh snapshot, which only READ
-- COMMITTED gives: at a higher isolation level the head could be stale, so
-- the append is refused (the unique index audit_log_chain_pos would refuse a
-- fork anyway). Reads the head in platform scope (this function only).
CREATE OR REPLACE FUNCTION audit_log_chain() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET coffer.scope = 'platform'
    AS $$
DECLARE
    prev bytea;
    seq bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = 'audit_log appends run in READ COMMITTED transactions (the chain head is read after its lock)';
    END IF;
    PERFORM pg_advisory_xact_lock(public.audit_log_chain_lock_key(NEW.client_id));
    IF NEW.client_id IS NULL THEN
        SELECT a.hash, a.chain_seq INTO prev, seq FROM public.audit_log a
         WHERE a.client_id IS NULL AND a.chain_seq IS NOT NULL
         ORDER BY a.chain_seq DESC LIMIT 1;
    ELSE
        SELECT a.hash, a.chain_seq INTO prev, seq FROM public.audit_log a
         WHERE a.client_id = NEW.client_id AND a.chain_seq IS NOT NULL
         ORDER BY a.chain_seq DESC LIMIT 1;
    END IF;
    IF seq IS NULL THEN
        prev := public.audit_log_genesis(NEW.client_id);
        seq := 0;
    END IF;
    NEW.chain_seq := seq + 1;
    NEW.id := nextval('public.audit_log_id_seq');
    NEW.at := clock_timestamp();
    NEW.prev_hash := prev;
    NEW.hash := sha256(NEW.prev_hash || convert_to(
        public.audit_log_canonical_v2(NEW.chain_seq, NEW.id, NEW.at, NEW.actor, NEW.client_id, NEW.action,
                                      NEW.entity_type, NEW.entity_id, NEW.details), 'UTF8'));
    RETURN NEW;
END
$$;

COMMENT ON TABLE audit_log IS
    'Append-only, hash-chained audit log: one chain per client (client_id) and one for the platform (client_id NULL) since migration 0005; rows written before it form the legacy single chain (chain_seq NULL, migration 0002''s formula) that audit_log_boundary closes. The insert trigger assigns chain_seq, id (audit_log_id_seq), at (clock_timestamp()), prev_hash and hash under pg_advisory_xact_lock(audit_log_chain_lock_key(client_id)). hash = sha256(prev_hash || convert_to(audit_log_canonical_v2(...), ''UTF8'')); a chain''s first prev_hash is audit_log_genesis(client_id). UPDATE, DELETE and TRUNCATE are refused.';
COMMENT ON COLUMN audit_log.hash IS
    'Per-client chain rows: sha256(prev_hash || convert_to(''v2'' || E''\n'' || chain_seq::text || E''\n'' || id::text || E''\n'' || (extract(epoch from at)*1000000)::bigint::text || E''\n'' || actor || E''\n'' || coalesce(client_id::text, '''') || E''\n'' || action || E''\n'' || entity_type || E''\n'' || entity_id || E''\n'' || details::text, ''UTF8'')). Legacy rows (chain_seq NULL): the same without the first two fields.';

-- Pipelined writes (api-server/ledger_db.h, ledger_defer) check the rows a
-- statement changed here, in the transaction, so that a mismatch aborts it
-- before its COMMIT (which follows in the same pipeline).
CREATE FUNCTION coffer_expect_rows(p_rows bigint, p_expect bigint, p_what text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF p_rows IS DISTINCT FROM p_expect THEN
        RAISE EXCEPTION USING ERRCODE = 'data_corrupted',
            MESSAGE = format('%s: %s rows changed, expected %s', p_what, p_rows, p_expect);
    END IF;
    RETURN p_rows;
END
$$;

REVOKE EXECUTE ON FUNCTION
    audit_log_canonical_v2(bigint, bigint, timestamptz, text, uuid, text, text, text, jsonb),
    audit_log_genesis(uuid), audit_log_chain_lock_key(uuid), coffer_expect_rows(bigint, bigint, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    audit_log_canonical_v2(bigint, bigint, timestamptz, text, uuid, text, text, text, jsonb),
    audit_log_genesis(uuid), audit_log_chain_lock_key(uuid), coffer_expect_rows(bigint, bigint, text)
    TO coffer_app;
GRANT SELECT ON audit_log_boundary TO coffer_app;
