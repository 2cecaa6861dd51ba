"""Custodial wallets through coffer-signer, and TreasuryService, through an
independent client (grpcio) against the stack's coffer-api: RegisterClient
generates a wallet (EIP-55 address, distinct per client, stored with its
sealed key, shown by GetClient and GetWallet), replays return the same
wallet, GetWallet and ListChainTransactions are tenant-scoped,
ListChainTransactions filters and pages; coffer-api signer-policy passes
coffer-signer policy-check and --check finds a difference. On a stack of
the test's own: the signer stopped makes RegisterClient UNAVAILABLE and
health NOT_SERVING, and both recover when it is back."""
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import unittest

import grpc_testlib as gt
from grpc_testlib import grpc

from coffer.v1 import client_pb2, client_pb2_grpc, treasury_pb2, treasury_pb2_grpc  # noqa: E402

gt.require_stack()

# ---- Keccak-256 (for EIP-55), small and slow, enough for a test ----
_RC = [0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000, 0x000000000000808B,
       0x0000000080000001, 0x8000000080008081, 0x8000000000008009, 0x000000000000008A, 0x0000000000000088,
       0x0000000080008009, 0x000000008000000A, 0x000000008000808B, 0x800000000000008B, 0x8000000000008089,
       0x8000000000008003, 0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
       0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008]
_ROT = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61], [28, 55, 25, 21, 56], [27, 20, 39, 8, 14]]
M64 = (1 << 64) - 1


def _rol(x, n):
    return ((x << n) | (x >> (64 - n))) & M64 if n else x


