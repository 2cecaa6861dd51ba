"""The chain flows (issue 6) through an independent client (grpcio) against
the stack's coffer-api, anvil and the test contracts (docs/test-chain.md):
a client's custodial wallet (from the signer at RegisterClient) is funded
with test USDC; a crypto deposit is seen by deposit_watch and credited only
at the confirmation depth (evm.confirmations = 2 in the stack), an
unmatched transfer is kept; staking supplies to Aave, Comet and the
ERC-4626 vault by strategy and moves idle → deployed only when confirmed;
time passes and accrual raises the index by the exact on-chain growth with
fee shares; a withdrawal unstakes, burns and pays out by ERC-20 transfer
(checked on chain); a supply that fails changes no book; treasury
execution deploys from the wallet's free balance. CheckInvariants (nonces
contiguous included) is clean after each flow.

The protocols are registered under fixed names for the stack's USDC; this
file runs its tests one after the other (the chain is shared: each test
uses its own client and wallet)."""
import json
import os
import re
import secrets
import time
import unittest
import urllib.request

import grpc_testlib as gt
from grpc_testlib import grpc

from coffer.v1 import (client_pb2, client_pb2_grpc, common_pb2, deposit_pb2, deposit_pb2_grpc,  # noqa: E402
                       operations_pb2, operations_pb2_grpc, treasury_pb2, treasury_pb2_grpc, user_pb2,
                       user_pb2_grpc, withdrawal_pb2, withdrawal_pb2_grpc)
from google.protobuf import wrappers_pb2  # noqa: E402

WAD = 10 ** 18
S = common_pb2


def uniq(prefix):
    return '%s-%s' % (prefix, secrets.token_hex(6))


def md(token, idem=None):
    m = [('authorization', 'Bearer ' + token)]
    if idem:
        m.append(('idempotency-key', idem))
    return tuple(m)


def call(fn, req, metadata, timeout=90):
    end = time.monotonic() + 120
    while True:
        try:
            return fn(req, metadata=metadata, timeout=timeout)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > end:
                raise
            time.sleep(1.0)


class Chain:
    """JSON-RPC to the stack's anvil (urllib; the funder is unlocked)."""

    def __init__(self, url, funder):
        self.url = url
        self.funder = funder
        self.id = 0

    def rpc(self, method, params):
        self.id += 1
        body = json.dumps({'jsonrpc': '2.0', 'id': self.id, 'method': method, 'params': params}).encode()
        req = urllib.request.Request(self.url, body, {'content-type': 'application/json'})
        with urllib.request.urlopen(req, timeout=30) as r:
            ans = json.loads(r.read())
        if 'error' in ans:
            raise AssertionError('%s: %s' % (method, ans['error']))
        return ans['result']

    def send(self, to, data='0x', value=0):
        h = self.rpc('eth_sendTransaction', [{'from': self.funder, 'to': to, 'data': data, 'value': hex(value)}])
        for _ in range(100):
            rc = self.rpc('eth_getTransactionReceipt', [h])
            if rc:
                break
            time.sleep(0.05)
        assert rc and rc['status'] == '0x1', rc
        return rc

    def call_uint(self, to, data, block='latest'):
        r = self.rpc('eth_call', [{'to': to, 'data': data}, block if isinstance(block, str) else hex(block)])
        return int(r, 16)

    def mine(self, n=1):
        for _ in range(n):
            self.rpc('evm_mine', [])

    def head(self):
        return int(self.rpc('eth_blockNumber', []), 16)


def word(v):
    return '%064x' % v


def addr_word(a):
    return '0' * 24 + a[2:].lower()


def mint(usdc, to, amount):
    return '0x40c10f19' + addr_word(to) + word(amount)


def balance_of(who):
    return '0x70a08231' + addr_word(who)


class ChainFlowTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        gt.require_stack()
        if not os.environ.get('COFFER_SIGNER_SOCKET') or not os.environ.get('COFFER_EVM_USDC'):
            raise unittest.SkipTest('the stack has no signer or no test contracts')
        cls.ch = gt.wait_ready(os.environ['COFFER_GRPC'])
        cls.admin = os.environ['COFFER_ADMIN_TOKEN']
        cls.clients = client_pb2_grpc.ClientServiceStub(cls.ch)
        cls.users = user_pb2_grpc.UserServiceStub(cls.ch)
        cls.deposits = deposit_pb2_grpc.DepositServiceStub(cls.ch)
        cls.withdrawals = withdrawal_pb2_grpc.WithdrawalServiceStub(cls.ch)
        cls.ops = operations_pb2_grpc.OperationsServiceStub(cls.ch)
        cls.treasury = treasury_pb2_grpc.TreasuryServiceStub(cls.ch)
        cls.chain_id = int(os.environ['COFFER_EVM_CHAIN_ID'])
        cls.usdc = os.environ['COFFER_EVM_USDC'].lower()
        cls.pool = os.environ['COFFER_EVM_AAVE_POOL'].lower()
        cls.atoken = os.environ['COFFER_EVM_AAVE_ATOKEN'].lower()
        cls.comet = os.environ['COFFER_EVM_COMET'].lower()
        cls.vault4626 = os.environ['COFFER_EVM_VAULT4626'].lower()
        # anvil's first development account: the funder and deployer
        cls.evm = Chain(os.environ['COFFER_EVM_RPC'], '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266')
        cls.protocols = {
            'aave-test': (operations_pb2.PROTOCOL_ADAPTER_AAVE_V3, S.STRATEGY_CATEGORY_LENDING,
                          {'pool': cls.pool, 'a_token': cls.atoken}),
            'comet-test': (operations_pb2.PROTOCOL_ADAPTER_COMPOUND_V3, S.STRATEGY_CATEGORY_LENDING,
                           {'comet': cls.comet}),
            'vault4626-test': (operations_pb2.PROTOCOL_ADAPTER_ERC4626, S.STRATEGY_CATEGORY_STAKING,
                               {'vault': cls.vault4626}),
        }
        for name in cls.protocols:
            cls.upsert(name, True)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()

    @classmethod
    def upsert(cls, name, active, adapter=None, category=None, addresses=None):
        a, c, ad = cls.protocols.get(name, (adapter, category, addresses))
        p = operations_pb2.Protocol(name=name, chain_id=cls.chain_id, category=category or c, adapter=adapter or a,
                                    token_address=cls.usdc, addresses=addresses or ad, apy_bps=500, active=active)
        call(cls.ops.UpsertProtocol, operations_pb2.UpsertProtocolRequest(protocol=p), md(cls.admin))

    # -- helpers ----------------------------------------------------------------

    def register(self):
        req = client_pb2.RegisterClientRequest(product_id=uniq('chain'), company_name='Chain Test',
                                               business_type='payments', webhook_url='https://c.example/hooks')
        req.platform_fee_bps.CopyFrom(wrappers_pb2.UInt32Value(value=100))
        req.end_user_yield_bps.CopyFrom(wrappers_pb2.UInt32Value(value=9000))
        r = call(self.clients.RegisterClient, req, md(self.admin))
        self.assertRegex(r.wallet_address, r'^0x[0-9a-fA-F]{40}$')
        wallet = r.wallet_address.lower()
        self.evm.send(wallet, value=10 ** 18)  # gas money
        return r.client.client_id, r.api_key, wallet

    def configure(self, key, lending=6000, staking=4000):
        strategies = [S.StrategyTarget(category=S.STRATEGY_CATEGORY_LENDING, target_bps=lending)]
        if staking:
            strategies.append(S.StrategyTarget(category=S.STRATEGY_CATEGORY_STAKING, target_bps=staking))
        req = client_pb2.ConfigureVaultRequest(chain_id=self.chain_id, token_address=self.usdc, token_symbol='USDC',
                                               token_decimals=6, strategies=strategies,
                                               profit_unlock_seconds=wrappers_pb2.UInt32Value(value=0))
        return call(self.clients.ConfigureVault, req, md(key)).vault.vault_id

    def user(self, key):
        cuid = uniq('user')
        call(self.users.CreateUser, user_pb2.CreateUserRequest(client_user_id=cuid, email='u@example.com'), md(key))
        return cuid

    def job(self, name, vault_id=''):
        return call(self.ops.RunJob, operations_pb2.RunJobRequest(name=name, vault_id=vault_id), md(self.admin),
                    timeout=120)

    def vault(self, client_id, vault_id):
        r = call(self.ops.ListAllVaults, operations_pb2.ListAllVaultsRequest(client_id=client_id), md(self.admin))
        return [v for v in r.vaults if v.vault_id == vault_id][0]

    def settle(self):
        """Mines past the confirmation depth and runs receipts."""
        self.evm.mine(2)
        return self.job('receipts')

    def assert_invariants(self, vault_id=''):
        r = call(self.ops.CheckInvariants, operations_pb2.CheckInvariantsRequest(vault_id=vault_id), md(self.admin),
                 timeout=60)
        self.assertEqual([(v.invariant, v.vault_id, v.detail) for v in r.violations], [])

    def chain_txs(self, key):
        return call(self.treasury.ListChainTransactions, treasury_pb2.ListChainTransactionsRequest(limit=500),
                    md(key)).transactions

    def fund_deposit(self, key, wallet, cuid, amount):
        d = call(self.deposits.CreateCryptoDeposit,
                 deposit_pb2.CreateCryptoDepositRequest(client_user_id=cuid, chain_id=self.chain_id,
                                                        token_symbol='USDC', amount=str(amount)), md(key)).deposit
        self.assertEqual(d.deposit_address.lower(), wallet)
        self.evm.send(self.usdc, mint(self.usdc, wallet, amount))
        return d

    def get_deposit(self, key, order_id):
        return call(self.deposits.GetDeposit, deposit_pb2.GetDepositRequest(order_id=order_id), md(key)).deposit

    def onchain_positions(self, wallet, block):
        a = self.evm.call_uint(self.atoken, balance_of(wallet), block)
        c = self.evm.call_uint(self.comet, balance_of(wallet), block)
        shares = self.evm.call_uint(self.vault4626, balance_of(wallet), block)
        v = self.evm.call_uint(self.vault4626, '0x07a2d13a' + word(shares), block) if shares else 0
        return a, c, v

    # -- the flows ---------------------------------------------------------------

    def test_1_deposit_stake_accrue_withdraw(self):
        cid, key, wallet = self.register()
        vid = self.configure(key)
        cuid = self.user(key)
        amount = 1000 * 10 ** 6
        d = self.fund_deposit(key, wallet, cuid, amount)
        self.job('deposit_watch')
        got = self.get_deposit(key, d.order_id)
        self.assertEqual(got.status, S.ORDER_STATUS_PROVIDER_CONFIRMING)  # seen, not deep enough
        # an unmatched transfer (nobody asked for 7 USDC), which also mines the block that makes the depth
        self.evm.send(self.usdc, mint(self.usdc, wallet, 7 * 10 ** 6))
        r = self.job('deposit_watch')
        self.assertIn(d.order_id, r.report)
        got = self.get_deposit(key, d.order_id)
        self.assertEqual(got.status, S.ORDER_STATUS_COMPLETED)
        again = self.job('deposit_watch')  # credits at most once
        self.assertNotIn('%s: credited' % d.order_id, again.report)
        v = self.vault(cid, vid)
        self.assertEqual(int(v.idle_assets), amount)
        self.assert_invariants(vid)

        # staking: lending 60 % over Aave and Comet, staking 40 % into the 4626 vault
        r = self.job('staking', vid)
        self.assertEqual(r.items_done, 3, r.report)
        v = self.vault(cid, vid)
        # the last supply has no block on top yet: not deployed before its confirmation
        self.assertLess(int(v.deployed_assets), amount)
        self.settle()
        v = self.vault(cid, vid)
        self.assertEqual((int(v.idle_assets), int(v.deployed_assets)), (0, amount))
        head = self.evm.head()
        a, c, s4626 = self.onchain_positions(wallet, head)
        # Aave and Comet round the entry in their favour: at most a unit below
        self.assertTrue(300 * 10 ** 6 - 1 <= a <= 300 * 10 ** 6 and 300 * 10 ** 6 - 1 <= c <= 300 * 10 ** 6, (a, c))
        self.assertLessEqual(s4626, 400 * 10 ** 6)
        txs = self.chain_txs(key)
        self.assertEqual(sorted(t.kind for t in txs), ['approve'] * 3 + ['supply'] * 3)
        self.assertTrue(all(t.status == 'confirmed' for t in txs), [(t.kind, t.status, t.error) for t in txs])
        nonces = sorted(t.nonce for t in txs)
        self.assertEqual(nonces, list(range(nonces[0], nonces[0] + 6)))
        self.assert_invariants(vid)

        # time passes: 30 days of Aave and Comet interest, and a 4626 donation
        self.evm.rpc('evm_increaseTime', [30 * 86400])
        self.evm.send(self.vault4626, '0x' + self._selector('simulateYield(uint256)') + word(5 * 10 ** 6))
        self.evm.mine()
        before = self.vault(cid, vid)
        r = self.job('accrual', vid)
        self.assertEqual(r.items_done, 1, r.report)
        block = int(re.search(r'at block (\d+)', r.report).group(1))
        a, c, s4626 = self.onchain_positions(wallet, block)
        observed = a + c + s4626
        after = self.vault(cid, vid)
        self.assertEqual(int(after.deployed_assets), observed)  # the exact on-chain value
        gross = observed - amount
        self.assertGreater(gross, 5 * 10 ** 6)
        nav = int(after.idle_assets) + int(after.deployed_assets) - int(after.withdrawals_payable)
        total = int(after.total_shares)
        self.assertEqual(int(after.current_index), nav * 10 ** 12 * WAD // total)
        # fee shares: end users keep 90 % of the gross yield
        user_value = int(before.total_shares) * nav // total
        self.assertLessEqual(abs(user_value - (amount + gross * 9000 // 10000)), 1)
        self.assertGreater(int(after.current_index), int(before.current_index))
        self.assert_invariants(vid)

        # a withdrawal of 500 USDC: unstake (smallest first), burn, pay out on chain
        dest = '0x' + secrets.token_hex(20)
        w = call(self.withdrawals.RequestWithdrawal,
                 withdrawal_pb2.RequestWithdrawalRequest(
                     client_user_id=cuid, chain_id=self.chain_id, token_symbol='USDC', amount=str(500 * 10 ** 6),
                     destination=withdrawal_pb2.Destination(type=withdrawal_pb2.DESTINATION_TYPE_CRYPTO_ADDRESS,
                                                            address=dest)), md(key)).withdrawal
        r = self.job('withdrawals', vid)
        self.assertIn('unstake', r.report)
        self.settle()
        v = self.vault(cid, vid)
        self.assertGreaterEqual(int(v.idle_assets), 500 * 10 ** 6)
        r = self.job('withdrawals', vid)
        self.assertIn('payout of', r.report)
        self.settle()
        got = call(self.withdrawals.GetWithdrawal, withdrawal_pb2.GetWithdrawalRequest(order_id=w.order_id),
                   md(key)).withdrawal
        self.assertEqual(got.status, S.ORDER_STATUS_COMPLETED)
        self.assertEqual(self.evm.call_uint(self.usdc, balance_of(dest)), 500 * 10 ** 6)
        unmatched = gt.psql(os.environ['COFFER_PG_ADMIN_URL'].rsplit('/', 1)[0] + '/coffer',
                            "SELECT amount FROM unmatched_transfers WHERE client_id = '%s'" % cid).strip()
        self.assertEqual(unmatched, str(7 * 10 ** 6))
        self.assert_invariants(vid)

    def _selector(self, sig):
        import subprocess
        cast = os.path.join(gt.source_root(), '.deps', 'node', 'node_modules', '.bin', 'cast')
        return subprocess.run([cast, 'sig', sig], capture_output=True, text=True, check=True).stdout.strip()[2:]

    def test_2_failed_supply_changes_no_book(self):
        cid, key, wallet = self.register()
        vid = self.configure(key, lending=10000, staking=0)
        cuid = self.user(key)
        amount = 100 * 10 ** 6
        d = self.fund_deposit(key, wallet, cuid, amount)
        self.evm.mine(2)
        self.job('deposit_watch')
        self.assertEqual(self.get_deposit(key, d.order_id).status, S.ORDER_STATUS_COMPLETED)
        # only a broken lending protocol: an "Aave pool" that is the Comet (no such supply function)
        for name in ('aave-test', 'comet-test'):
            self.upsert(name, False)
        try:
            self.upsert('broken-aave-test', True, operations_pb2.PROTOCOL_ADAPTER_AAVE_V3,
                        S.STRATEGY_CATEGORY_LENDING, {'pool': self.comet, 'a_token': self.comet})
            r = self.job('staking', vid)
            self.assertEqual(r.items_done, 1, r.report)
            self.settle()
        finally:
            self.upsert('broken-aave-test', False, operations_pb2.PROTOCOL_ADAPTER_AAVE_V3,
                        S.STRATEGY_CATEGORY_LENDING, {'pool': self.comet, 'a_token': self.comet})
            for name in ('aave-test', 'comet-test'):
                self.upsert(name, True)
        txs = {t.kind: t for t in self.chain_txs(key)}
        self.assertEqual(txs['supply'].status, 'failed')
        self.assertIn('estimate', txs['supply'].error)
        self.assertEqual(txs['approve'].status, 'confirmed')
        v = self.vault(cid, vid)
        self.assertEqual((int(v.idle_assets), int(v.deployed_assets)), (amount, 0))
        self.assert_invariants(vid)
        # the next run stakes for real (the Comet keeps the unused allowance: no approve for it)
        r = self.job('staking', vid)
        self.assertEqual(r.items_done, 2, r.report)
        self.settle()
        v = self.vault(cid, vid)
        self.assertEqual((int(v.idle_assets), int(v.deployed_assets)), (0, amount))
        self.assert_invariants(vid)

    def test_3_treasury_execute(self):
        cid, key, wallet = self.register()
        self.configure(key)
        # the client's own money: not a deposit order (an unmatched transfer)
        self.evm.send(self.usdc, mint(self.usdc, wallet, 300 * 10 ** 6))
        r = call(self.treasury.ExecuteDeposit,
                 treasury_pb2.ExecuteDepositRequest(token='USDC', chain_id=self.chain_id, amount=str(200 * 10 ** 6),
                                                    risk_level=treasury_pb2.RISK_LEVEL_MODERATE),
                 md(key, uniq('idem'))).result
        self.assertFalse(r.partial_failure, r)
        self.assertEqual(int(r.total_deployed), 200 * 10 ** 6)
        by = {t.protocol: t for t in r.transactions}
        self.assertEqual(set(by), {'aave-test', 'comet-test', 'vault4626-test'})
        self.assertEqual(int(by['vault4626-test'].amount), 60 * 10 ** 6)  # 30 %
        self.assertEqual(int(by['aave-test'].amount) + int(by['comet-test'].amount), 140 * 10 ** 6)
        self.assertTrue(all(t.success and re.match(r'^0x[0-9a-f]{64}$', t.tx_hash) for t in r.transactions))
        self.assertGreater(int(r.total_gas_used), 0)
        # more than the free balance is refused, nothing sent
        with self.assertRaises(grpc.RpcError) as cm:
            call(self.treasury.ExecuteDeposit,
                 treasury_pb2.ExecuteDepositRequest(token='USDC', chain_id=self.chain_id, amount=str(500 * 10 ** 6),
                                                    risk_level=treasury_pb2.RISK_LEVEL_CONSERVATIVE), md(key))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.settle()
        w = call(self.treasury.ExecuteWithdrawal,
                 treasury_pb2.ExecuteWithdrawalRequest(token='USDC', chain_id=self.chain_id, withdrawals=[
                     treasury_pb2.ProtocolAmount(protocol='vault4626-test', amount=str(10 * 10 ** 6))]),
                 md(key, uniq('idem'))).result
        self.assertTrue(w.transactions[0].success, w)
        with self.assertRaises(grpc.RpcError) as cm:
            call(self.treasury.ExecuteWithdrawal,
                 treasury_pb2.ExecuteWithdrawalRequest(token='USDC', chain_id=self.chain_id, withdrawals=[
                     treasury_pb2.ProtocolAmount(protocol='aave-test', amount=str(10 ** 12))]), md(key))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.settle()
        self.assert_invariants()


if __name__ == '__main__':
    unittest.main(verbosity=2)
