"""The money (issue 5) through an independent client (grpcio), against the
stack's coffer-api: DepositService, WithdrawalService, OperationsService.

Expected figures are computed here with Python's integers from the
formulas of DESIGN.md §2 and api-server/accounting.h (mint floor, burn
ceil, fee shares priced against nav + the users' part), never with
floats. Every flow ends with CheckInvariants (no violations) and
VerifyAuditChain (ok); the last test tampers with an audit row as the
database superuser (on a database and coffer-api of its own) and checks
that VerifyAuditChain names it."""
import concurrent.futures
import os
import re
import secrets
import subprocess
import time
import unittest

import grpc_testlib as gt
from grpc_testlib import grpc

from coffer.v1 import (client_pb2, client_pb2_grpc, common_pb2, deposit_pb2, deposit_pb2_grpc,  # noqa: E402
                       operations_pb2, operations_pb2_grpc, user_pb2, user_pb2_grpc, withdrawal_pb2,
                       withdrawal_pb2_grpc)
from google.protobuf import wrappers_pb2  # noqa: E402

WAD = 10 ** 18
# Chain 1 (mainnet's USDC and USDT addresses below): the stack's coffer-api
# serves chain 31337, so its chain jobs leave these vaults to the ledger part.
CHAIN = 1
USDC = '0x' + 'a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48'
USDT = '0x' + 'dac17f958d2ee523a2206206994597c13d831ec7'
FAILED = grpc.StatusCode.FAILED_PRECONDITION
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
S = common_pb2  # OrderStatus values


def uniq(prefix):
    return '%s-%s' % (prefix, secrets.token_hex(6))


def md(token, idem=None):
    m = [('authorization', 'Bearer ' + token)]
    if idem:
        m.append(('idempotency-key', idem))
    return tuple(m)


def tx_hash():
    return '0x' + secrets.token_hex(32)


