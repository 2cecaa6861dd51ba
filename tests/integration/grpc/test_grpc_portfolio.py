#!/usr/bin/python3
"""Portfolio and APY (issue 5, item 7), through grpcio against the stack's
coffer-api: per-vault positions and the totals across a client's vaults
of different decimals (18-decimal units, stablecoins at par), and APY 7d /
30d from index history (rows dated back as the database superuser, since
a test cannot wait a week). Expected figures are computed here."""
import unittest

import grpc_testlib as gt  # noqa: F401  (sets up the stubs' path)
import test_grpc_ledger_money as lm
from test_grpc_ledger_money import call, md, psql, usdc
from coffer.v1 import client_pb2, user_pb2

DAI = '0x' + '6b175474e89094c44da98b954eedeac495271d0f'
YEAR = 365 * 86400


class PortfolioTest(lm.LedgerBase):
    def test_totals_across_vaults_of_different_decimals(self):
        _, key = self.register(platform_fee_bps=0, end_user_yield_bps=10000)
        vu = self.configure(key)                                  # USDC, 6 decimals
        vd = self.configure(key, symbol='DAI', address=DAI, decimals=18)
        cuid = self.user(key)
        self.deposit(key, cuid, usdc(1000))
        self.deposit(key, cuid, 500 * 10 ** 18, symbol='DAI')
        self.accrue(vu.vault_id, str(usdc(1050)))                 # +5 % on the USDC vault only

        r = call(self.users.GetPortfolio, user_pb2.GetPortfolioRequest(client_user_id=cuid), md(key))
        by = {p.vault_id: p for p in r.vaults}
        self.assertEqual(set(by), {vu.vault_id, vd.vault_id})
        pu, pd = by[vu.vault_id], by[vd.vault_id]
        self.assertEqual(int(pu.effective_balance), usdc(1050))
        self.assertEqual(int(pu.total_deposited), usdc(1000))
        self.assertEqual(int(pu.yield_earned), usdc(50))
        self.assertAlmostEqual(pu.yield_percentage, 0.05, places=9)
        self.assertEqual(int(pd.effective_balance), 500 * 10 ** 18)
        self.assertEqual(int(pd.yield_earned), 0)
        # Totals in 18-decimal units: USDC amounts scaled by 10^12.
        t = r.totals
        self.assertEqual(int(t.total_value), 1550 * 10 ** 18)
        self.assertEqual(int(t.total_deposited), 1500 * 10 ** 18)
        self.assertEqual(int(t.yield_earned), 50 * 10 ** 18)
        self.assertAlmostEqual(t.yield_percentage, 50 / 1500, places=9)
        # Another client's key sees nothing of this user.
        _, other = self.register()
        with self.assertRaises(lm.grpc.RpcError) as e:
            call(self.users.GetPortfolio, user_pb2.GetPortfolioRequest(client_user_id=cuid), md(other))
        self.assertEqual(e.exception.code(), lm.NOT_FOUND)

    def test_apy_from_index_history(self):
        client_id, key = self.register(platform_fee_bps=0, end_user_yield_bps=10000)
        v = self.configure(key)
        # History first (rows chain in id order, and CheckInvariants wants
        # the index never to fall along it): 0.99 thirty-one days ago,
        # 0.995 eight days ago, 0.999 two days ago (inside both windows:
        # must NOT be used), then the deposit at 1.0 and an accrual to 1.01.
        psql("INSERT INTO index_history (client_id, vault_id, at, index_value, total_assets, total_shares) VALUES "
             "('%s', '%s', now() - interval '31 days', 990000000000000000, 0, 0), "
             "('%s', '%s', now() - interval '8 days', 995000000000000000, 0, 0), "
             "('%s', '%s', now() - interval '2 days', 999000000000000000, 0, 0)"
             % ((client_id, v.vault_id) * 3))
        cuid = self.user(key)
        self.deposit(key, cuid, usdc(1000))
        self.accrue(v.vault_id, str(usdc(1010)))                  # index 1.01
        now_index = int(self.vault(client_id, v.vault_id).current_index)
        self.assertEqual(now_index, 101 * 10 ** 16)
        ages = psql("SELECT string_agg(floor(extract(epoch FROM now() - at))::bigint::text, ',' ORDER BY at) "
                    "FROM index_history WHERE vault_id = '%s' AND at < now() - interval '7 days'" % v.vault_id)
        age31, age8 = (int(x) for x in ages.split(','))

        def apy(then, age):
            return (now_index / then) ** (YEAR / age) - 1

        want7, want30 = apy(995 * 10 ** 15, age8), apy(990 * 10 ** 15, age31)
        lv = call(self.clients.ListVaults, client_pb2.ListVaultsRequest(), md(key))
        got = [x for x in lv.vaults if x.vault_id == v.vault_id][0]
        self.assertAlmostEqual(got.apy_7d, want7, delta=abs(want7) * 1e-3)
        self.assertAlmostEqual(got.apy_30d, want30, delta=abs(want30) * 1e-3)
        self.assertGreater(got.apy_7d, 0.5)   # 1.5 % in 8 days is about 97 % a year
        pos = self.position(key, cuid, v.vault_id)
        self.assertAlmostEqual(pos.apy_7d, want7, delta=abs(want7) * 1e-3)
        self.assertAlmostEqual(pos.apy_30d, want30, delta=abs(want30) * 1e-3)
        self.assert_invariants(v.vault_id)

    def test_apy_is_zero_without_old_history(self):
        client_id, key = self.register()
        v = self.configure(key)
        lv = call(self.clients.ListVaults, client_pb2.ListVaultsRequest(), md(key))
        got = [x for x in lv.vaults if x.vault_id == v.vault_id][0]
        self.assertEqual((got.apy_7d, got.apy_30d), (0.0, 0.0))


if __name__ == '__main__':
    unittest.main(verbosity=2)