def keccak256(data):
    rate = 136
    msg = bytearray(data) + b'\x01'
    while len(msg) % rate:
        msg.append(0)
    msg[-1] |= 0x80
    s = [[0] * 5 for _ in range(5)]
    for off in range(0, len(msg), rate):
        for i in range(rate // 8):
            s[i % 5][i // 5] ^= int.from_bytes(msg[off + 8 * i:off + 8 * i + 8], 'little')
        for rnd in range(24):
            c = [s[x][0] ^ s[x][1] ^ s[x][2] ^ s[x][3] ^ s[x][4] for x in range(5)]
            d = [c[(x - 1) % 5] ^ _rol(c[(x + 1) % 5], 1) for x in range(5)]
            s = [[s[x][y] ^ d[x] for y in range(5)] for x in range(5)]
            b = [[0] * 5 for _ in range(5)]
            for x in range(5):
                for y in range(5):
                    b[y][(2 * x + 3 * y) % 5] = _rol(s[x][y], _ROT[x][y])
            s = [[b[x][y] ^ ((~b[(x + 1) % 5][y]) & b[(x + 2) % 5][y]) for y in range(5)] for x in range(5)]
            s[0][0] ^= _RC[rnd]
    out = b''
    for i in range(4):
        out += s[i % 5][i // 5].to_bytes(8, 'little')
    return out


def checksum(addr_hex40):
    low = addr_hex40.lower()
    h = keccak256(low.encode()).hex()
    return '0x' + ''.join(ch.upper() if ch.isalpha() and int(h[i], 16) >= 8 else ch for i, ch in enumerate(low))


def uniq(prefix):
    return '%s-%s' % (prefix, secrets.token_hex(6))


def md(token, idem=None):
    m = [('authorization', 'Bearer ' + token)]
    if idem:
        m.append(('idempotency-key', idem))
    return tuple(m)


def register(stub, admin, idem=None, pid=None):
    req = client_pb2.RegisterClientRequest(product_id=pid or uniq('tr'), company_name='Treasury Test',
                                           webhook_url='https://t.example/hooks')
    return stub.RegisterClient(req, metadata=md(admin, idem), timeout=20)


class WalletTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = os.environ
        cls.pg = os.environ['COFFER_PG_URL']
        cls.pg_admin = os.environ['COFFER_PG_ADMIN_URL'].rsplit('/', 1)[0] + '/coffer'
        cls.ch = gt.wait_ready(os.environ['COFFER_GRPC'])
        cls.clients = client_pb2_grpc.ClientServiceStub(cls.ch)
        cls.treasury = treasury_pb2_grpc.TreasuryServiceStub(cls.ch)
        cls.admin = os.environ['COFFER_ADMIN_TOKEN']

    def test_register_generates_a_stored_checksummed_wallet(self):
        a, b = register(self.clients, self.admin), register(self.clients, self.admin)
        for r in (a, b):
            self.assertRegex(r.wallet_address, r'^0x[0-9a-fA-F]{40}$')
            self.assertEqual(r.wallet_address, checksum(r.wallet_address[2:]))
            self.assertEqual(r.client.wallet_address, r.wallet_address)
            got = self.clients.GetClient(client_pb2.GetClientRequest(), metadata=md(r.api_key), timeout=10)
            self.assertEqual(got.client.wallet_address, r.wallet_address)
            w = self.treasury.GetWallet(treasury_pb2.GetWalletRequest(), metadata=md(r.api_key), timeout=10)
            self.assertEqual(w.wallet_address, r.wallet_address)
            # The stack's coffer-api has the chain configured: balances are read.
            self.assertTrue(w.balances_available, w.balances_error)
            self.assertEqual([b.balance for b in w.balances if b.token_symbol == 'native'], ['0'])
            row = gt.psql(self.pg_admin, "SELECT encode(wallet_address, 'hex'), octet_length(wallet_sealed_blob) "
                                         "FROM client_organizations WHERE id = '%s'" % r.client.client_id)
            addr, blob_len = row.split('|')
            self.assertEqual(addr, r.wallet_address[2:].lower())
            self.assertEqual(int(blob_len), 77)  # the signer's sealed key, never a plaintext key
        self.assertNotEqual(a.wallet_address.lower(), b.wallet_address.lower())
        # The signer audited the generation for this client id (owner).
        log = os.path.join(os.environ['COFFER_STACK_DIR'], 'signer', 'state', 'audit.log')
        if os.path.exists(log):
            with open(log) as f:
                text = f.read()
            self.assertIn('"owner":"%s"' % a.client.client_id, text)

    def test_replay_returns_the_same_wallet(self):
        pid, key = uniq('idem'), uniq('k')
        a = register(self.clients, self.admin, key, pid)
        b = register(self.clients, self.admin, key, pid)
        self.assertEqual(a.wallet_address, b.wallet_address)
        self.assertEqual(a, b)
        n = gt.psql(self.pg_admin, "SELECT count(*) FROM client_organizations WHERE product_id = '%s'" % pid)
        self.assertEqual(n, '1')
        # a second registration of the product is refused and stores no wallet
        with self.assertRaises(grpc.RpcError) as cm:
            register(self.clients, self.admin, None, pid)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.ALREADY_EXISTS)

    def test_get_wallet_is_tenant_scoped(self):
        a, b = register(self.clients, self.admin), register(self.clients, self.admin)
        wa = self.treasury.GetWallet(treasury_pb2.GetWalletRequest(), metadata=md(a.api_key), timeout=10)
        wb = self.treasury.GetWallet(treasury_pb2.GetWalletRequest(), metadata=md(b.api_key), timeout=10)
        self.assertEqual(wa.wallet_address, a.wallet_address)
        self.assertEqual(wb.wallet_address, b.wallet_address)
        with self.assertRaises(grpc.RpcError) as cm:
            self.treasury.GetWallet(treasury_pb2.GetWalletRequest(), metadata=md(self.admin), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        with self.assertRaises(grpc.RpcError) as cm:
            self.treasury.GetWallet(treasury_pb2.GetWalletRequest(), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

    def test_execute_validation(self):
        # Execute* run through the transaction lifecycle (test_grpc_chain.py has the flows); here only what is
        # refused before anything is looked up on chain.
        a = register(self.clients, self.admin)
        for req, want in ((treasury_pb2.ExecuteDepositRequest(token='USDC', chain_id=31337, amount='1'), 'risk_level'),
                          (treasury_pb2.ExecuteDepositRequest(token='USDC', chain_id=31337, amount='x',
                                                              risk_level=treasury_pb2.RISK_LEVEL_MODERATE), 'amount')):
            with self.assertRaises(grpc.RpcError) as cm:
                self.treasury.ExecuteDeposit(req, metadata=md(a.api_key, uniq('k')), timeout=30)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn(want, cm.exception.details())
        with self.assertRaises(grpc.RpcError) as cm:
            self.treasury.ExecuteWithdrawal(treasury_pb2.ExecuteWithdrawalRequest(token='USDC', chain_id=31337),
                                            metadata=md(a.api_key, uniq('k')), timeout=30)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def _insert_txs(self, client, protocol_id, n, status, kind='supply'):
        for i in range(n):
            gt.psql(self.pg_admin,
                    "INSERT INTO chain_transactions (client_id, chain_id, wallet_address, nonce, intent_key, kind, "
                    "protocol_id, to_address, status, created_at) VALUES ('%s', 31337, decode('%s', 'hex'), %d, "
                    "'%s', '%s', %s, decode('%s', 'hex'), '%s', now() - interval '%d seconds')"
                    % (client.client.client_id, client.wallet_address[2:], i, uniq('intent'), kind,
                       "'%s'" % protocol_id if protocol_id else 'NULL', '11' * 20, status, 100 - i))

    def test_list_chain_transactions(self):
        a, b = register(self.clients, self.admin), register(self.clients, self.admin)
        pname = uniq('aave').replace('-', '_')
        pid = gt.psql(self.pg_admin,
                      "INSERT INTO supported_protocols (name, chain_id, category, adapter, token_address, addresses) "
                      "VALUES ('%s', 31337, 'lending', 'aave_v3', decode('%s', 'hex'), "
                      "'{\"pool\": \"0x%s\"}') RETURNING id" % (pname, '22' * 20, '33' * 20)).splitlines()[0]
        self._insert_txs(a, pid, 5, 'created')
        self._insert_txs(a, None, 2, 'failed', kind='transfer')
        self._insert_txs(b, pid, 3, 'created')
        L = self.treasury.ListChainTransactions
        r = L(treasury_pb2.ListChainTransactionsRequest(), metadata=md(a.api_key), timeout=10)
        self.assertEqual(r.total, 7)
        self.assertEqual(len(r.transactions), 7)
        created = [t.created_at.ToMicroseconds() for t in r.transactions]
        self.assertEqual(created, sorted(created, reverse=True))  # newest first
        self.assertTrue(all(t.wallet_address == a.wallet_address for t in r.transactions))
        r = L(treasury_pb2.ListChainTransactionsRequest(protocol=pname), metadata=md(a.api_key), timeout=10)
        self.assertEqual((r.total, len(r.transactions)), (5, 5))
        self.assertTrue(all(t.protocol == pname and t.kind == 'supply' for t in r.transactions))
        r = L(treasury_pb2.ListChainTransactionsRequest(status='failed'), metadata=md(a.api_key), timeout=10)
        self.assertEqual((r.total, len(r.transactions)), (2, 2))
        self.assertTrue(all(t.protocol == '' for t in r.transactions))
        # paging
        seen = []
        for off in (0, 3, 6):
            r = L(treasury_pb2.ListChainTransactionsRequest(limit=3, offset=off), metadata=md(a.api_key), timeout=10)
            seen += [t.id for t in r.transactions]
        self.assertEqual(len(seen), 7)
        self.assertEqual(len(set(seen)), 7)
        # isolation: b sees its 3 only
        r = L(treasury_pb2.ListChainTransactionsRequest(), metadata=md(b.api_key), timeout=10)
        self.assertEqual(r.total, 3)
        self.assertFalse(set(t.id for t in r.transactions) & set(seen))
        for bad in (treasury_pb2.ListChainTransactionsRequest(limit=501),
                    treasury_pb2.ListChainTransactionsRequest(status='mined'),
                    treasury_pb2.ListChainTransactionsRequest(protocol='Bad Name'),
                    treasury_pb2.ListChainTransactionsRequest(offset=100001)):
            with self.assertRaises(grpc.RpcError) as cm:
                L(bad, metadata=md(a.api_key), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_signer_metrics(self):
        url = os.environ.get('COFFER_API_METRICS')
        if not url:
            self.skipTest('no metrics endpoint')
        import urllib.request
        register(self.clients, self.admin)
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        counts = [line for line in text.splitlines()
                  if line.startswith('coffer_signer_request_duration_seconds_count{result="ok"}')]
        self.assertTrue(counts and float(counts[0].split()[-1]) > 0, text[:2000])


class SignerPolicyTest(unittest.TestCase):
    """coffer-api signer-policy against the stack's database and test contracts."""

    def setUp(self):
        self.pg_admin = os.environ['COFFER_PG_ADMIN_URL'].rsplit('/', 1)[0] + '/coffer'
        self.dir = tempfile.mkdtemp(prefix='coffer-signer-policy-')
        self.chain = 990000 + secrets.randbelow(9000)  # a chain of this test's own
        e = os.environ
        self.usdc, self.pool = e['COFFER_EVM_USDC'], e['COFFER_EVM_AAVE_POOL']
        self.comet, self.vault = e['COFFER_EVM_COMET'], e['COFFER_EVM_VAULT4626']
        for name, adapter, key, addr in (('aave-t', 'aave_v3', 'pool', self.pool),
                                         ('comet-t', 'compound_v3', 'comet', self.comet),
                                         ('vault-t', 'erc4626', 'vault', self.vault)):
            gt.psql(self.pg_admin,
                    "INSERT INTO supported_protocols (name, chain_id, category, adapter, token_address, addresses) "
                    "VALUES ('%s', %d, 'lending', '%s', decode('%s', 'hex'), '{\"%s\": \"%s\"}')"
                    % (name, self.chain, adapter, self.usdc[2:], key, addr))
        gt.psql(self.pg_admin, "INSERT INTO supported_protocols (name, chain_id, category, adapter, token_address, "
                               "addresses, active) VALUES ('off', %d, 'lending', 'erc4626', decode('%s', 'hex'), "
                               "'{\"vault\": \"0x%s\"}', false)" % (self.chain, '44' * 20, '55' * 20))

    def tearDown(self):
        gt.psql(self.pg_admin, 'DELETE FROM supported_protocols WHERE chain_id = %d' % self.chain)
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_api(self, *args):
        env = dict(os.environ)
        env['COFFER_DB_URL'] = self.pg_admin
        return subprocess.run([gt.coffer_api(), 'signer-policy', '--chain', str(self.chain)] + list(args),
                              capture_output=True, text=True, timeout=60, env=env)

    def test_generate_check_and_diff(self):
        r = self.run_api()
        self.assertEqual(r.returncode, 0, r.stderr)
        pol = json.loads(r.stdout)
        self.assertEqual(pol['messages'], {'allow': False})
        (chain,) = pol['chains']
        self.assertEqual(chain['chain_id'], self.chain)
        self.assertEqual(chain['native']['max_value'], '0')
        self.assertEqual(chain['replacement'], {'min_bump_pct': 10, 'max_replacements': 5})
        by = {c['address']: c for c in chain['contracts']}
        low = lambda a: a.lower()  # noqa: E731
        self.assertEqual(set(by), {low(self.usdc), low(self.pool), low(self.comet), low(self.vault)})
        tok = by[low(self.usdc)]
        self.assertTrue(tok['erc20']['transfer_to_any'])
        self.assertIn('daily_limit', tok)
        self.assertEqual(sorted(tok['erc20']['approve_spenders']), sorted(map(low, (self.pool, self.comet, self.vault))))
        fns = {c['function']: c['args'] for c in by[low(self.pool)]['calls']}
        self.assertEqual(fns['supply(address,uint256,address,uint16)'], [[low(self.usdc)], 'any', 'self', 'any'])
        self.assertEqual(fns['withdraw(address,uint256,address)'], [[low(self.usdc)], 'any', 'self'])
        fns = {c['function']: c['args'] for c in by[low(self.vault)]['calls']}
        self.assertEqual(fns['redeem(uint256,address,address)'], ['any', 'self', 'self'])
        self.assertIn('supply(address,uint256)', {c['function'] for c in by[low(self.comet)]['calls']})
        # the signer accepts it
        path = os.path.join(self.dir, 'policy.json')
        with open(path, 'w') as f:
            f.write(r.stdout)
        os.chmod(path, 0o644)
        signer = os.path.join(gt.build_root(), 'signer', 'coffer-signer')
        pc = subprocess.run([signer, 'policy-check', path], capture_output=True, text=True, timeout=30)
        self.assertEqual(pc.returncode, 0, pc.stdout + pc.stderr)
        # --check: the same policy (reordered, other case) matches; a change is reported
        chain['contracts'].reverse()
        with open(path, 'w') as f:
            json.dump(pol, f)
        r = self.run_api('--check', path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        by[low(self.pool)]['calls'][0]['args'][2] = 'any'  # a free receiver: a drain
        del by[low(self.comet)]['calls'][1]
        chain['contracts'].append({'address': '0x' + '66' * 20, 'label': 'extra',
                                   'calls': [{'function': 'transfer(address,uint256)', 'args': ['any', 'any']}]})
        with open(path, 'w') as f:
            json.dump(pol, f)
        r = self.run_api('--check', path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(low(self.pool), r.stdout)
        self.assertIn(low(self.comet), r.stdout)
        self.assertIn('0x' + '66' * 20, r.stdout)
        self.assertIn('not expected', r.stdout)


class SignerRestartTest(unittest.TestCase):
    """The signer stopped and started again, on a stack of the test's own."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='coffer-signer-stack-')
        cls.stack = os.path.join(gt.source_root(), 'scripts', 'stack')
        r = subprocess.run([cls.stack, 'up', '--dir', cls.dir, '--build', gt.build_root()],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            subprocess.run([cls.stack, 'down', '--dir', cls.dir], capture_output=True, timeout=120)
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise RuntimeError('stack up failed:\n' + r.stdout + r.stderr)
        cls.env = gt.load_env(os.path.join(cls.dir, 'stack.env'))
        if 'COFFER_SIGNER_SOCKET' not in cls.env:
            raise unittest.SkipTest('the stack has no signer (not root)')

    @classmethod
    def tearDownClass(cls):
        subprocess.run([cls.stack, 'down', '--dir', cls.dir], capture_output=True, timeout=120)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_signer_down_then_back(self):
        ch = gt.wait_ready(self.env['COFFER_GRPC'])
        check = gt.health_check(ch)
        clients = client_pb2_grpc.ClientServiceStub(ch)
        admin = self.env['COFFER_ADMIN_TOKEN']
        self.assertEqual(check(gt.health_pb2.HealthCheckRequest(), timeout=5).status, gt.SERVING)
        register(clients, admin)
        conf = os.path.join(self.dir, 'signer', 'signer.conf')
        signer = os.path.join(gt.build_root(), 'signer', 'coffer-signer')
        pid = int(self.env['COFFER_SIGNER_PID'])
        os.kill(pid, 15)
        def gone():
            try:
                with open('/proc/%d/stat' % pid) as f:
                    return f.read().split()[2] == 'Z'
            except OSError:
                return True
        gt.wait_until(gone, 30)
        try:
            ok = gt.wait_until(
                lambda: check(gt.health_pb2.HealthCheckRequest(), timeout=5).status == gt.NOT_SERVING, 20)
            if not ok:
                with open(os.path.join(self.dir, 'coffer-api.log')) as f:
                    api_log = f.read()[-3000:]
                self.fail('still SERVING with the signer stopped; pid %d alive: %s\n%s'
                          % (pid, os.path.exists('/proc/%d' % pid), api_log))
            with self.assertRaises(grpc.RpcError) as cm:
                register(clients, admin)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertIn('coffer-signer', cm.exception.details())
        finally:
            log = open(os.path.join(self.dir, 'coffer-signer.log'), 'a')
            p = subprocess.Popen([signer, 'serve', '--config', conf], stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
            with open(os.path.join(self.dir, 'pids', 'coffer-signer.pid'), 'w') as f:
                f.write('%d\n' % p.pid)
        self.assertTrue(gt.wait_until(
            lambda: check(gt.health_pb2.HealthCheckRequest(), timeout=5).status == gt.SERVING, 30))
        deadline = time.time() + 20
        while True:  # the client's reconnect back-off may still hold for a moment
            try:
                r = register(clients, admin)
                break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.time() > deadline:
                    raise
                time.sleep(0.5)
        self.assertRegex(r.wallet_address, r'^0x[0-9a-fA-F]{40}$')


if __name__ == '__main__':
    unittest.main(verbosity=2)
