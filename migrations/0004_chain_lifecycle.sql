-- 0004: the transaction lifecycle, the vault jobs and deposit watching
-- (issue 6; docs/chain.md "Transaction lifecycle", docs/ledger.md).
--
-- chain_transactions: a row is created for an intent before anything is
-- signed; its nonce, gas limit and fees are fixed together ("prepared",
-- still status created) under the wallet_nonces row lock, so the nonce
-- stays NULL until then (a row that fails before it was ever signed keeps
-- no nonce: nothing was signed for it and the nonce goes to the next
-- intent). seq orders a wallet's intents. vault_id, withdrawal_id and
-- amount tell the receipts job which books move when the transaction is
-- final; settled_at says they did (once).

ALTER TABLE chain_transactions ALTER COLUMN nonce DROP NOT NULL;

ALTER TABLE chain_transactions
    ADD COLUMN seq                 bigint        GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN vault_id            uuid,
    ADD COLUMN withdrawal_id       uuid,
    ADD COLUMN amount              numeric(78,0) CHECK (amount >= 0),
    ADD COLUMN gas_used            numeric(78,0) CHECK (gas_used >= 0),
    ADD COLUMN effective_gas_price numeric(78,0) CHECK (effective_gas_price >= 0),
    ADD COLUMN block_hash          bytea         CHECK (octet_length(block_hash) = 32),
    ADD COLUMN broadcasts          integer       NOT NULL DEFAULT 0 CHECK (broadcasts >= 0),
    ADD COLUMN last_broadcast_at   timestamptz,
    ADD COLUMN settled_at          timestamptz,
    ADD CONSTRAINT chain_transactions_nonce_states
        CHECK (nonce IS NOT NULL OR (status IN ('created', 'failed') AND raw_tx IS NULL)),
    ADD CONSTRAINT chain_transactions_settled_states
        CHECK (settled_at IS NULL OR status IN ('confirmed', 'reverted', 'failed', 'replaced'));

CREATE INDEX chain_transactions_open_idx ON chain_transactions (chain_id, wallet_address, seq)
    WHERE status IN ('created', 'signed', 'submitted');
CREATE INDEX chain_transactions_vault_idx ON chain_transactions (vault_id, kind) WHERE vault_id IS NOT NULL;

COMMENT ON COLUMN chain_transactions.nonce IS
    'Set when the transaction is prepared (nonce, gas and fees fixed under the wallet_nonces lock); NULL only for a created row not yet prepared, or one that failed before it was signed.';
COMMENT ON COLUMN chain_transactions.seq IS 'Creation order: a wallet''s intents are prepared in seq order.';
COMMENT ON COLUMN chain_transactions.vault_id IS 'The vault whose books move when this transaction is final (staking, unstaking), NULL for direct treasury execution.';
COMMENT ON COLUMN chain_transactions.withdrawal_id IS 'The withdrawal this transaction pays out (ERC-20 transfer).';
COMMENT ON COLUMN chain_transactions.amount IS 'Token base units the transaction moves (approve: the allowance).';
COMMENT ON COLUMN chain_transactions.settled_at IS 'When the books were moved (or left) for the final outcome; exactly once per intent.';

-- A reorg below the confirmation depth takes a seen transfer back.
INSERT INTO state_transitions (entity, from_state, to_state) VALUES
    ('deposit_crypto', 'PROVIDER_CONFIRMING', 'INITIATED');

ALTER TABLE deposits
    ADD COLUMN block_number bigint CHECK (block_number >= 0),
    ADD COLUMN block_hash   bytea  CHECK (octet_length(block_hash) = 32);

COMMENT ON COLUMN deposits.block_number IS 'Block of the matched Transfer log (deposit_watch); credited at the confirmation depth.';

-- ---------------------------------------------------------------------------
-- deposit_watch: a cursor per chain and the transfers nobody asked for
-- ---------------------------------------------------------------------------

CREATE TABLE chain_cursors (
    name         text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,63}$'),
    chain_id     bigint      NOT NULL CHECK (chain_id > 0),
    block_number bigint      NOT NULL CHECK (block_number >= 0),
    block_hash   bytea       NOT NULL CHECK (octet_length(block_hash) = 32),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, chain_id)
);

