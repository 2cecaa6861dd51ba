#!/usr/bin/python3
"""Two coffer-api replicas running every job concurrently (issue 6,
DESIGN.md §6), on a stack of the test's own: both schedulers on with short
intervals, the same database, anvil (mining a block a second besides each
transaction) and signer. Clients' crypto deposits are seen and credited,
staked by strategy, unstaked and paid out for withdrawals, while accrual
and receipts run beside them. Never a double execution:

- every deposit credited once (one deposit.completed audit row per order,
  idle + deployed = what arrived, less what was paid, plus accrued yield);
- every withdrawal paid once (the destination holds exactly its amount);
- per wallet, every mined transaction is a recorded intent, each intent has
  exactly one mined transaction, the nonces are contiguous;
- CheckInvariants clean."""
import secrets
import sys
import time
import unittest

import chain_testlib as ct

CLIENTS = 3
USERS = 2
INTERVALS = {'jobs.scheduler': 'true', 'jobs.staking.interval': '1500ms', 'jobs.accrual.interval': '2s',
             'jobs.withdrawals.interval': '1s', 'jobs.deposit_watch.interval': '500ms',
             'jobs.receipts.interval': '500ms'}


class ChainReplicasTest(ct.StackTest):
    stack_prefix = 'coffer-chain-replicas-'

    def wait(self, what, pred, timeout=60):
        start = time.monotonic()
        end = start + timeout
        while time.monotonic() < end:
            if pred():
                print('%s: %.1f s' % (what, time.monotonic() - start), file=sys.stderr)
                return
            time.sleep(0.5)
        self.fail('timed out waiting for ' + what)

    def test_two_replicas_never_double_execute(self):
        api, chain, st = self.api, self.stack.chain, self.stack
        clients = []
        for c in range(CLIENTS):
            cid, key, wallet = api.register()
            vid = api.configure(key)
            users = []
            for u in range(USERS):
                cuid = api.user(key)
                amount = (100 + 10 * c + u) * 10 ** 6
                d = api.crypto_deposit(key, cuid, amount)
                users.append((cuid, d.order_id, amount))
            clients.append({'cid': cid, 'key': key, 'wallet': wallet, 'vid': vid, 'users': users})
        chain.rpc('evm_setIntervalMining', [1])
        self.addCleanup(chain.rpc, 'evm_setIntervalMining', [0])
        replicas = [st.server(**INTERVALS) for _ in range(2)]
        for r in replicas:
            self.addCleanup(r.close)
        for c in clients:
            for _, _, amount in c['users']:
                chain.mint(st.usdc, c['wallet'], amount)

        def count(sql):
            return int(st.sql(sql))
        orders = ["'%s'" % o for c in clients for _, o, _ in c['users']]
        self.wait('deposits credited', lambda: count(
            "SELECT count(*) FROM deposits WHERE order_id IN (%s) AND status = 'COMPLETED'" % ','.join(orders))
            == len(orders))
        vids = ["'%s'" % c['vid'] for c in clients]
        self.wait('staking confirmed', lambda: count(
            "SELECT count(*) FROM client_vaults WHERE id IN (%s) AND deployed_assets > 0 AND idle_assets < 1000000"
            % ','.join(vids)) == len(vids))
        # withdrawals: half of each user's deposit, to fresh addresses
        wds = []
        for c in clients:
            for cuid, _, amount in c['users']:
                dest = '0x' + secrets.token_hex(20)
                w = api.withdraw(c['key'], cuid, amount // 2, dest)
                wds.append((c, w.order_id, amount // 2, dest))
        self.wait('withdrawals paid', lambda: all(
            api.withdrawal(c['key'], o).status == ct.S.ORDER_STATUS_COMPLETED for c, o, _, _ in wds), timeout=90)
        time.sleep(2)  # a few more rounds of every job on both replicas
        for r in replicas:
            self.assertEqual(r.terminate(), 0, r.log_text()[-3000:])
        chain.rpc('evm_setIntervalMining', [0])
        # whatever the replicas left in flight is settled (one receipts pass at the depth)
        for _ in range(10):
            if count("SELECT count(*) FROM chain_transactions WHERE settled_at IS NULL") == 0:
                break
            chain.mine(2)
            api.job('receipts')
        self.assertEqual(count("SELECT count(*) FROM chain_transactions WHERE settled_at IS NULL"), 0)

        for o in orders:
            self.assertEqual(count("SELECT count(*) FROM audit_log WHERE action = 'deposit.completed' AND entity_id = %s"
                                   % o), 1, o)
        for c, o, amount, dest in wds:
            self.assertEqual(chain.balance(st.usdc, dest), amount, o)
        for c in clients:
            wallet = c['wallet']
            rows = st.sql("SELECT intent_key, status, nonce, encode(tx_hash, 'hex') FROM chain_transactions "
                          "WHERE client_id = '%s' AND tx_hash IS NOT NULL" % c['cid'])
            rows = [x.split('|') for x in rows.splitlines() if x]
            by_hash = {h: (k.split('#r')[0], n) for k, _, n, h in rows}
            mined = chain.txs_from(wallet)
            self.assertEqual(sorted(n for n, _, _ in mined), list(range(len(mined))))
            per_intent = {}
            for nonce, h, _ in mined:
                self.assertIn(h[2:], by_hash, 'a mined transaction nobody recorded')
                key, n = by_hash[h[2:]]
                self.assertEqual(int(n), nonce)
                per_intent.setdefault(key, []).append(h)
            self.assertTrue(all(len(v) == 1 for v in per_intent.values()), per_intent)
            final = st.sql("SELECT DISTINCT split_part(intent_key, '#r', 1) FROM chain_transactions WHERE client_id = "
                           "'%s' AND status IN ('confirmed', 'reverted')" % c['cid']).splitlines()
            self.assertEqual(sorted(final), sorted(per_intent))
            v = api.vault(c['cid'], c['vid'])
            paid = sum(a for cc, _, a, _ in wds if cc is c)
            arrived = sum(a for _, _, a in c['users'])
            self.assertGreaterEqual(int(v.idle_assets) + int(v.deployed_assets), arrived - paid)
            self.assertLess(int(v.idle_assets) + int(v.deployed_assets), arrived - paid + 10 ** 6)  # + accrued yield
        logs = [r.log_text() for r in replicas]
        self.assertTrue(all('job_sched.start' in x for x in logs))
        self.assert_clean()


if __name__ == '__main__':
    unittest.main(verbosity=2)
