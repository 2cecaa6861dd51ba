"""Helpers for the chain fault tests (issue 6): a throwaway stack of the
test's own (PostgreSQL, anvil with the test contracts, coffer-signer,
coffer-api: they stop, crash and rewind things the shared stack's other
suites rely on), a JSON-RPC client for its anvil, a controllable JSON-RPC
proxy in front of anvil (forward, hang, fail or rewrite chosen methods),
coffer-api servers of the test's own on the stack's database, and the
gRPC flows (client, vault, user, crypto deposit, jobs, invariants)."""
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc_testlib as gt
from grpc_testlib import grpc

from coffer.v1 import (client_pb2, client_pb2_grpc, common_pb2, deposit_pb2, deposit_pb2_grpc,  # noqa: E402
                       operations_pb2, operations_pb2_grpc, treasury_pb2, treasury_pb2_grpc, user_pb2,
                       user_pb2_grpc, withdrawal_pb2, withdrawal_pb2_grpc)
from google.protobuf import wrappers_pb2  # noqa: E402

S = common_pb2
FUNDER = '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266'  # anvil's first account: funder and deployer
TRANSFER_TOPIC = '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef'
SEL = {
    'mint': '40c10f19', 'balanceOf': '70a08231', 'transfer': 'a9059cbb', 'setPaused': '16c38b3c',
    'convertToAssets': '07a2d13a', 'totalSupply': '18160ddd',
}


def uniq(prefix):
    return '%s-%s' % (prefix, secrets.token_hex(6))


def word(v):
    return '%064x' % v


def addr_word(a):
    return '0' * 24 + a[2:].lower()


def md(token, idem=None):
    m = [('authorization', 'Bearer ' + token)]
    if idem:
        m.append(('idempotency-key', idem))
    return tuple(m)


def call(fn, req, metadata, timeout=90):
    end = time.monotonic() + 60
    while True:
        try:
            return fn(req, metadata=metadata, timeout=timeout)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > end:
                raise
            time.sleep(0.5)


class Chain:
    """JSON-RPC to an anvil (urllib; the funder is unlocked)."""

    def __init__(self, url):
        self.url = url
        self.id = 0
        self.lock = threading.Lock()

    def rpc(self, method, params=()):
        with self.lock:
            self.id += 1
            n = self.id
        body = json.dumps({'jsonrpc': '2.0', 'id': n, 'method': method, 'params': list(params)}).encode()
        req = urllib.request.Request(self.url, body, {'content-type': 'application/json'})
        with urllib.request.urlopen(req, timeout=30) as r:
            ans = json.loads(r.read())
        if 'error' in ans:
            raise AssertionError('%s: %s' % (method, ans['error']))
        return ans['result']

    def send(self, to, data='0x', value=0, wait=True, tip=None):
        tx = {'from': FUNDER, 'to': to, 'data': data, 'value': hex(value)}
        if tip is not None:
            tx['maxPriorityFeePerGas'] = hex(tip)
            tx['maxFeePerGas'] = hex(tip + 100 * 10 ** 9)
        h = self.rpc('eth_sendTransaction', [tx])
        if not wait:
            return h
        for _ in range(200):
            rc = self.rpc('eth_getTransactionReceipt', [h])
            if rc:
                break
            time.sleep(0.05)
        assert rc and rc['status'] == '0x1', rc
        return rc

    def call_uint(self, to, data, block='latest'):
        r = self.rpc('eth_call', [{'to': to, 'data': data}, block if isinstance(block, str) else hex(block)])
        return int(r, 16)

    def balance(self, token, who):
        return self.call_uint(token, '0x' + SEL['balanceOf'] + addr_word(who))

    def mint(self, token, to, amount, wait=True):
        return self.send(token, '0x' + SEL['mint'] + addr_word(to) + word(amount), wait=wait)

    def mine(self, n=1):
        for _ in range(n):
            self.rpc('evm_mine')

    def head(self):
        return int(self.rpc('eth_blockNumber'), 16)

    def nonce(self, who, block='latest'):
        return int(self.rpc('eth_getTransactionCount', [who, block]), 16)

    def automine(self, on):
        self.rpc('evm_setAutomine', [on])

    def txs_from(self, sender, first=0):
        """Hashes of the mined transactions sent by sender (lowercase), in order."""
        out = []
        for n in range(first, self.head() + 1):
            b = self.rpc('eth_getBlockByNumber', [hex(n), True])
            for tx in b['transactions']:
                if tx['from'].lower() == sender.lower():
                    out.append((int(tx['nonce'], 16), tx['hash'].lower(), n))
        return out