COMMENT ON TABLE chain_cursors IS
    'Platform table: the last block a chain watcher (deposit_watch) has scanned, with its hash (a reorg is detected by the next block''s parent hash).';

CREATE TABLE unmatched_transfers (
    id             uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id      uuid          NOT NULL REFERENCES client_organizations (id),
    chain_id       bigint        NOT NULL CHECK (chain_id > 0),
    token_address  bytea         NOT NULL CHECK (octet_length(token_address) = 20),
    from_address   bytea         NOT NULL CHECK (octet_length(from_address) = 20),
    wallet_address bytea         NOT NULL CHECK (octet_length(wallet_address) = 20),
    amount         numeric(78,0) NOT NULL CHECK (amount >= 0),
    tx_hash        bytea         NOT NULL CHECK (octet_length(tx_hash) = 32),
    log_index      integer       NOT NULL CHECK (log_index >= 0),
    block_number   bigint        NOT NULL CHECK (block_number >= 0),
    block_hash     bytea         NOT NULL CHECK (octet_length(block_hash) = 32),
    status         text          NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'orphaned')),
    note           text          CHECK (char_length(note) <= 1000),
    created_at     timestamptz   NOT NULL DEFAULT now(),
    updated_at     timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (chain_id, tx_hash, log_index)
);

CREATE INDEX unmatched_transfers_client_idx ON unmatched_transfers (client_id, created_at);
CREATE INDEX unmatched_transfers_open_idx ON unmatched_transfers (status) WHERE status = 'open';

COMMENT ON TABLE unmatched_transfers IS
    'Token transfers into a custodial wallet that matched no pending crypto deposit: kept for an operator (never lost); orphaned when a reorg removed them.';

CREATE TRIGGER unmatched_transfers_touch BEFORE UPDATE ON unmatched_transfers
    FOR EACH ROW EXECUTE FUNCTION coffer_touch_updated_at();

GRANT SELECT, INSERT, UPDATE ON chain_cursors, unmatched_transfers TO coffer_app;

ALTER TABLE unmatched_transfers ENABLE ROW LEVEL SECURITY;
ALTER TABLE unmatched_transfers FORCE ROW LEVEL SECURITY;
CREATE POLICY client_isolation ON unmatched_transfers
    USING (coffer_platform_scope() OR client_id = coffer_current_client())
    WITH CHECK (coffer_platform_scope() OR client_id = coffer_current_client());

ALTER TABLE chain_cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE chain_cursors FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_only ON chain_cursors
    USING (coffer_platform_scope()) WITH CHECK (coffer_platform_scope());

-- ---------------------------------------------------------------------------
-- Direct treasury positions (TreasuryService.Execute*): the client's own
-- money in a protocol, beside its vault's allocation in the same protocol
-- from the same wallet. Accrual splits the on-chain position between the
-- two in proportion to their book balances.
-- ---------------------------------------------------------------------------

CREATE TABLE treasury_positions (
    client_id    uuid          NOT NULL REFERENCES client_organizations (id),
    protocol_id  uuid          NOT NULL REFERENCES supported_protocols (id),
    book_balance numeric(78,0) NOT NULL DEFAULT 0 CHECK (book_balance >= 0),
    updated_at   timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, protocol_id)
);

COMMENT ON TABLE treasury_positions IS
    'Base units a client deployed directly (ExecuteDeposit, less ExecuteWithdrawal) per protocol, plus their share of accrued yield; kept apart from vault allocations.';

CREATE TRIGGER treasury_positions_touch BEFORE UPDATE ON treasury_positions
    FOR EACH ROW EXECUTE FUNCTION coffer_touch_updated_at();

GRANT SELECT, INSERT, UPDATE ON treasury_positions TO coffer_app;

ALTER TABLE treasury_positions ENABLE ROW LEVEL SECURITY;
ALTER TABLE treasury_positions FORCE ROW LEVEL SECURITY;
CREATE POLICY client_isolation ON treasury_positions
    USING (coffer_platform_scope() OR client_id = coffer_current_client())
    WITH CHECK (coffer_platform_scope() OR client_id = coffer_current_client());
