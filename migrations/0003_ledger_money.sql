-- 0003: what the money services (deposits, withdrawals, operations) need
-- beyond 0002.
--
-- index_history.realized_loss marks the rows written by an audited
-- RealizeLoss: the only rows whose index may be below the row before
-- (DESIGN.md §2 invariant 3; OperationsService.CheckInvariants reads it).
-- withdrawals.payout_reference keeps what the operator's
-- CompleteWithdrawal gave: a transaction hash for crypto payouts (also in
-- payout_tx_hash) or the bank's reference for bank payouts.

ALTER TABLE index_history
    ADD COLUMN realized_loss boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN index_history.realized_loss IS
    'True for the row an audited RealizeLoss wrote: the index may fall only there (invariant 3).';

ALTER TABLE withdrawals
    ADD COLUMN payout_reference text CHECK (char_length(payout_reference) BETWEEN 1 AND 200);

COMMENT ON COLUMN withdrawals.payout_reference IS
    'The payout''s reference from CompleteWithdrawal: 0x transaction hash (crypto_address) or the bank''s reference (bank_account).';