class Stack:
    """scripts/stack up in a directory of the test's own; down at close."""

    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.script = os.path.join(gt.source_root(), 'scripts', 'stack')
        r = subprocess.run([self.script, 'up', '--dir', self.dir, '--build', gt.build_root()],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            self.close()
            raise RuntimeError('stack up failed:\n' + r.stdout + r.stderr)
        self.env = gt.load_env(os.path.join(self.dir, 'stack.env'))
        self.chain = Chain(self.env['COFFER_EVM_RPC'])
        self.chain_id = int(self.env['COFFER_EVM_CHAIN_ID'])
        self.pg_admin = self.env['COFFER_PG_ADMIN_URL'].rsplit('/', 1)[0] + '/coffer'
        self.usdc = self.env['COFFER_EVM_USDC'].lower()
        self.pool = self.env['COFFER_EVM_AAVE_POOL'].lower()
        self.atoken = self.env['COFFER_EVM_AAVE_ATOKEN'].lower()
        self.comet = self.env['COFFER_EVM_COMET'].lower()
        self.vault4626 = self.env['COFFER_EVM_VAULT4626'].lower()

    def close(self):
        subprocess.run([self.script, 'down', '--dir', self.dir], capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, q):
        return gt.psql(self.pg_admin, q)

    def audit_lines(self):
        with open(os.path.join(self.dir, 'signer', 'state', 'audit.log')) as f:
            return [json.loads(line) for line in f if line.strip()]

    def server(self, endpoints=None, **settings):
        """A coffer-api of the test's own on this stack's database, signer
        and (by default) anvil. settings: config keys with '_' for '.'."""
        conf = {
            'signer.socket': self.env['COFFER_SIGNER_SOCKET'],
            'evm.endpoints': ', '.join(endpoints or [self.env['COFFER_EVM_RPC']]),
            'evm.chain_id': str(self.chain_id),
            'evm.confirmations': '2',
            'evm.min_priority_fee': '0',
            'evm.replace_after': '60s',
            'treasury.wait': '30s',
            'jobs.scheduler': 'false',
        }
        for k, v in settings.items():
            conf[k.replace('__', '.')] = str(v)
        return gt.Server(self.env['COFFER_PG_URL'], conf)


class Proxy:
    """A JSON-RPC proxy in front of upstream. rule(method, request) decides
    per request: None forwards; 'hang' holds the request until release()
    (the caller never gets an answer unless it goes away); ('status', N)
    answers HTTP N; ('body', bytes) answers HTTP 200 with those bytes;
    ('result', value) answers a proper JSON-RPC result. rewrite(method,
    request, answer) may change a forwarded answer (a dict)."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.rule = lambda method, req: None
        self.rewrite = None
        self.seen = []
        self.hung = threading.Event()
        self.release_ev = threading.Event()
        self.lock = threading.Lock()
        proxy = self

        class H(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('content-length', '0')))
                try:
                    req = json.loads(body)
                    method = req.get('method', '')
                except ValueError:
                    req, method = {}, ''
                with proxy.lock:
                    proxy.seen.append(method)
                act = proxy.rule(method, req)
                if act == 'hang':
                    proxy.hung.set()
                    proxy.release_ev.wait(120)
                    self.close_connection = True
                    return
                if isinstance(act, tuple) and act[0] == 'status':
                    self._answer(act[1], b'{"oops": true}')
                    return
                if isinstance(act, tuple) and act[0] == 'body':
                    self._answer(200, act[1])
                    return
                if isinstance(act, tuple) and act[0] == 'result':
                    self._answer(200, json.dumps({'jsonrpc': '2.0', 'id': req.get('id'),
                                                  'result': act[1]}).encode())
                    return
                up = urllib.request.Request(proxy.upstream, body, {'content-type': 'application/json'})
                with urllib.request.urlopen(up, timeout=30) as r:
                    out = r.read()
                if proxy.rewrite:
                    ans = json.loads(out)
                    ans = proxy.rewrite(method, req, ans)
                    out = json.dumps(ans).encode()
                self._answer(200, out)

            def _answer(self, code, data):
                self.send_response(code)
                self.send_header('content-type', 'application/json')
                self.send_header('content-length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.httpd.daemon_threads = True
        self.url = 'http://127.0.0.1:%d' % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, method):
        with self.lock:
            return self.seen.count(method)

    def release(self):
        self.release_ev.set()

    def close(self):
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()


def kill9(server):
    """kill -9 of a coffer-api of the test's own; keeps its log readable."""
    server.proc.kill()
    server.proc.wait()
    server.log.flush()
    return server.log_text()


def metrics_url(server):
    m = re.search(r'event=serve\.metrics .*?port=(\d+)', server.log_text())
    return 'http://127.0.0.1:%s/metrics' % m.group(1) if m else None


class Api:
    """The gRPC flows against one coffer-api (target) as admin and clients."""

    def __init__(self, stack, target, admin):
        self.stack = stack
        self.ch = gt.wait_ready(target)
        self.admin = admin
        self.clients = client_pb2_grpc.ClientServiceStub(self.ch)
        self.users = user_pb2_grpc.UserServiceStub(self.ch)
        self.deposits = deposit_pb2_grpc.DepositServiceStub(self.ch)
        self.withdrawals = withdrawal_pb2_grpc.WithdrawalServiceStub(self.ch)
        self.ops = operations_pb2_grpc.OperationsServiceStub(self.ch)
        self.treasury = treasury_pb2_grpc.TreasuryServiceStub(self.ch)

    def close(self):
        self.ch.close()

    def upsert(self, name, adapter, category, addresses, active=True, token=None):
        p = operations_pb2.Protocol(name=name, chain_id=self.stack.chain_id, category=category, adapter=adapter,
                                    token_address=token or self.stack.usdc, addresses=addresses, apy_bps=500,
                                    active=active)
        call(self.ops.UpsertProtocol, operations_pb2.UpsertProtocolRequest(protocol=p), md(self.admin))

    def standard_protocols(self):
        st = self.stack
        self.upsert('aave-test', operations_pb2.PROTOCOL_ADAPTER_AAVE_V3, S.STRATEGY_CATEGORY_LENDING,
                    {'pool': st.pool, 'a_token': st.atoken})
        self.upsert('comet-test', operations_pb2.PROTOCOL_ADAPTER_COMPOUND_V3, S.STRATEGY_CATEGORY_LENDING,
                    {'comet': st.comet})
        self.upsert('vault4626-test', operations_pb2.PROTOCOL_ADAPTER_ERC4626, S.STRATEGY_CATEGORY_STAKING,
                    {'vault': st.vault4626})

    def register(self, gas=True):
        req = client_pb2.RegisterClientRequest(product_id=uniq('chain'), company_name='Chain Fault Test',
                                               business_type='payments', webhook_url='https://c.example/hooks')
        req.platform_fee_bps.CopyFrom(wrappers_pb2.UInt32Value(value=100))
        req.end_user_yield_bps.CopyFrom(wrappers_pb2.UInt32Value(value=9000))
        r = call(self.clients.RegisterClient, req, md(self.admin))
        wallet = r.wallet_address.lower()
        if gas:
            self.stack.chain.send(wallet, value=10 ** 18)
        return r.client.client_id, r.api_key, wallet

    def configure(self, key, lending=6000, staking=4000):
        strategies = [S.StrategyTarget(category=S.STRATEGY_CATEGORY_LENDING, target_bps=lending)]
        if staking:
            strategies.append(S.StrategyTarget(category=S.STRATEGY_CATEGORY_STAKING, target_bps=staking))
        req = client_pb2.ConfigureVaultRequest(chain_id=self.stack.chain_id, token_address=self.stack.usdc,
                                               token_symbol='USDC', token_decimals=6, strategies=strategies,
                                               profit_unlock_seconds=wrappers_pb2.UInt32Value(value=0))
        return call(self.clients.ConfigureVault, req, md(key)).vault.vault_id

    def user(self, key):
        cuid = uniq('user')
        call(self.users.CreateUser, user_pb2.CreateUserRequest(client_user_id=cuid, email='u@example.com'), md(key))
        return cuid

    def crypto_deposit(self, key, cuid, amount):
        return call(self.deposits.CreateCryptoDeposit,
                    deposit_pb2.CreateCryptoDepositRequest(client_user_id=cuid, chain_id=self.stack.chain_id,
                                                           token_symbol='USDC', amount=str(amount)), md(key)).deposit

    def deposit(self, key, order_id):
        return call(self.deposits.GetDeposit, deposit_pb2.GetDepositRequest(order_id=order_id), md(key)).deposit

    def withdraw(self, key, cuid, amount, dest):
        return call(self.withdrawals.RequestWithdrawal,
                    withdrawal_pb2.RequestWithdrawalRequest(
                        client_user_id=cuid, chain_id=self.stack.chain_id, token_symbol='USDC', amount=str(amount),
                        destination=withdrawal_pb2.Destination(type=withdrawal_pb2.DESTINATION_TYPE_CRYPTO_ADDRESS,
                                                               address=dest)), md(key, uniq('w'))).withdrawal

    def withdrawal(self, key, order_id):
        return call(self.withdrawals.GetWithdrawal, withdrawal_pb2.GetWithdrawalRequest(order_id=order_id),
                    md(key)).withdrawal

    def job(self, name, vault_id='', timeout=120):
        return call(self.ops.RunJob, operations_pb2.RunJobRequest(name=name, vault_id=vault_id), md(self.admin),
                    timeout=timeout)

    def vault(self, client_id, vault_id):
        r = call(self.ops.ListAllVaults, operations_pb2.ListAllVaultsRequest(client_id=client_id), md(self.admin))
        return [v for v in r.vaults if v.vault_id == vault_id][0]

    def violations(self, vault_id=''):
        r = call(self.ops.CheckInvariants, operations_pb2.CheckInvariantsRequest(vault_id=vault_id), md(self.admin),
                 timeout=60)
        return [(v.invariant, v.vault_id, v.detail) for v in r.violations]

    def chain_txs(self, key):
        return call(self.treasury.ListChainTransactions, treasury_pb2.ListChainTransactionsRequest(limit=500),
                    md(key)).transactions

    def funded_vault(self, amount, lending=6000, staking=4000):
        """A new client with a vault and one credited crypto deposit of amount."""
        cid, key, wallet = self.register()
        vid = self.configure(key, lending, staking)
        cuid = self.user(key)
        d = self.crypto_deposit(key, cuid, amount)
        self.stack.chain.mint(self.stack.usdc, wallet, amount)
        self.stack.chain.mine(2)
        self.job('deposit_watch')
        got = self.deposit(key, d.order_id)
        assert got.status == S.ORDER_STATUS_COMPLETED, got
        return cid, key, wallet, vid, cuid


class StackTest(unittest.TestCase):
    """A test case class with a stack of its own (setUpClass) and an Api on
    its coffer-api."""
    stack_prefix = 'coffer-chain-'

    @classmethod
    def setUpClass(cls):
        gt.require_stack()
        if os.geteuid() != 0:
            raise unittest.SkipTest('the signer of a stack of its own needs root')
        cls.stack = Stack(cls.stack_prefix)
        try:
            cls.api = Api(cls.stack, cls.stack.env['COFFER_GRPC'], cls.stack.env['COFFER_ADMIN_TOKEN'])
            cls.api.standard_protocols()
        except Exception:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.api.close()
        cls.stack.close()

    def assert_clean(self, vault_id=''):
        self.assertEqual(self.api.violations(vault_id), [])

    def own_api(self, server):
        a = Api(self.stack, server.target, server.token)
        self.addCleanup(a.close)
        return a