def ceil_div(a, b):
    return -(-a // b)


def usdc(whole, micro=0):
    return whole * 10 ** 6 + micro


def display(v, decimals):
    s = str(v).rjust(decimals + 1, '0')
    return s[:-decimals] + '.' + s[-decimals:]


def call(fn, req, metadata, timeout=30):
    """fn(req), retried while the rate limiter says RESOURCE_EXHAUSTED
    (the stack runs with the default limits, shared by every test file)."""
    end = time.monotonic() + 120
    while True:
        try:
            return fn(req, metadata=metadata, timeout=timeout)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > end:
                raise
            time.sleep(1.0)


def admin_pg_url():
    """The stack's superuser URL, on the coffer database."""
    return re.sub(r'/[^/?]*$', '/coffer', os.environ['COFFER_PG_ADMIN_URL'])


def psql(sql):
    r = subprocess.run(['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', admin_pg_url(), '-c', sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError('psql: ' + r.stderr)
    return r.stdout.strip()


class Vault:
    """A vault's numbers as the engine sees them (profit_unlock 0, no surplus)."""

    def __init__(self, m, decimals=6):
        self.total_shares = int(m.total_shares)
        self.idle = int(m.idle_assets)
        self.deployed = int(m.deployed_assets)
        self.payable = int(m.withdrawals_payable)
        self.locked = int(m.locked_profit)
        self.index = int(m.current_index)
        self.scale = 10 ** (18 - decimals)

    @property
    def nav(self):
        return self.idle + self.deployed - self.payable - self.locked

    def value(self, shares):
        return shares * self.nav // self.total_shares

    def mint(self, amount):
        if self.total_shares == 0:
            return amount * self.scale * WAD // self.index
        return amount * self.total_shares // self.nav

    def burn(self, amount):
        return ceil_div(amount * self.total_shares, self.nav)

    def index_now(self):
        return self.nav * self.scale * WAD // self.total_shares


class LedgerBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        gt.require_stack()
        cls.ch = gt.wait_ready(os.environ['COFFER_GRPC'])
        cls.admin = os.environ['COFFER_ADMIN_TOKEN']
        cls.clients = client_pb2_grpc.ClientServiceStub(cls.ch)
        cls.users = user_pb2_grpc.UserServiceStub(cls.ch)
        cls.deposits = deposit_pb2_grpc.DepositServiceStub(cls.ch)
        cls.withdrawals = withdrawal_pb2_grpc.WithdrawalServiceStub(cls.ch)
        cls.ops = operations_pb2_grpc.OperationsServiceStub(cls.ch)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()

    # -- setup helpers --------------------------------------------------------

    def register(self, platform_fee_bps=None, end_user_yield_bps=None):
        req = client_pb2.RegisterClientRequest(product_id=uniq('money'), company_name='Money Test',
                                               business_type='payments', webhook_url='https://m.example/hooks')
        if platform_fee_bps is not None:
            req.platform_fee_bps.CopyFrom(wrappers_pb2.UInt32Value(value=platform_fee_bps))
        if end_user_yield_bps is not None:
            req.end_user_yield_bps.CopyFrom(wrappers_pb2.UInt32Value(value=end_user_yield_bps))
        r = call(self.clients.RegisterClient, req, md(self.admin))
        return r.client.client_id, r.api_key

    def configure(self, key, symbol='USDC', address=USDC, decimals=6, unlock=0):
        req = client_pb2.ConfigureVaultRequest(
            chain_id=CHAIN, token_address=address, token_symbol=symbol, token_decimals=decimals,
            strategies=[common_pb2.StrategyTarget(category=common_pb2.STRATEGY_CATEGORY_LENDING, target_bps=10000)],
            profit_unlock_seconds=wrappers_pb2.UInt32Value(value=unlock))
        return call(self.clients.ConfigureVault, req, md(key)).vault

    def user(self, key, cuid=None):
        cuid = cuid or uniq('user')
        call(self.users.CreateUser, user_pb2.CreateUserRequest(client_user_id=cuid, email='u@example.com'), md(key))
        return cuid

    def open_deposit(self, key, cuid, amount, symbol='USDC'):
        return call(self.deposits.CreateCryptoDeposit,
                    deposit_pb2.CreateCryptoDepositRequest(client_user_id=cuid, chain_id=CHAIN, token_symbol=symbol,
                                                           amount=str(amount)), md(key)).deposit

    def complete(self, order_id, amount, txh=None, log_index=0, idem=None):
        return call(self.deposits.CompleteDeposit,
                    deposit_pb2.CompleteDepositRequest(order_id=order_id, crypto_amount=str(amount),
                                                       tx_hash=txh or tx_hash(), log_index=log_index),
                    md(self.admin, idem)).deposit

    def deposit(self, key, cuid, amount, symbol='USDC'):
        d = self.open_deposit(key, cuid, amount, symbol)
        return self.complete(d.order_id, amount)

    def accrue(self, vault_id, observed):
        return call(self.ops.AccrueYield, operations_pb2.AccrueYieldRequest(vault_id=vault_id,
                                                                            observed_total_assets=str(observed)),
                    md(self.admin))

    def vault(self, client_id, vault_id):
        r = call(self.ops.ListAllVaults, operations_pb2.ListAllVaultsRequest(client_id=client_id), md(self.admin))
        for v in r.vaults:
            if v.vault_id == vault_id:
                return v
        self.fail('vault %s not listed' % vault_id)

    def position(self, key, cuid, vault_id):
        r = call(self.users.GetPortfolio, user_pb2.GetPortfolioRequest(client_user_id=cuid), md(key))
        for p in r.vaults:
            if p.vault_id == vault_id:
                return p
        return None

    def withdraw(self, key, cuid, amount, symbol='USDC', address='0x' + '11' * 20, idem=None):
        return call(self.withdrawals.RequestWithdrawal,
                    withdrawal_pb2.RequestWithdrawalRequest(
                        client_user_id=cuid, chain_id=CHAIN, token_symbol=symbol, amount=str(amount),
                        destination=withdrawal_pb2.Destination(type=withdrawal_pb2.DESTINATION_TYPE_CRYPTO_ADDRESS,
                                                               address=address)),
                    md(key, idem)).withdrawal

    def run_withdrawals(self, vault_id=''):
        return call(self.ops.RunJob, operations_pb2.RunJobRequest(name='withdrawals', vault_id=vault_id),
                    md(self.admin), timeout=60)

    def code_of(self, fn, req, metadata):
        with self.assertRaises(grpc.RpcError) as cm:
            call(fn, req, metadata)
        return cm.exception.code(), cm.exception.details()

    def assert_invariants(self, vault_id=''):
        r = call(self.ops.CheckInvariants, operations_pb2.CheckInvariantsRequest(vault_id=vault_id), md(self.admin),
                 timeout=60)
        self.assertEqual([(v.invariant, v.vault_id, v.detail) for v in r.violations], [])
        self.assertGreaterEqual(r.vaults_checked, 1)
        a = call(self.ops.VerifyAuditChain, operations_pb2.VerifyAuditChainRequest(), md(self.admin), timeout=60)
        self.assertTrue(a.ok, a.detail)
        self.assertEqual(a.first_bad_id, 0)


class WorkedExampleTest(LedgerBase):
    def test_worked_example_no_fees(self):
        """DESIGN.md §2: 1000 at 1.05 -> 952.380952... shares; index 1.10 ->
        1047.619047; withdraw 500 -> 454.545454... burned (up), 497.835497...
        left worth 547.619047."""
        cid, key = self.register(platform_fee_bps=0, end_user_yield_bps=10000)
        vid = self.configure(key).vault_id
        a, b = self.user(key), self.user(key)
        self.deposit(key, a, usdc(1000))
        r = self.accrue(vid, usdc(1050))
        self.assertEqual(r.vault.current_index, str(105 * WAD // 100))
        self.assertEqual((r.client_fee_shares, r.platform_fee_shares, r.paused), ('0', '0', False))

        v = Vault(self.vault(cid, vid))
        want = v.mint(usdc(1000))
        self.assertEqual(want, 952380952380952380952)
        d = self.deposit(key, b, usdc(1000))
        self.assertEqual(d.status, S.ORDER_STATUS_COMPLETED)
        self.assertEqual(d.shares_minted, str(want))
        self.assertEqual(display(int(d.shares_minted) // 10 ** 12, 6), '952.380952')
        self.assertEqual(d.index_at_credit, str(105 * WAD // 100))
        self.assertEqual(d.credited_amount, str(usdc(1000)))

        # index to 1.10: the least NAV whose index reaches 1.1
        v = Vault(self.vault(cid, vid))
        nav = ceil_div(11 * WAD // 10 * v.total_shares, v.scale * WAD)
        r = self.accrue(vid, nav + v.payable)
        v = Vault(self.vault(cid, vid))
        self.assertEqual(int(r.vault.current_index), v.index_now())
        self.assertEqual(v.index_now(), 1100000000195121951)
        pb = self.position(key, b, vid)
        self.assertEqual(int(pb.effective_balance), v.value(want))
        self.assertEqual(pb.effective_balance, '1047619047')
        self.assertEqual(display(int(pb.effective_balance), 6), '1047.619047')

        w = self.withdraw(key, b, usdc(500))
        self.assertEqual(w.status, S.ORDER_STATUS_BALANCE_RESERVED)
        self.assertTrue(w.order_id.startswith('wth_'))
        burn = v.burn(usdc(500))
        self.assertEqual(int(w.shares_reserved), burn)
        j = self.run_withdrawals(vid)
        self.assertEqual(j.items_done, 1, j.report)
        got = call(self.withdrawals.GetWithdrawal, withdrawal_pb2.GetWithdrawalRequest(order_id=w.order_id),
                   md(key)).withdrawal
        self.assertEqual(got.status, S.ORDER_STATUS_PROVIDER_PROCESSING)
        self.assertEqual(got.sub_status, 'PAYOUT_PENDING')
        self.assertEqual(int(got.shares_burned), burn)
        self.assertEqual(display(burn // 10 ** 12, 6), '454.545454')
        self.assertGreater(burn * (v.nav), usdc(500) * v.total_shares - v.nav)  # rounded up, by less than a share unit
        left = want - burn
        self.assertEqual(display(left // 10 ** 12, 6), '497.835497')
        v2 = Vault(self.vault(cid, vid))
        self.assertEqual(v2.payable, usdc(500))
        self.assertEqual(v2.total_shares, v.total_shares - burn)
        pb = self.position(key, b, vid)
        self.assertEqual(int(pb.shares), left)
        self.assertEqual(int(pb.effective_balance), v2.value(left))
        self.assertEqual(display(int(pb.effective_balance), 6), '547.619047')
        self.assertEqual(pb.total_withdrawn, str(usdc(500)))
        self.assert_invariants(vid)

        # the payout leaves: idle and payable fall together
        c = call(self.withdrawals.CompleteWithdrawal,
                 withdrawal_pb2.CompleteWithdrawalRequest(order_id=w.order_id, payout_reference=tx_hash()),
                 md(self.admin)).withdrawal
        self.assertEqual(c.status, S.ORDER_STATUS_COMPLETED)
        v3 = Vault(self.vault(cid, vid))
        self.assertEqual((v3.payable, v3.idle), (0, v2.idle - usdc(500)))
        self.assertEqual(v3.nav, v2.nav)
        self.assert_invariants(vid)

    def test_worked_example_default_fees(self):
        """platform 100 bps, end users 9000 bps: the fee shares go to the
        revenue accounts and the users' index rises by their 90 % only."""
        cid, key = self.register()
        vid = self.configure(key).vault_id
        a, b = self.user(key), self.user(key)
        self.deposit(key, a, usdc(1000))
        v = Vault(self.vault(cid, vid))
        gross = usdc(50)
        user_part, platform_part = gross * 9000 // 10000, gross * 100 // 10000
        fee_part = gross - user_part
        fee_shares = fee_part * v.total_shares // (v.nav + user_part)
        platform_shares = fee_shares * platform_part // fee_part
        client_shares = fee_shares - platform_shares
        r = self.accrue(vid, usdc(1050))
        self.assertEqual((r.gross_yield, r.client_fee_shares, r.platform_fee_shares),
                         (str(gross), str(client_shares), str(platform_shares)))
        rows = dict(line.split('|') for line in psql(
            "SELECT kind, shares FROM end_user_vaults WHERE vault_id = '%s' AND kind <> 'user'" % vid).splitlines())
        self.assertEqual(rows, {'client_revenue': str(client_shares), 'platform_revenue': str(platform_shares)})
        v = Vault(self.vault(cid, vid))
        self.assertEqual(v.total_shares, 1000 * WAD + fee_shares)
        # users' net index: 1 + 4.5 % (minus rounding in the users' favour at most one unit)
        self.assertEqual(int(r.vault.current_index), v.index_now())
        self.assertEqual(v.index_now() // 10 ** 12, 1045000)
        pa = self.position(key, a, vid)
        self.assertEqual(int(pa.effective_balance), v.value(1000 * WAD))
        self.assertIn(int(pa.effective_balance), (usdc(1045) - 1, usdc(1045)))
        # the fee shares are worth the client's 4.5 and the platform's 0.5
        self.assertIn(v.value(client_shares), (usdc(4, 500000) - 1, usdc(4, 500000)))
        self.assertIn(v.value(platform_shares), (usdc(0, 500000) - 1, usdc(0, 500000)))

        want = v.mint(usdc(1000))
        d = self.deposit(key, b, usdc(1000))
        self.assertEqual(d.shares_minted, str(want))
        w = self.withdraw(key, b, usdc(500))
        v = Vault(self.vault(cid, vid))
        self.assertEqual(int(w.shares_reserved), v.burn(usdc(500)))
        self.run_withdrawals(vid)
        pb = self.position(key, b, vid)
        self.assertEqual(int(pb.shares), want - v.burn(usdc(500)))
        self.assert_invariants(vid)


class FairnessTest(LedgerBase):
    def test_two_users_keep_their_own_yield_and_vaults_are_apart(self):
        cid, key = self.register(platform_fee_bps=0, end_user_yield_bps=10000)
        vid = self.configure(key).vault_id
        a, b = self.user(key), self.user(key)
        self.deposit(key, a, usdc(1000))
        self.accrue(vid, usdc(1100))  # +10 % for A alone
        v = Vault(self.vault(cid, vid))
        b_shares = v.mint(usdc(1000))
        self.deposit(key, b, usdc(1000))
        v = Vault(self.vault(cid, vid))
        self.accrue(vid, v.nav * 11 // 10)  # +10 % for both
        v = Vault(self.vault(cid, vid))
        pa, pb = self.position(key, a, vid), self.position(key, b, vid)
        self.assertEqual(int(pa.effective_balance), v.value(1000 * WAD))
        self.assertEqual(int(pb.effective_balance), v.value(b_shares))
        self.assertIn(int(pa.effective_balance), range(usdc(1210) - 2, usdc(1210) + 1))  # 21 %
        self.assertIn(int(pb.effective_balance), range(usdc(1100) - 2, usdc(1100) + 1))  # 10 %
        self.assertEqual(pa.weighted_entry_index, str(WAD))
        self.assertEqual(pb.weighted_entry_index, str(11 * WAD // 10))

        # a second vault of the same client: money there moves nothing here
        vid2 = self.configure(key, symbol='USDT', address=USDT).vault_id
        before = (pa.effective_balance, pb.effective_balance, self.vault(cid, vid).current_index)
        self.deposit(key, a, usdc(5000), symbol='USDT')
        self.deposit(key, b, usdc(3000), symbol='USDT')
        self.accrue(vid2, usdc(8800))
        pa, pb = self.position(key, a, vid), self.position(key, b, vid)
        self.assertEqual((pa.effective_balance, pb.effective_balance, self.vault(cid, vid).current_index), before)
        self.assertEqual(self.position(key, a, vid2).effective_balance, str(usdc(5500)))
        self.assert_invariants(vid)
        self.assert_invariants(vid2)


class DepositTest(LedgerBase):
    def test_amount_validation(self):
        cid, key = self.register()
        self.configure(key)
        u = self.user(key)
        for bad, words in (('1.5', 'fraction'), ('-1', 'positive'), ('', 'required'), ('0', 'greater than zero'),
                           ('9' * 100, 'characters long'), ('9' * 80, 'out of range'), ('9' * 78, 'out of range'), ('007', 'leading zeros'),
                           ('1e6', 'digits only')):
            code, msg = self.code_of(self.deposits.CreateCryptoDeposit, deposit_pb2.CreateCryptoDepositRequest(
                client_user_id=u, chain_id=CHAIN, token_symbol='USDC', amount=bad), md(key))
            self.assertEqual(code, INVALID, bad)
            self.assertIn(words, msg, bad)
        code, msg = self.code_of(self.deposits.CreateCryptoDeposit, deposit_pb2.CreateCryptoDepositRequest(
            client_user_id='nobody', chain_id=CHAIN, token_symbol='USDC', amount='5'), md(key))
        self.assertEqual(code, NOT_FOUND)
        code, msg = self.code_of(self.deposits.CreateCryptoDeposit, deposit_pb2.CreateCryptoDepositRequest(
            client_user_id=u, chain_id=CHAIN, token_symbol='DAI', amount='5'), md(key))
        self.assertEqual(code, NOT_FOUND)
        self.assertIn('ConfigureVault', msg)

    def test_create_complete_once(self):
        cid, key = self.register()
        vid = self.configure(key).vault_id
        u = self.user(key)
        d = self.open_deposit(key, u, usdc(2000))
        self.assertRegex(d.order_id, r'^dep_[a-z2-7]{20}$')
        self.assertEqual(d.status, S.ORDER_STATUS_INITIATED)
        self.assertRegex(d.deposit_address, r'^0x[0-9a-fA-F]{40}$')  # the client's custodial wallet
        self.assertAlmostEqual(d.expires_at.seconds - d.created_at.seconds, 86400, delta=2)
        self.assertEqual((d.vault_id, d.client_id, d.client_user_id), (vid, cid, u))

        # below the first-deposit minimum (one whole token) of an empty vault
        small = self.open_deposit(key, u, 999999)
        code, msg = self.code_of(self.deposits.CompleteDeposit, deposit_pb2.CompleteDepositRequest(
            order_id=small.order_id, crypto_amount='999999', tx_hash=tx_hash()), md(self.admin))
        self.assertEqual(code, FAILED)
        self.assertIn('first deposit', msg)
        for bad in ('0x1234', 'ab' * 32, '0x' + 'g' * 64):
            code, _ = self.code_of(self.deposits.CompleteDeposit, deposit_pb2.CompleteDepositRequest(
                order_id=d.order_id, crypto_amount='5', tx_hash=bad), md(self.admin))
            self.assertEqual(code, INVALID, bad)

        txh, idem = tx_hash(), uniq('idem')
        first = self.complete(d.order_id, usdc(1999), txh=txh, log_index=3, idem=idem)
        self.assertEqual(first.credited_amount, str(usdc(1999)))
        self.assertEqual(first.amount, str(usdc(2000)))
        self.assertEqual(first.tx_hash, txh)
        # the answer is built from the locked row and what the credit wrote
        # (nothing is read back): it is the row as it now reads
        got = call(self.deposits.GetDeposit, deposit_pb2.GetDepositRequest(order_id=d.order_id), md(key)).deposit
        self.assertEqual(got, first)
        self.assertEqual(first.status, S.ORDER_STATUS_COMPLETED)
        self.assertEqual(first.completed_at, first.updated_at)
        # a replay with the key: the stored answer; without: already COMPLETED
        again = self.complete(d.order_id, usdc(1999), txh=txh, log_index=3, idem=idem)
        self.assertEqual(again, first)
        code, msg = self.code_of(self.deposits.CompleteDeposit, deposit_pb2.CompleteDepositRequest(
            order_id=d.order_id, crypto_amount=str(usdc(1999)), tx_hash=txh, log_index=3), md(self.admin))
        self.assertEqual(code, FAILED)
        self.assertIn('already COMPLETED', msg)
        # the same transfer log cannot credit a second deposit
        other = self.open_deposit(key, u, usdc(5))
        code, msg = self.code_of(self.deposits.CompleteDeposit, deposit_pb2.CompleteDepositRequest(
            order_id=other.order_id, crypto_amount=str(usdc(5)), tx_hash=txh, log_index=3), md(self.admin))
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS)
        self.assertIn(d.order_id, msg)
        self.complete(other.order_id, usdc(5), txh=txh, log_index=4)  # another log of that transaction is fine
        p = self.position(key, u, vid)
        self.assertEqual(p.total_deposited, str(usdc(2004)))
        self.assertEqual(p.shares, str(usdc(2004) * 10 ** 12))

        # a paused vault takes no deposits
        call(self.ops.PauseVault, operations_pb2.PauseVaultRequest(vault_id=vid, reason='test pause'), md(self.admin))
        code, msg = self.code_of(self.deposits.CompleteDeposit, deposit_pb2.CompleteDepositRequest(
            order_id=small.order_id, crypto_amount='5', tx_hash=tx_hash()), md(self.admin))
        self.assertEqual(code, FAILED)
        self.assertIn('paused', msg)
        code, _ = self.code_of(self.deposits.CreateCryptoDeposit, deposit_pb2.CreateCryptoDepositRequest(
            client_user_id=u, chain_id=CHAIN, token_symbol='USDC', amount='5'), md(key))
        self.assertEqual(code, FAILED)
        call(self.ops.ResumeVault, operations_pb2.ResumeVaultRequest(vault_id=vid, reason='done'), md(self.admin))
        self.complete(small.order_id, 999999)  # not the first any more
        self.assert_invariants(vid)

    def test_list_and_paging(self):
        cid, key = self.register()
        self.configure(key)
        u1, u2 = self.user(key), self.user(key)
        made = [self.open_deposit(key, u1 if i % 2 else u2, usdc(10 + i)).order_id for i in range(5)]
        seen, token = [], ''
        while True:
            r = call(self.deposits.ListDeposits, deposit_pb2.ListDepositsRequest(page_size=2, page_token=token),
                     md(key))
            seen += [d.order_id for d in r.deposits]
            self.assertLessEqual(len(r.deposits), 2)
            token = r.next_page_token
            if not token:
                break
        self.assertEqual(seen, list(reversed(made)))  # newest first, each once
        r = call(self.deposits.ListDeposits, deposit_pb2.ListDepositsRequest(client_user_id=u1), md(key))
        self.assertEqual({d.order_id for d in r.deposits}, {made[1], made[3]})
        r = call(self.deposits.ListDeposits, deposit_pb2.ListDepositsRequest(status=S.ORDER_STATUS_COMPLETED), md(key))
        self.assertEqual(len(r.deposits), 0)
        for bad in (deposit_pb2.ListDepositsRequest(page_size=501),
                    deposit_pb2.ListDepositsRequest(page_token='bm9wZQ')):
            code, _ = self.code_of(self.deposits.ListDeposits, bad, md(key))
            self.assertEqual(code, INVALID)

    def test_withdrawals_list_and_paging(self):
        cid, key = self.register()
        self.configure(key)
        u1, u2 = self.user(key), self.user(key)
        self.deposit(key, u1, usdc(100))
        self.deposit(key, u2, usdc(100))
        made = [self.withdraw(key, u1 if i % 2 else u2, usdc(1 + i)).order_id for i in range(5)]
        seen, token = [], ''
        while True:
            r = call(self.withdrawals.ListWithdrawals,
                     withdrawal_pb2.ListWithdrawalsRequest(page_size=2, page_token=token), md(key))
            seen += [w.order_id for w in r.withdrawals]
            self.assertLessEqual(len(r.withdrawals), 2)
            token = r.next_page_token
            if not token:
                break
        self.assertEqual(seen, list(reversed(made)))  # newest first, each once
        r = call(self.withdrawals.ListWithdrawals, withdrawal_pb2.ListWithdrawalsRequest(client_user_id=u1), md(key))
        self.assertEqual({w.order_id for w in r.withdrawals}, {made[1], made[3]})
        r = call(self.withdrawals.ListWithdrawals,
                 withdrawal_pb2.ListWithdrawalsRequest(status=S.ORDER_STATUS_COMPLETED), md(key))
        self.assertEqual(len(r.withdrawals), 0)
        for bad in (withdrawal_pb2.ListWithdrawalsRequest(page_size=501),
                    withdrawal_pb2.ListWithdrawalsRequest(page_token='bm9wZQ'),
                    withdrawal_pb2.ListWithdrawalsRequest(status=99)):
            code, _ = self.code_of(self.withdrawals.ListWithdrawals, bad, md(key))
            self.assertEqual(code, INVALID)


class WithdrawalTest(LedgerBase):
    def setUp(self):
        self.cid, self.key = self.register(platform_fee_bps=0, end_user_yield_bps=10000)
        self.vid = self.configure(self.key).vault_id
        self.u = self.user(self.key)
        self.deposit(self.key, self.u, usdc(1000))

    def test_validation_cancel_and_fail(self):
        key, u = self.key, self.u
        code, msg = self.code_of(self.withdrawals.RequestWithdrawal, withdrawal_pb2.RequestWithdrawalRequest(
            client_user_id=u, chain_id=CHAIN, token_symbol='USDC', amount=str(usdc(1001)),
            destination=withdrawal_pb2.Destination(type=withdrawal_pb2.DESTINATION_TYPE_CRYPTO_ADDRESS,
                                                   address='0x' + '22' * 20)), md(key))
        self.assertEqual(code, FAILED)
        self.assertEqual(msg, 'insufficient available balance: available %d, requested %d' % (usdc(1000), usdc(1001)))
        for dest in (withdrawal_pb2.Destination(type=withdrawal_pb2.DESTINATION_TYPE_CRYPTO_ADDRESS, address='0x12'),
                     withdrawal_pb2.Destination(type=withdrawal_pb2.DESTINATION_TYPE_BANK_ACCOUNT),
                     withdrawal_pb2.Destination()):
            code, _ = self.code_of(self.withdrawals.RequestWithdrawal, withdrawal_pb2.RequestWithdrawalRequest(
                client_user_id=u, chain_id=CHAIN, token_symbol='USDC', amount='5', destination=dest), md(key))
            self.assertEqual(code, INVALID)
        bank = call(self.withdrawals.RequestWithdrawal, withdrawal_pb2.RequestWithdrawalRequest(
            client_user_id=u, chain_id=CHAIN, token_symbol='USDC', amount=str(usdc(100)),
            destination=withdrawal_pb2.Destination(type=withdrawal_pb2.DESTINATION_TYPE_BANK_ACCOUNT,
                                                   details={'iban': 'DE89370400440532013000', 'holder': 'Jo'})),
            md(key)).withdrawal
        self.assertEqual(dict(bank.destination.details), {'iban': 'DE89370400440532013000', 'holder': 'Jo'})
        self.assertAlmostEqual(bank.estimated_completion.seconds - bank.created_at.seconds, 86400, delta=2)
        p = self.position(key, u, self.vid)
        self.assertEqual((p.reserved_shares, p.available_balance), (str(100 * WAD), str(usdc(900))))

        # cancel gives the shares back; a second cancel is refused naming the states
        c = call(self.withdrawals.CancelWithdrawal, withdrawal_pb2.CancelWithdrawalRequest(order_id=bank.order_id),
                 md(key)).withdrawal
        self.assertEqual(c.status, S.ORDER_STATUS_CANCELLED)
        code, msg = self.code_of(self.withdrawals.CancelWithdrawal,
                                 withdrawal_pb2.CancelWithdrawalRequest(order_id=bank.order_id), md(key))
        self.assertEqual(code, FAILED)
        self.assertIn('CANCELLED', msg)
        self.assertEqual(self.position(key, u, self.vid).reserved_shares, '0')

        # FailWithdrawal before the burn releases; after it, compensates
        w1 = self.withdraw(key, u, usdc(100))
        f1 = call(self.withdrawals.FailWithdrawal, withdrawal_pb2.FailWithdrawalRequest(
            order_id=w1.order_id, reason='bank rejected'), md(self.admin)).withdrawal
        self.assertEqual((f1.status, f1.failure_reason), (S.ORDER_STATUS_FAILED, 'bank rejected'))
        self.assertEqual(self.position(key, u, self.vid).reserved_shares, '0')
        w2 = self.withdraw(key, u, usdc(300))
        self.run_withdrawals(self.vid)
        self.accrue(self.vid, Vault(self.vault(self.cid, self.vid)).nav * 11 // 10 + usdc(300))  # price rises after the burn
        v = Vault(self.vault(self.cid, self.vid))
        reminted = usdc(300) * v.total_shares // v.nav
        before = int(self.position(key, u, self.vid).shares)
        f2 = call(self.withdrawals.FailWithdrawal, withdrawal_pb2.FailWithdrawalRequest(
            order_id=w2.order_id, reason='payout bounced'), md(self.admin)).withdrawal
        self.assertEqual(f2.status, S.ORDER_STATUS_COMPENSATED)
        p = self.position(key, u, self.vid)
        self.assertEqual(int(p.shares), before + reminted)
        self.assertEqual((p.total_withdrawn, p.total_deposited), ('0', str(usdc(1000))))
        self.assertEqual(Vault(self.vault(self.cid, self.vid)).payable, 0)
        code, msg = self.code_of(self.withdrawals.CompleteWithdrawal, withdrawal_pb2.CompleteWithdrawalRequest(
            order_id=w2.order_id, payout_reference=tx_hash()), md(self.admin))
        self.assertEqual(code, FAILED)
        self.assertIn('COMPENSATED', msg)
        self.assert_invariants(self.vid)

    def test_job_leaves_what_idle_cannot_cover(self):
        # move most of the idle money into a protocol (as staking will)
        spec = operations_pb2.Protocol(
            name=uniq('aave'), chain_id=CHAIN, category=common_pb2.STRATEGY_CATEGORY_LENDING,
            adapter=operations_pb2.PROTOCOL_ADAPTER_AAVE_V3, token_address=USDC,
            addresses={'pool': '0x' + '33' * 20, 'a_token': '0x' + '44' * 20}, apy_bps=400, active=True)
        proto = call(self.ops.UpsertProtocol, operations_pb2.UpsertProtocolRequest(protocol=spec),
                     md(self.admin)).protocol
        psql("BEGIN; UPDATE client_vaults SET idle_assets = idle_assets - 900000000, deployed_assets = deployed_assets "
             "+ 900000000 WHERE id = '%s'; INSERT INTO protocol_allocations (client_id, vault_id, protocol_id, "
             "book_balance) VALUES ('%s', '%s', '%s', 900000000); COMMIT" % (self.vid, self.cid, self.vid,
                                                                             proto.protocol_id))
        small, big = self.withdraw(self.key, self.u, usdc(50)), self.withdraw(self.key, self.u, usdc(200))
        j = self.run_withdrawals(self.vid)
        self.assertEqual((j.items_done, j.items_skipped), (1, 1), j.report)
        self.assertIn(big.order_id, j.report)
        self.assertIn('unstaking', j.report)
        got = call(self.withdrawals.GetWithdrawal, withdrawal_pb2.GetWithdrawalRequest(order_id=big.order_id),
                   md(self.key)).withdrawal
        self.assertEqual(got.status, S.ORDER_STATUS_BALANCE_RESERVED)
        got = call(self.withdrawals.GetWithdrawal, withdrawal_pb2.GetWithdrawalRequest(order_id=small.order_id),
                   md(self.key)).withdrawal
        self.assertEqual(got.status, S.ORDER_STATUS_PROVIDER_PROCESSING)

        # a gain lands on the allocation, so deployed = Σ book holds
        v = Vault(self.vault(self.cid, self.vid))
        r = self.accrue(self.vid, v.idle + v.deployed + usdc(9))
        self.assertEqual(r.vault.deployed_assets, str(usdc(909)))
        self.assertEqual(psql("SELECT book_balance FROM protocol_allocations WHERE vault_id = '%s'" % self.vid),
                         str(usdc(909)))
        # a loss pauses; RealizeLoss books it (the index may fall only there)
        before = int(r.vault.current_index)
        r = self.accrue(self.vid, v.idle + v.deployed - usdc(100))
        self.assertTrue(r.paused)
        self.assertEqual(r.loss, str(usdc(109)))
        self.assertEqual(r.vault.status, common_pb2.VAULT_STATUS_PAUSED)
        self.assertEqual(r.vault.current_index, str(before))
        code, _ = self.code_of(self.ops.AccrueYield, operations_pb2.AccrueYieldRequest(
            vault_id=self.vid, observed_total_assets='1'), md(self.admin))
        self.assertEqual(code, FAILED)
        lr = call(self.ops.RealizeLoss, operations_pb2.RealizeLossRequest(
            vault_id=self.vid, observed_total_assets=str(v.idle + v.deployed - usdc(100)), reason='pool exploit'),
            md(self.admin))
        self.assertEqual(lr.loss, str(usdc(109)))
        self.assertEqual(lr.absorbed_by_holders, str(usdc(109)))
        self.assertLess(int(lr.vault.current_index), before)
        self.assertEqual(lr.vault.status, common_pb2.VAULT_STATUS_PAUSED)  # resumes nothing by itself
        self.assertEqual(lr.vault.deployed_assets, str(usdc(800)))
        self.assert_invariants(self.vid)
        call(self.ops.ResumeVault, operations_pb2.ResumeVaultRequest(vault_id=self.vid, reason='booked'),
             md(self.admin))
        a = call(self.ops.ListAuditLog, operations_pb2.ListAuditLogRequest(entity_id=self.vid, page_size=3),
                 md(self.admin))
        self.assertEqual([e.action for e in a.entries], ['vault.resumed', 'vault.loss_realized', 'vault.loss_detected'])
        self.assertTrue(a.next_page_token)
        self.assertTrue(all(len(e.hash) == 64 and len(e.prev_hash) == 64 for e in a.entries))
        more = call(self.ops.ListAuditLog, operations_pb2.ListAuditLogRequest(
            entity_id=self.vid, page_size=3, page_token=a.next_page_token), md(self.admin))
        self.assertLess(more.entries[0].id, a.entries[-1].id)

    def test_concurrent_withdrawals_never_overspend(self):
        key, u = self.key, self.u
        avail = int(self.position(key, u, self.vid).available_balance)

        def one(i):
            try:
                return self.withdraw(key, u, usdc(50)).amount
            except grpc.RpcError as e:
                self.assertEqual(e.code(), FAILED, e.details())
                self.assertIn('insufficient available balance', e.details())
                return None

        with concurrent.futures.ThreadPoolExecutor(50) as ex:
            got = [x for x in ex.map(one, range(50)) if x is not None]
        self.assertLessEqual(sum(int(x) for x in got), avail)
        self.assertEqual(len(got), 20)
        p = self.position(key, u, self.vid)
        self.assertLessEqual(int(p.reserved_shares), int(p.shares))
        self.assertEqual(p.available_balance, '0')

        # 20 identical requests with one idempotency-key execute once
        cid2, key2 = self.register()
        self.configure(key2)
        u2 = self.user(key2)
        self.deposit(key2, u2, usdc(100))
        idem = uniq('same')
        with concurrent.futures.ThreadPoolExecutor(20) as ex:
            ids = list(ex.map(lambda i: self.withdraw(key2, u2, usdc(1), idem=idem).order_id, range(20)))
        self.assertEqual(len(set(ids)), 1)
        r = call(self.withdrawals.ListWithdrawals, withdrawal_pb2.ListWithdrawalsRequest(client_user_id=u2), md(key2))
        self.assertEqual(len(r.withdrawals), 1)
        self.assertEqual(self.position(key2, u2, r.withdrawals[0].vault_id).reserved_shares, str(WAD))
        self.assert_invariants(self.vid)


class TenantIsolationTest(LedgerBase):
    def test_other_clients_orders_are_not_found(self):
        cid_a, key_a = self.register()
        vid_a = self.configure(key_a).vault_id
        ua = self.user(key_a)
        dep = self.deposit(key_a, ua, usdc(100))
        pending = self.open_deposit(key_a, ua, usdc(7))
        wth = self.withdraw(key_a, ua, usdc(10))
        cid_b, key_b = self.register()
        self.configure(key_b)
        ub = self.user(key_b)
        self.deposit(key_b, ub, usdc(100))

        for order in (dep.order_id, pending.order_id):
            code, _ = self.code_of(self.deposits.GetDeposit, deposit_pb2.GetDepositRequest(order_id=order), md(key_b))
            self.assertEqual(code, NOT_FOUND)
        for fn, req in ((self.withdrawals.GetWithdrawal, withdrawal_pb2.GetWithdrawalRequest(order_id=wth.order_id)),
                        (self.withdrawals.CancelWithdrawal,
                         withdrawal_pb2.CancelWithdrawalRequest(order_id=wth.order_id))):
            code, _ = self.code_of(fn, req, md(key_b))
            self.assertEqual(code, NOT_FOUND)
        # another client's user is unknown here
        code, _ = self.code_of(self.deposits.CreateCryptoDeposit, deposit_pb2.CreateCryptoDepositRequest(
            client_user_id=ua, chain_id=CHAIN, token_symbol='USDC', amount='5'), md(key_b))
        self.assertEqual(code, NOT_FOUND)
        code, _ = self.code_of(self.withdrawals.RequestWithdrawal, withdrawal_pb2.RequestWithdrawalRequest(
            client_user_id=ua, chain_id=CHAIN, token_symbol='USDC', amount='5',
            destination=withdrawal_pb2.Destination(type=withdrawal_pb2.DESTINATION_TYPE_CRYPTO_ADDRESS,
                                                   address='0x' + '11' * 20)), md(key_b))
        self.assertEqual(code, NOT_FOUND)
        # lists show only one's own
        mine = call(self.deposits.ListDeposits, deposit_pb2.ListDepositsRequest(page_size=500), md(key_b)).deposits
        self.assertTrue(mine)
        self.assertTrue(all(d.client_id == cid_b for d in mine))
        self.assertFalse({d.order_id for d in mine} & {dep.order_id, pending.order_id})
        r = call(self.deposits.ListDeposits, deposit_pb2.ListDepositsRequest(client_user_id=ua), md(key_b))
        self.assertEqual(len(r.deposits), 0)
        r = call(self.withdrawals.ListWithdrawals, withdrawal_pb2.ListWithdrawalsRequest(page_size=500), md(key_b))
        self.assertEqual(len(r.withdrawals), 0)
        # operators' methods are the operator's
        for fn, req in ((self.deposits.CompleteDeposit, deposit_pb2.CompleteDepositRequest(
                            order_id=pending.order_id, crypto_amount='7', tx_hash=tx_hash())),
                        (self.withdrawals.CompleteWithdrawal, withdrawal_pb2.CompleteWithdrawalRequest(
                            order_id=wth.order_id, payout_reference='x')),
                        (self.ops.AccrueYield, operations_pb2.AccrueYieldRequest(vault_id=vid_a,
                                                                                observed_total_assets='1')),
                        (self.ops.ListAllVaults, operations_pb2.ListAllVaultsRequest()),
                        (self.ops.CheckInvariants, operations_pb2.CheckInvariantsRequest()),
                        (self.ops.ListAuditLog, operations_pb2.ListAuditLogRequest()),
                        (self.ops.RunJob, operations_pb2.RunJobRequest(name='withdrawals'))):
            code, _ = self.code_of(fn, req, md(key_a))
            self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED)
        # the owner still sees everything
        got = call(self.deposits.GetDeposit, deposit_pb2.GetDepositRequest(order_id=dep.order_id), md(key_a)).deposit
        self.assertEqual(got.status, S.ORDER_STATUS_COMPLETED)
        self.assert_invariants(vid_a)


class OperationsTest(LedgerBase):
    def test_jobs_protocols_and_vaults(self):
        chain = bool(os.environ.get('COFFER_SIGNER_SOCKET')) and bool(os.environ.get('COFFER_EVM_RPC'))
        for name in ('staking', 'accrual', 'deposit_watch', 'receipts'):
            if chain:  # served (test_grpc_chain.py has the flows)
                call(self.ops.RunJob, operations_pb2.RunJobRequest(name=name), md(self.admin), timeout=120)
            else:
                code, msg = self.code_of(self.ops.RunJob, operations_pb2.RunJobRequest(name=name), md(self.admin))
                self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED, name)
        code, msg = self.code_of(self.ops.RunJob, operations_pb2.RunJobRequest(name='outbox'), md(self.admin))
        self.assertEqual(code, grpc.StatusCode.UNIMPLEMENTED)
        code, _ = self.code_of(self.ops.RunJob, operations_pb2.RunJobRequest(name='nope'), md(self.admin))
        self.assertEqual(code, INVALID)
        name = uniq('morpho')
        p = operations_pb2.Protocol(name=name, chain_id=CHAIN, category=common_pb2.STRATEGY_CATEGORY_LENDING,
                                    adapter=operations_pb2.PROTOCOL_ADAPTER_ERC4626, token_address=USDC,
                                    addresses={'vault': '0x' + 'AB' * 20}, apy_bps=512, active=True)
        r = call(self.ops.UpsertProtocol, operations_pb2.UpsertProtocolRequest(protocol=p), md(self.admin))
        self.assertTrue(r.created)
        self.assertEqual(dict(r.protocol.addresses), {'vault': '0x' + 'ab' * 20})
        p.apy_bps, p.active = 300, False
        r2 = call(self.ops.UpsertProtocol, operations_pb2.UpsertProtocolRequest(protocol=p), md(self.admin))
        self.assertFalse(r2.created)
        self.assertEqual(r2.protocol.protocol_id, r.protocol.protocol_id)
        listed = call(self.ops.ListProtocols, operations_pb2.ListProtocolsRequest(chain_id=CHAIN), md(self.admin))
        self.assertIn(name, [x.name for x in listed.protocols])
        active = call(self.ops.ListProtocols, operations_pb2.ListProtocolsRequest(active_only=True), md(self.admin))
        self.assertNotIn(name, [x.name for x in active.protocols])
        for bad in (dict(addresses={'pool': '0x' + '11' * 20}), dict(addresses={'vault': '0x12'}),
                    dict(adapter=operations_pb2.PROTOCOL_ADAPTER_UNSPECIFIED), dict(name='Bad Name'),
                    dict(token_address='0x1')):
            q = operations_pb2.Protocol()
            q.CopyFrom(p)
            for k, v in bad.items():
                if k == 'addresses':
                    q.addresses.clear()
                    q.addresses.update(v)
                else:
                    setattr(q, k, v)
            code, _ = self.code_of(self.ops.UpsertProtocol, operations_pb2.UpsertProtocolRequest(protocol=q),
                                   md(self.admin))
            self.assertEqual(code, INVALID, bad)
        cid, key = self.register()
        vid = self.configure(key).vault_id
        vs = call(self.ops.ListAllVaults, operations_pb2.ListAllVaultsRequest(client_id=cid), md(self.admin)).vaults
        self.assertEqual([v.vault_id for v in vs], [vid])
        code, _ = self.code_of(self.ops.PauseVault, operations_pb2.PauseVaultRequest(vault_id=vid), md(self.admin))
        self.assertEqual(code, INVALID)  # a reason is required
        code, _ = self.code_of(self.ops.ResumeVault, operations_pb2.ResumeVaultRequest(vault_id=vid, reason='x'),
                               md(self.admin))
        self.assertEqual(code, FAILED)
        code, _ = self.code_of(self.ops.AccrueYield, operations_pb2.AccrueYieldRequest(
            vault_id=secrets.token_hex(4) + '-0000-4000-8000-000000000000', observed_total_assets='1'), md(self.admin))
        self.assertEqual(code, NOT_FOUND)
        self.assert_invariants()


class ZzAuditTamperTest(LedgerBase):
    """Breaks the chain on purpose, checks it is found, and puts the row
    back: on a database and coffer-api of the test's own, so tests that
    share the stack never see the broken chain."""

    @classmethod
    def setUpClass(cls):
        gt.require_stack()
        cls.dbname = 'tamper_%d_%s' % (os.getpid(), secrets.token_hex(4))
        base = os.environ['COFFER_PG_ADMIN_URL']
        subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', base, '-c', 'CREATE DATABASE ' + cls.dbname],
                       check=True, capture_output=True, timeout=60)
        cls.db_url = re.sub(r'/[^/?]*$', '/' + cls.dbname, base)
        subprocess.run([gt.coffer_api(), 'migrate', '--db-url', cls.db_url, '--log-level', 'warn'], check=True,
                       capture_output=True, timeout=120)
        cls.server = gt.Server(cls.db_url, {'auth.api_key_secret': secrets.token_hex(32),
                                            'secrets.key': secrets.token_hex(32)})
        cls.ch = gt.wait_ready(cls.server.target)
        cls.admin = cls.server.token
        cls.clients = client_pb2_grpc.ClientServiceStub(cls.ch)
        cls.users = user_pb2_grpc.UserServiceStub(cls.ch)
        cls.deposits = deposit_pb2_grpc.DepositServiceStub(cls.ch)
        cls.withdrawals = withdrawal_pb2_grpc.WithdrawalServiceStub(cls.ch)
        cls.ops = operations_pb2_grpc.OperationsServiceStub(cls.ch)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        cls.server.close()
        subprocess.run(['psql', '-X', '-q', os.environ['COFFER_PG_ADMIN_URL'], '-c',
                        'DROP DATABASE IF EXISTS %s WITH (FORCE)' % cls.dbname], capture_output=True, timeout=60)

    def sql(self, statement):
        r = subprocess.run(['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', self.db_url, '-c', statement],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError('psql: ' + r.stderr)
        return r.stdout.strip()

    def verify(self):
        return call(self.ops.VerifyAuditChain, operations_pb2.VerifyAuditChainRequest(), md(self.admin), timeout=60)

    def bad_chains(self, a):
        return {c.chain: (c.first_bad_id, c.detail) for c in a.chains if c.first_bad_id}

    def untriggered(self, statements):
        """Runs statements with the append-only trigger switched off for
        this transaction only (the superuser's way around it)."""
        self.sql("BEGIN; ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change; %s; "
                 "ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_change; COMMIT" % statements)

    def test_tamper_is_found(self):
        cid, key = self.register()
        self.configure(key)
        u = self.user(key)
        d = self.deposit(key, u, usdc(10))
        self.deposit(key, u, usdc(20))  # a row after the tampered one
        cid2, key2 = self.register()    # a second client: a chain of its own
        self.configure(key2)
        self.deposit(key2, self.user(key2), usdc(5))
        self.assert_invariants()
        a = self.verify()
        chains = {c.chain: c for c in a.chains}
        self.assertIn(cid, chains)
        self.assertIn(cid2, chains)
        self.assertEqual(chains['legacy'].entries, 0)  # this database was created after migration 0005
        self.assertEqual(sum(c.entries for c in a.chains), a.entries_checked)
        self.assertEqual(chains[cid].head_hash,
                         self.sql("SELECT encode(hash, 'hex') FROM audit_log WHERE client_id = '%s' "
                                  "ORDER BY chain_seq DESC LIMIT 1" % cid))
        checkpoint = a.head_hash
        self.assertEqual(len(checkpoint), 64)
        row = self.sql("SELECT id FROM audit_log WHERE entity_id = '%s' AND action = 'deposit.completed'" % d.order_id)
        original = self.sql("SELECT details::text FROM audit_log WHERE id = %s" % row)
        tampered = original.replace('"amount": "%d"' % usdc(10), '"amount": "%d"' % usdc(10000))
        self.assertNotEqual(tampered, original)
        # The trigger refuses the change even to the superuser; it switches
        # the trigger off for this transaction only.
        with self.assertRaises(RuntimeError):
            self.sql("UPDATE audit_log SET details = details WHERE id = %s" % row)
        esc = lambda s: s.replace("'", "''")  # noqa: E731
        self.untriggered("UPDATE audit_log SET details = '%s'::jsonb WHERE id = %s" % (esc(tampered), row))
        a = self.verify()
        self.assertFalse(a.ok)
        self.assertEqual(a.first_bad_id, int(row))
        self.assertIn('row %s' % row, a.detail)
        self.assertIn(cid, a.detail)
        self.assertEqual(a.bad_chains, 1)
        self.assertEqual(list(self.bad_chains(a)), [cid])  # the other client's chain still verifies
        r = call(self.ops.CheckInvariants, operations_pb2.CheckInvariantsRequest(), md(self.admin), timeout=60)
        self.assertIn('audit_chain', [v.invariant for v in r.violations])
        self.untriggered("UPDATE audit_log SET details = '%s'::jsonb WHERE id = %s" % (esc(original), row))
        a = self.verify()
        self.assertTrue(a.ok, a.detail)
        self.assertEqual(a.head_hash, checkpoint)

        # A row moved to another client's chain is found in both chains:
        # its hash covers client_id, and the chain it left has a gap.
        seq, prev, h = self.sql("SELECT chain_seq || ' ' || encode(prev_hash, 'hex') || ' ' || encode(hash, 'hex') "
                                "FROM audit_log WHERE id = %s" % row).split()
        self.untriggered("UPDATE audit_log SET client_id = '%s', chain_seq = chain_seq + 1000 WHERE id = %s"
                         % (cid2, row))
        a = self.verify()
        self.assertFalse(a.ok)
        self.assertEqual(a.first_bad_id, int(row))
        self.assertEqual(a.bad_chains, 2)
        bad = self.bad_chains(a)
        self.assertEqual(bad[cid2][0], int(row))
        self.assertGreater(bad[cid][0], int(row))
        self.assertIn('removed', bad[cid][1])
        # ... also when it is forged onto the other chain's head (next
        # position, prev_hash and hash recomputed): ids order a chain.
        self.untriggered(
            "UPDATE audit_log a SET chain_seq = h.chain_seq + 1, prev_hash = h.hash FROM (SELECT chain_seq, hash "
            "FROM audit_log WHERE client_id = '{c2}' AND id <> {r} ORDER BY chain_seq DESC LIMIT 1) h "
            "WHERE a.id = {r}; UPDATE audit_log SET hash = sha256(prev_hash || convert_to(audit_log_canonical_v2("
            "chain_seq, id, at, actor, client_id, action, entity_type, entity_id, details), 'UTF8')) "
            "WHERE id = {r}".format(c2=cid2, r=row))
        a = self.verify()
        self.assertEqual(a.first_bad_id, int(row))
        self.assertEqual(set(self.bad_chains(a)), {cid, cid2})
        self.untriggered("UPDATE audit_log SET client_id = '%s', chain_seq = %s, prev_hash = '\\x%s', "
                         "hash = '\\x%s' WHERE id = %s" % (cid, seq, prev, h, row))
        a = self.verify()
        self.assertTrue(a.ok, a.detail)
        self.assertEqual(a.head_hash, checkpoint)

        # A deleted row is found too: the chain's next row comes too early
        # and its prev_hash no longer matches.
        self.untriggered("DELETE FROM audit_log WHERE id = %s" % row)
        a = self.verify()
        self.assertFalse(a.ok)
        self.assertGreater(a.first_bad_id, int(row))
        self.assertIn('removed', a.detail)
        self.assertEqual(list(self.bad_chains(a)), [cid])
        self.assertNotEqual(a.head_hash, checkpoint)


if __name__ == '__main__':
    unittest.main(verbosity=2)
