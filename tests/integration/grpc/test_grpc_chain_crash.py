#!/usr/bin/python3
"""Crash safety of the transaction lifecycle and reorgs in deposit_watch
(issue 6), with real processes on a stack of the test's own (it turns
anvil's automine off and rewinds its chain, which the shared stack's other
suites must not see):

(a) kill -9 of coffer-api after a transaction was signed and stored but
    before its broadcast reached the node: the node is reached through a
    proxy that holds eth_sendRawTransaction; restarted on the real node, the
    start-up receipts pass sends the stored bytes (same hash), the signer
    signs nothing new for that nonce, and each intent has exactly one
    transaction on chain; the books are right.
(b) kill -9 after the broadcast, before the receipt (automine off: the
    transaction stays pending); restarted and mined: one transaction per
    intent, books right.
(c) a Transfer seen (PROVIDER_CONFIRMING) then reorganised away below the
    confirmation depth goes back to INITIATED, the cursor rewinds, nothing
    is credited; the transfer made again is credited once at the depth.
CheckInvariants is clean after each."""
import threading
import time
import unittest

import chain_testlib as ct
import grpc_testlib as gt


class ChainCrashTest(ct.StackTest):
    stack_prefix = 'coffer-chain-crash-'

    # -- helpers ------------------------------------------------------------------

    def rows(self, client_id):
        out = self.stack.sql("SELECT intent_key, status, coalesce(nonce, -1), coalesce(encode(tx_hash, 'hex'), '') "
                             "FROM chain_transactions WHERE client_id = '%s' ORDER BY seq" % client_id)
        return [tuple(line.split('|')) for line in out.splitlines() if line]

    def wait_settled(self, client_id, n, timeout=60, mine=True):
        """Mines (when asked) until the client's n intents are all final."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rows = self.rows(client_id)
            if len(rows) >= n and all(r[1] in ('confirmed', 'reverted', 'failed', 'replaced') for r in rows):
                return rows
            if mine:
                self.stack.chain.mine()
            time.sleep(0.3)
        self.fail('not settled: %s' % self.rows(client_id))

    def sign_lines(self, wallet):
        return [x for x in self.stack.audit_lines()
                if x.get('op') == 'sign_transaction' and x.get('decision') == 'allow'
                and (x.get('key') or '').lower().replace('0x', '') == wallet[2:]]

    def assert_one_tx_per_intent(self, client_id, wallet):
        rows = self.rows(client_id)
        mined = self.stack.chain.txs_from(wallet)
        by_hash = {h[2:]: nonce for nonce, h, _ in mined}
        # nonces on chain contiguous from 0, as many as the wallet's intents
        self.assertEqual(sorted(n for n, _, _ in mined), list(range(len(mined))))
        roots = {}
        for key, status, nonce, h in rows:
            root = key.split('#r')[0]
            if h in by_hash:
                roots.setdefault(root, []).append(h)
                self.assertEqual(str(by_hash[h]), nonce)
        self.assertEqual(len(roots), len({r[0].split('#r')[0] for r in rows}), (rows, mined))
        self.assertTrue(all(len(v) == 1 for v in roots.values()), roots)
        self.assertEqual(len(mined), len(roots))
        return rows

    def assert_books(self, cid, vid, amount):
        v = self.api.vault(cid, vid)
        self.assertEqual((int(v.idle_assets), int(v.deployed_assets)), (0, amount))
        self.assert_clean(vid)

    # -- (a) signed, stored, not broadcast ------------------------------------------

    def test_a_kill_after_signing_before_broadcast(self):
        amount = 100 * 10 ** 6
        cid, key, wallet, vid, _ = self.api.funded_vault(amount, lending=10000, staking=0)
        proxy = ct.Proxy(self.stack.env['COFFER_EVM_RPC'])
        self.addCleanup(proxy.close)
        proxy.rule = lambda method, req: 'hang' if method == 'eth_sendRawTransaction' else None
        s1 = self.stack.server([proxy.url])
        self.addCleanup(s1.close)
        a1 = self.own_api(s1)
        signed_before = len(self.sign_lines(wallet))
        self.assertEqual(signed_before, 0)
        errors = []
        t = threading.Thread(target=lambda: self._expect_error(errors, a1.job, 'staking', vid), daemon=True)
        t.start()
        self.assertTrue(proxy.hung.wait(60), 'no eth_sendRawTransaction reached the proxy')
        # the first intent is signed and stored; its broadcast is on the way
        rows = self.rows(cid)
        signed = [r for r in rows if r[1] == 'signed']
        self.assertEqual(len(signed), 1, rows)
        self.assertEqual(signed[0][2], '0')
        stored_hash = signed[0][3]
        ct.kill9(s1)
        t.join(30)
        self.assertEqual(self.stack.chain.nonce(wallet, 'pending'), 0)  # the node never saw it
        sigs = self.sign_lines(wallet)
        self.assertEqual(len(sigs), 1, sigs)
        # restart on the real node: the start-up receipts pass sends the stored bytes
        s2 = self.stack.server(**{'jobs.scheduler': 'true', 'jobs.receipts.interval': '1s',
                                  'jobs.staking.interval': '0', 'jobs.accrual.interval': '0',
                                  'jobs.withdrawals.interval': '0', 'jobs.deposit_watch.interval': '0'})
        self.addCleanup(s2.close)
        rows = self.wait_settled(cid, len(rows))
        self.assertEqual(s2.terminate(), 0)
        self.assertTrue(all(r[1] == 'confirmed' for r in rows), rows)
        first = [r for r in rows if r[2] == '0']
        self.assertEqual(first[0][3], stored_hash)
        self.assertIn('0x' + stored_hash, [h for _, h, _ in self.stack.chain.txs_from(wallet)])
        # the signer signed nonce 0 once: nothing new after the crash
        sigs = self.sign_lines(wallet)
        self.assertEqual([x for x in sigs if str(x.get('nonce')) == '0'].__len__(), 1, sigs)
        self.assertEqual(len(sigs), len(rows))
        self.assert_one_tx_per_intent(cid, wallet)
        self.assert_books(cid, vid, amount)

    @staticmethod
    def _expect_error(errors, fn, *args):
        try:
            fn(*args)
        except gt.grpc.RpcError as e:
            errors.append(e.code())

    # -- (b) broadcast, not mined --------------------------------------------------------

    def test_b_kill_after_broadcast_before_receipt(self):
        amount = 100 * 10 ** 6
        cid, key, wallet, vid, _ = self.api.funded_vault(amount, lending=10000, staking=0)
        chain = self.stack.chain
        chain.automine(False)
        self.addCleanup(chain.automine, True)
        s1 = self.stack.server()
        self.addCleanup(s1.close)
        a1 = self.own_api(s1)
        r = a1.job('staking', vid)
        self.assertEqual(r.items_done, 2, r.report)
        rows = self.rows(cid)
        sent = [x for x in rows if x[1] == 'submitted']
        self.assertGreaterEqual(len(sent), 1, rows)
        self.assertEqual(chain.nonce(wallet, 'latest'), 0)
        self.assertEqual(chain.nonce(wallet, 'pending'), len(sent))  # in the node's pool, not mined
        ct.kill9(s1)
        s2 = self.stack.server()
        self.addCleanup(s2.close)
        a2 = self.own_api(s2)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            chain.mine()
            a2.job('receipts')
            rows = self.rows(cid)
            if len(rows) == 4 and all(x[1] in ('confirmed', 'reverted', 'failed', 'replaced') for x in rows):
                break
        self.assertTrue(all(x[1] == 'confirmed' for x in rows), rows)
        self.assertEqual(s2.terminate(), 0)
        self.assertEqual(len(self.sign_lines(wallet)), 4)  # one signature per intent
        self.assert_one_tx_per_intent(cid, wallet)
        self.assert_books(cid, vid, amount)

    # -- (c) a reorg below the confirmation depth ------------------------------------------

    def test_c_reorg_below_depth(self):
        api, chain = self.api, self.stack.chain
        cid, key, wallet = api.register()
        vid = api.configure(key)
        cuid = api.user(key)
        amount = 42 * 10 ** 6
        d = api.crypto_deposit(key, cuid, amount)
        api.job('deposit_watch')  # the cursor at the head
        snap = chain.rpc('evm_snapshot')
        chain.mint(self.stack.usdc, wallet, amount)
        block = chain.head()
        r = api.job('deposit_watch')
        self.assertEqual(api.deposit(key, d.order_id).status, ct.S.ORDER_STATUS_PROVIDER_CONFIRMING, r.report)
        cursor = int(self.stack.sql("SELECT block_number FROM chain_cursors WHERE name = 'deposit_watch'"))
        self.assertEqual(cursor, block)
        # the block with the transfer is reorganised away (depth 1 < evm.confirmations 2)
        self.assertTrue(chain.rpc('evm_revert', [snap]))
        chain.mine(3)
        self.assertEqual(chain.balance(self.stack.usdc, wallet), 0)
        r = api.job('deposit_watch')
        self.assertIn('reorg', r.report)
        got = api.deposit(key, d.order_id)
        self.assertEqual(got.status, ct.S.ORDER_STATUS_INITIATED, r.report)
        rewound = int(self.stack.sql("SELECT count(*) FROM audit_log WHERE action = 'chain.reorg'"))
        self.assertGreaterEqual(rewound, 1)
        v = api.vault(cid, vid)
        self.assertEqual(int(v.idle_assets), 0)
        self.assert_clean(vid)
        # the transfer again, at the depth: credited once
        chain.mint(self.stack.usdc, wallet, amount)
        chain.mine(2)
        for _ in range(3):
            api.job('deposit_watch')
        got = api.deposit(key, d.order_id)
        self.assertEqual(got.status, ct.S.ORDER_STATUS_COMPLETED)
        self.assertEqual(int(api.vault(cid, vid).idle_assets), amount)
        n = self.stack.sql("SELECT count(*) FROM deposits WHERE id IN (SELECT id FROM deposits WHERE client_id = '%s') "
                           "AND status = 'COMPLETED'" % cid)
        self.assertEqual(n, '1')
        self.assert_clean(vid)


if __name__ == '__main__':
    unittest.main(verbosity=2)
