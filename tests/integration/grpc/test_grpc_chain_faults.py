#!/usr/bin/python3
"""The chain misbehaving (issue 6), through gRPC on a stack of the test's
own (it pauses a protocol, turns automine off and points coffer-apis of its
own at a proxy that fails or rewrites answers):

- breaker: coffer-api with two endpoints, the first failing (HTTP 503)
  after start-up: its breaker opens (coffer_evm_breaker_* metrics, the
  evm.breaker.open log), the second serves, and a deposit is credited,
  staked and settled as usual;
- a reverting protocol: the Aave supply of a staking batch estimates fine
  and reverts when mined (the test pool paused just before, setPaused):
  that leg is reverted, the others confirmed; idle keeps the failed leg's
  amount, the allocations are what landed, invariants clean; the next run
  stakes the rest;
- bad chain data: malformed JSON-RPC, a log of another contract, a
  Transfer of 2^256-1, a position above the token's total supply, a head
  going backwards, the wrong chain id: errors reported and logged, nothing
  credited or accrued, the cursor not moved; with honest answers again the
  pending deposit is credited once. CheckInvariants clean throughout."""
import json
import re
import secrets
import time
import unittest
import urllib.request

import chain_testlib as ct


class ChainFaultTest(ct.StackTest):
    stack_prefix = 'coffer-chain-faults-'

    def settle(self, api):
        self.stack.chain.mine(2)
        return api.job('receipts')

    def cursor(self):
        return int(self.stack.sql("SELECT block_number FROM chain_cursors WHERE name = 'deposit_watch'"))

    # -- breaker ------------------------------------------------------------------------

    def test_breaker_second_endpoint_serves(self):
        chain = self.stack.chain
        proxy = ct.Proxy(self.stack.env['COFFER_EVM_RPC'])
        self.addCleanup(proxy.close)
        s = self.stack.server([proxy.url, self.stack.env['COFFER_EVM_RPC']],
                              **{'evm.breaker_failures': '2', 'evm.breaker_cooldown': '120s',
                                 'metrics.listen': '127.0.0.1:0'})
        self.addCleanup(s.close)
        self.assertGreaterEqual(proxy.count('eth_chainId'), 1)  # checked at start-up
        proxy.rule = lambda method, req: ('status', 503)
        a = self.own_api(s)
        amount = 50 * 10 ** 6
        cid, key, wallet = a.register()
        vid = a.configure(key)
        cuid = a.user(key)
        d = a.crypto_deposit(key, cuid, amount)
        chain.mint(self.stack.usdc, wallet, amount)
        chain.mine(2)
        a.job('deposit_watch')
        self.assertEqual(a.deposit(key, d.order_id).status, ct.S.ORDER_STATUS_COMPLETED)
        r = a.job('staking', vid)
        self.assertEqual(r.items_done, 3, r.report)
        self.settle(a)
        v = a.vault(cid, vid)
        self.assertEqual((int(v.idle_assets), int(v.deployed_assets)), (0, amount))
        failed_calls = len(proxy.seen) - proxy.count('eth_chainId')
        self.assertLessEqual(failed_calls, 4, proxy.seen)  # open: no more requests to it
        label = 'http://127.0.0.1:%s' % proxy.url.rsplit(':', 1)[1]
        with urllib.request.urlopen(ct.metrics_url(s), timeout=10) as r:
            text = r.read().decode()
        m = re.search(r'coffer_evm_breaker_opened_total\{endpoint="%s"\} (\d+)' % re.escape(label), text)
        self.assertTrue(m and int(m.group(1)) >= 1, text[-3000:])
        self.assertRegex(text, r'coffer_evm_breaker_state\{endpoint="%s"\} 1' % re.escape(label))
        self.assertIn('evm.breaker.open', s.log_text())
        self.assert_clean(vid)

    # -- a reverting leg ------------------------------------------------------------------

    def test_reverting_protocol_leg(self):
        api, chain, st = self.api, self.stack.chain, self.stack
        amount = 300 * 10 ** 6
        cid, key, wallet, vid, _ = api.funded_vault(amount)
        chain.automine(False)
        self.addCleanup(chain.automine, True)
        r = api.job('staking', vid)
        self.assertEqual(r.items_done, 3, r.report)

        def supplies():
            out = st.sql("SELECT t.status, p.name, t.amount FROM chain_transactions t JOIN supported_protocols p "
                         "ON p.id = t.protocol_id WHERE t.client_id = '%s' AND t.kind = 'supply'" % cid)
            return [tuple(x.split('|')) for x in out.splitlines() if x]
        # approvals mined; the supplies estimated, signed and sent, not mined
        end = time.monotonic() + 30
        while time.monotonic() < end and not (len(supplies()) == 3 and all(s[0] == 'submitted' for s in supplies())):
            chain.mine()
            api.job('receipts')
        self.assertEqual(sorted(s[0] for s in supplies()), ['submitted'] * 3, supplies())
        # the pool pauses first in the block (a higher tip): the Aave supply reverts when mined
        chain.send(st.pool, '0x' + ct.SEL['setPaused'] + ct.word(1), wait=False, tip=5 * 10 ** 9)
        chain.mine()
        chain.automine(True)
        self.settle(api)
        got = {s[1]: s for s in supplies()}
        self.assertEqual(got['aave-test'][0], 'reverted', got)
        self.assertEqual((got['comet-test'][0], got['vault4626-test'][0]), ('confirmed', 'confirmed'), got)
        failed = int(got['aave-test'][2])
        v = api.vault(cid, vid)
        self.assertEqual((int(v.idle_assets), int(v.deployed_assets)), (failed, amount - failed))
        allocs = dict(x.split('|') for x in st.sql(
            "SELECT p.name, a.book_balance FROM protocol_allocations a JOIN supported_protocols p ON p.id = "
            "a.protocol_id WHERE a.vault_id = '%s'" % vid).splitlines())
        self.assertEqual(int(allocs.get('aave-test', '0')), 0)
        self.assertEqual(int(allocs['comet-test']) + int(allocs['vault4626-test']), amount - failed)
        self.assertEqual(chain.balance(st.atoken, wallet), 0)
        self.assert_clean(vid)
        # unpaused, the next run stakes what stayed idle
        chain.send(st.pool, '0x' + ct.SEL['setPaused'] + ct.word(0))
        r = api.job('staking', vid)
        self.assertGreaterEqual(r.items_done, 1, r.report)
        self.settle(api)
        v = api.vault(cid, vid)
        self.assertEqual((int(v.idle_assets), int(v.deployed_assets)), (0, amount))
        self.assert_clean(vid)

    # -- bad chain data ----------------------------------------------------------------------

    def test_bad_chain_data(self):
        api, chain, st = self.api, self.stack.chain, self.stack
        cid, key, wallet, vid, cuid = api.funded_vault(100 * 10 ** 6, lending=10000, staking=0)
        api.job('staking', vid)
        self.settle(api)
        before = api.vault(cid, vid)
        self.assertEqual(int(before.deployed_assets), 100 * 10 ** 6)
        small = 5 * 10 ** 6
        d = api.crypto_deposit(key, cuid, small)
        proxy = ct.Proxy(st.env['COFFER_EVM_RPC'])
        self.addCleanup(proxy.close)
        s = st.server([proxy.url])
        self.addCleanup(s.close)
        a = self.own_api(s)
        a.job('deposit_watch')  # the cursor at the head
        chain.mint(st.usdc, wallet, small)  # the real transfer for the order
        chain.mine(2)
        cursor = self.cursor()

        def unchanged(report):
            self.assertEqual(api.deposit(key, d.order_id).status, ct.S.ORDER_STATUS_INITIATED, report)
            self.assertEqual(self.cursor(), cursor, report)
            v = api.vault(cid, vid)
            self.assertEqual((v.idle_assets, v.deployed_assets, v.current_index, v.total_shares),
                             (before.idle_assets, before.deployed_assets, before.current_index, before.total_shares))
            self.assert_clean(vid)

        # 1. malformed JSON-RPC answers to eth_getLogs
        proxy.rule = lambda m, req: ('body', b'{"jsonrpc":"2.0","id":') if m == 'eth_getLogs' else None
        r = a.job('deposit_watch')
        self.assertGreaterEqual(r.items_failed, 1, r.report)
        self.assertIn('eth_getLogs', r.report)
        unchanged(r.report)
        proxy.rule = lambda m, req: None

        def inject(log_address, value):
            def rewrite(method, req, ans):
                if method == 'eth_getLogs' and 'result' in ans:
                    f = req['params'][0]
                    blk = chain.rpc('eth_getBlockByNumber', [f['fromBlock'], False])
                    ans['result'].append({
                        'address': log_address, 'topics': [ct.TRANSFER_TOPIC, '0x' + ct.addr_word(ct.FUNDER),
                                                           '0x' + ct.addr_word(wallet)],
                        'data': '0x' + ct.word(value), 'blockNumber': blk['number'], 'blockHash': blk['hash'],
                        'transactionHash': '0x' + secrets.token_hex(32), 'transactionIndex': '0x0',
                        'logIndex': '0x63', 'removed': False})
                return ans
            return rewrite

        # 2. a log of another contract with the order's exact amount
        proxy.rewrite = inject(st.comet, small)
        r = a.job('deposit_watch')
        self.assertIn('bad chain data', r.report)
        unchanged(r.report)
        # 3. a Transfer of 2^256-1 into the wallet
        proxy.rewrite = inject(st.usdc, 2 ** 256 - 1)
        r = a.job('deposit_watch')
        self.assertIn('above the token\'s total supply', r.report)
        unchanged(r.report)
        self.assertEqual(st.sql("SELECT count(*) FROM unmatched_transfers WHERE client_id = '%s'" % cid), '0')
        proxy.rewrite = None
        # 4. a position above the token's total supply
        big = '0x' + ct.word(10 ** 30)
        proxy.rule = lambda m, req: (('result', big) if m == 'eth_call' and req['params'][0]['to'].lower() == st.atoken
                                     and req['params'][0].get('data', req['params'][0].get('input', '')).startswith(
                                         '0x' + ct.SEL['balanceOf']) else None)
        r = a.job('accrual', vid)
        self.assertEqual(r.items_done, 0, r.report)
        self.assertIn('bad chain data', r.report)
        unchanged(r.report)
        # 5. the head going backwards
        proxy.rule = lambda m, req: ('result', hex(cursor - 5)) if m == 'eth_blockNumber' else None
        r = a.job('deposit_watch')
        self.assertIn('below the cursor', r.report)
        unchanged(r.report)
        proxy.rule = lambda m, req: None
        log = s.log_text()
        self.assertIn('deposit_watch.bad_chain_data', log)
        self.assertIn('accrual.bad_chain_data', log)
        # 6. the wrong chain: the endpoint is disabled at start-up, nothing is read from it
        proxy2 = ct.Proxy(st.env['COFFER_EVM_RPC'])
        self.addCleanup(proxy2.close)
        proxy2.rule = lambda m, req: ('result', '0x1') if m == 'eth_chainId' else None
        s2 = st.server([proxy2.url])
        self.addCleanup(s2.close)
        a2 = self.own_api(s2)
        r = a2.job('deposit_watch')
        self.assertGreaterEqual(r.items_failed, 1, r.report)
        self.assertIn('evm.chain.mismatch', s2.log_text())
        self.assertEqual(set(proxy2.seen), {'eth_chainId'})
        unchanged(r.report)
        # honest answers again: the order's transfer is credited, once
        for _ in range(2):
            a.job('deposit_watch')
        self.assertEqual(api.deposit(key, d.order_id).status, ct.S.ORDER_STATUS_COMPLETED)
        v = api.vault(cid, vid)
        self.assertEqual(int(v.idle_assets), int(before.idle_assets) + small)
        self.assert_clean(vid)


if __name__ == '__main__':
    unittest.main(verbosity=2)
