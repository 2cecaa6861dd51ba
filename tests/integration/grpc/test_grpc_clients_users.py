"""ClientService and UserService through an independent client (grpcio),
against the stack's coffer-api: happy paths, validation errors, tenant
isolation, authentication, idempotency (replay, mismatch, concurrent
duplicates) and, on a server of the test's own, rate limiting with
RetryInfo."""
import os
import secrets
import sys
import threading
import unittest

import grpc_testlib as gt
from grpc_testlib import grpc

from coffer.v1 import client_pb2, client_pb2_grpc, common_pb2, user_pb2, user_pb2_grpc  # noqa: E402
from google.protobuf import wrappers_pb2  # noqa: E402

INVALID = grpc.StatusCode.INVALID_ARGUMENT
USDC = '0x' + 'a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48'


def uniq(prefix):
    return '%s-%s' % (prefix, secrets.token_hex(6))


def md(token, idem=None):
    m = [('authorization', 'Bearer ' + token)]
    if idem:
        m.append(('idempotency-key', idem))
    return tuple(m)


def retry_info_ms(err):
    """RetryInfo delay (ms) from grpc-status-details-bin, or None."""
    for k, v in err.trailing_metadata() or ():
        if k != 'grpc-status-details-bin':
            continue
        try:
            from google.rpc import status_pb2, error_details_pb2
            st = status_pb2.Status.FromString(v)
            for d in st.details:
                if d.type_url.endswith('google.rpc.RetryInfo'):
                    ri = error_details_pb2.RetryInfo.FromString(d.value)
                    return ri.retry_delay.seconds * 1000 + ri.retry_delay.nanos // 1000000
        except ImportError:  # decode by hand: Status{3: Any{2: RetryInfo{1: Duration{1, 2}}}}
            return _hand_retry_ms(v)
    return None


def _fields(buf):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        else:
            raise ValueError('wire type %d' % wt)
        yield num, val


def _varint(buf, i):
    shift = val = 0
    while True:
        b = buf[i]
        i += 1
        val |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return val, i


def _hand_retry_ms(v):
    for num, any_ in _fields(v):
        if num != 3:
            continue
        f = dict(_fields(any_))
        if b'RetryInfo' not in f.get(1, b''):
            continue
        dur = dict(_fields(dict(_fields(f[2])).get(1, b'')))
        return dur.get(1, 0) * 1000 + dur.get(2, 0) // 1000000
    return None


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        gt.require_stack()
        cls.ch = gt.wait_ready(os.environ['COFFER_GRPC'])
        cls.admin = os.environ['COFFER_ADMIN_TOKEN']
        cls.clients = client_pb2_grpc.ClientServiceStub(cls.ch)
        cls.users = user_pb2_grpc.UserServiceStub(cls.ch)

    def register(self, **kw):
        req = client_pb2.RegisterClientRequest(product_id=kw.pop('product_id', uniq('prod')),
                                               company_name=kw.pop('company_name', 'Acme Payments'),
                                               business_type='payments',
                                               webhook_url=kw.pop('webhook_url', 'https://acme.example/hooks'),
                                               **kw)
        return self.clients.RegisterClient(req, metadata=md(self.admin), timeout=20)

    def code_of(self, fn, *a, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*a, **kw)
        return cm.exception.code(), cm.exception.details()


class ClientServiceTest(Base):
    def test_register_and_get(self):
        r = self.register(environment=client_pb2.ENVIRONMENT_TEST)
        self.assertRegex(r.api_key, r'^ck_test_[0-9a-f]{64}$')
        self.assertRegex(r.webhook_secret, r'^whsec_[0-9a-f]{64}$')
        self.assertRegex(r.wallet_address, r'^0x[0-9a-fA-F]{40}$')  # the custodial wallet (test_grpc_treasury.py)
        self.assertEqual(r.client.platform_fee_bps, 100)
        self.assertEqual(r.client.end_user_yield_bps, 9000)
        self.assertEqual(r.client.status, 'active')
        g = self.clients.GetClient(client_pb2.GetClientRequest(), metadata=md(r.api_key), timeout=10).client
        self.assertEqual(g.client_id, r.client.client_id)
        self.assertEqual(len(g.api_keys), 1)
        self.assertEqual(g.api_keys[0].prefix, r.api_key[:16])
        self.assertFalse(g.api_keys[0].HasField('expires_at'))
        self.assertNotIn(r.api_key[16:], str(g))
        self.assertNotIn(r.webhook_secret[6:], str(g))

    def test_register_fees_and_duplicate(self):
        pid = uniq('dup')
        r = self.register(product_id=pid, platform_fee_bps=wrappers_pb2.UInt32Value(value=0),
                          end_user_yield_bps=wrappers_pb2.UInt32Value(value=10000))
        self.assertEqual(r.client.platform_fee_bps, 0)
        self.assertEqual(r.client.end_user_yield_bps, 10000)
        self.assertRegex(r.api_key, r'^ck_live_')
        code, msg = self.code_of(self.register, product_id=pid)
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS)
        self.assertIn(pid, msg)

    def test_register_validation(self):
        cases = [
            (dict(product_id='Bad'), 'product_id'),
            (dict(product_id=''), 'product_id'),
            (dict(product_id='-x'), 'product_id'),
            (dict(product_id='x' * 65), 'product_id'),
            (dict(company_name=''), 'company_name'),
            (dict(company_name='x' * 201), 'company_name'),
            (dict(company_name='a\nb'), 'company_name'),
            (dict(webhook_url='ftp://x'), 'webhook_url'),
            (dict(webhook_url='http://acme.example/h'), 'webhook_url'),
            (dict(webhook_url='https://user@acme.example/'), 'webhook_url'),
            (dict(webhook_url='https:///x'), 'webhook_url'),
            (dict(platform_fee_bps=wrappers_pb2.UInt32Value(value=10001)), 'platform_fee_bps'),
            (dict(end_user_yield_bps=wrappers_pb2.UInt32Value(value=10001)), 'end_user_yield_bps'),
            (dict(platform_fee_bps=wrappers_pb2.UInt32Value(value=2000),
                  end_user_yield_bps=wrappers_pb2.UInt32Value(value=9000)), 'must be at most 10000'),
            (dict(environment=7), 'environment'),
        ]
        for kw, word in cases:
            code, msg = self.code_of(self.register, **kw)
            self.assertEqual(code, INVALID, kw)
            self.assertIn(word, msg, kw)
        r = self.register(webhook_url='http://127.0.0.1:8080/hook')
        self.assertEqual(r.client.webhook_url, 'http://127.0.0.1:8080/hook')

    def test_auth(self):
        r = self.register()
        # a client may not call an admin method
        with self.assertRaises(grpc.RpcError) as cm:
            self.clients.RegisterClient(client_pb2.RegisterClientRequest(product_id=uniq('p'), company_name='x',
                                                                         webhook_url='https://x.example'),
                                        metadata=md(r.api_key), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        for bad in ('ck_live_' + '0' * 64, 'ck_live_short', r.api_key[:-1] + ('0' if r.api_key[-1] != '0' else '1')):
            code, _ = self.code_of(self.clients.GetClient, client_pb2.GetClientRequest(), metadata=md(bad), timeout=10)
            self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED)
        code, _ = self.code_of(self.clients.GetClient, client_pb2.GetClientRequest(), timeout=10)
        self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED)
        # the admin is not a client
        code, _ = self.code_of(self.clients.GetClient, client_pb2.GetClientRequest(), metadata=md(self.admin),
                               timeout=10)
        self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED)

    def test_rotate(self):
        r = self.register()
        old = r.api_key
        rot = self.clients.RotateApiKey(client_pb2.RotateApiKeyRequest(), metadata=md(old), timeout=10)
        self.assertRegex(rot.api_key, r'^ck_live_[0-9a-f]{64}$')
        self.assertNotEqual(rot.api_key, old)
        self.assertGreater(rot.old_key_expires_at.seconds, 0)
        # both work during the grace period (default 24h)
        for k in (old, rot.api_key):
            self.clients.GetClient(client_pb2.GetClientRequest(), metadata=md(k), timeout=10)
        g = self.clients.GetClient(client_pb2.GetClientRequest(), metadata=md(rot.api_key), timeout=10).client
        self.assertEqual(len(g.api_keys), 2)
        # rotate again with no grace: every older key stops now
        rot2 = self.clients.RotateApiKey(client_pb2.RotateApiKeyRequest(
            grace_seconds=wrappers_pb2.UInt32Value(value=0)), metadata=md(rot.api_key), timeout=10)
        for k in (old, rot.api_key):
            code, _ = self.code_of(self.clients.GetClient, client_pb2.GetClientRequest(), metadata=md(k), timeout=10)
            self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED)
        self.clients.GetClient(client_pb2.GetClientRequest(), metadata=md(rot2.api_key), timeout=10)
        code, msg = self.code_of(self.clients.RotateApiKey, client_pb2.RotateApiKeyRequest(
            grace_seconds=wrappers_pb2.UInt32Value(value=31 * 86400)), metadata=md(rot2.api_key), timeout=10)
        self.assertEqual(code, INVALID)
        self.assertIn('grace_seconds', msg)

    def vault_req(self, **kw):
        d = dict(chain_id=1, token_address=USDC, token_symbol='USDC', token_decimals=6,
                 strategies=[common_pb2.StrategyTarget(category=common_pb2.STRATEGY_CATEGORY_LENDING, target_bps=7000),
                             common_pb2.StrategyTarget(category=common_pb2.STRATEGY_CATEGORY_LP, target_bps=3000)])
        d.update(kw)
        return client_pb2.ConfigureVaultRequest(**d)

    def test_vaults(self):
        r = self.register()
        k = r.api_key
        v = self.clients.ConfigureVault(self.vault_req(), metadata=md(k), timeout=10)
        self.assertTrue(v.created)
        self.assertEqual(v.vault.current_index, '1000000000000000000')
        self.assertEqual(v.vault.total_shares, '0')
        self.assertEqual(v.vault.status, common_pb2.VAULT_STATUS_ACTIVE)
        self.assertEqual(v.vault.token_address, USDC)
        self.assertEqual(v.vault.apy_7d, 0.0)
        self.assertEqual(sorted((s.category, s.target_bps) for s in v.vault.strategies),
                         [(common_pb2.STRATEGY_CATEGORY_LENDING, 7000), (common_pb2.STRATEGY_CATEGORY_LP, 3000)])
        # replace the strategy
        v2 = self.clients.ConfigureVault(self.vault_req(
            token_address=USDC.upper().replace('0X', '0x'),
            strategies=[common_pb2.StrategyTarget(category=common_pb2.STRATEGY_CATEGORY_STAKING, target_bps=10000)],
            profit_unlock_seconds=wrappers_pb2.UInt32Value(value=3600)), metadata=md(k), timeout=10)
        self.assertFalse(v2.created)
        self.assertEqual(v2.vault.vault_id, v.vault.vault_id)
        self.assertEqual(v2.vault.profit_unlock_seconds, 3600)
        self.assertEqual([(s.category, s.target_bps) for s in v2.vault.strategies],
                         [(common_pb2.STRATEGY_CATEGORY_STAKING, 10000)])
        lst = self.clients.ListVaults(client_pb2.ListVaultsRequest(), metadata=md(k), timeout=10)
        self.assertEqual([x.vault_id for x in lst.vaults], [v.vault.vault_id])
        # decimals cannot change; another token cannot reuse the symbol on the chain
        code, msg = self.code_of(self.clients.ConfigureVault, self.vault_req(token_decimals=18), metadata=md(k),
                                 timeout=10)
        self.assertEqual(code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn('token_decimals', msg)
        code, msg = self.code_of(self.clients.ConfigureVault, self.vault_req(token_address='0x' + '11' * 20),
                                 metadata=md(k), timeout=10)
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS)
        # another client sees none of it
        other = self.register()
        self.assertEqual(len(self.clients.ListVaults(client_pb2.ListVaultsRequest(), metadata=md(other.api_key),
                                                     timeout=10).vaults), 0)

    def test_vault_validation(self):
        k = self.register().api_key
        L, LP = common_pb2.STRATEGY_CATEGORY_LENDING, common_pb2.STRATEGY_CATEGORY_LP
        T = common_pb2.StrategyTarget
        cases = [
            (dict(chain_id=0), 'chain_id'),
            (dict(token_address='0x1234'), 'token_address'),
            (dict(token_address='1x' + '1' * 40), 'token_address'),
            (dict(token_symbol=''), 'token_symbol'),
            (dict(token_symbol='US DC'), 'token_symbol'),
            (dict(token_symbol='X' * 17), 'token_symbol'),
            (dict(token_decimals=19), 'token_decimals'),
            (dict(strategies=[]), 'strategies'),
            (dict(strategies=[T(category=L, target_bps=5000), T(category=L, target_bps=5000)]), 'more than once'),
            (dict(strategies=[T(category=L, target_bps=5000), T(category=LP, target_bps=4000)]), 'sum to 10000'),
            (dict(strategies=[T(category=0, target_bps=10000)]), 'category'),
            (dict(strategies=[T(category=L, target_bps=10001)]), 'target_bps'),
            (dict(profit_unlock_seconds=wrappers_pb2.UInt32Value(value=40000000)), 'profit_unlock_seconds'),
        ]
        for kw, word in cases:
            code, msg = self.code_of(self.clients.ConfigureVault, self.vault_req(**kw), metadata=md(k), timeout=10)
            self.assertEqual(code, INVALID, kw)
            self.assertIn(word, msg, kw)


class IdempotencyTest(Base):
    def req(self, pid):
        return client_pb2.RegisterClientRequest(product_id=pid, company_name='Idem Co',
                                                webhook_url='https://idem.example/h')

    def test_replay_and_mismatch(self):
        pid, key = uniq('idem'), uniq('k')
        a = self.clients.RegisterClient(self.req(pid), metadata=md(self.admin, key), timeout=20)
        b = self.clients.RegisterClient(self.req(pid), metadata=md(self.admin, key), timeout=20)
        self.assertEqual(a, b)  # the first answer, api key and webhook secret included
        self.clients.GetClient(client_pb2.GetClientRequest(), metadata=md(b.api_key), timeout=10)
        code, msg = self.code_of(self.clients.RegisterClient, self.req(uniq('other')), metadata=md(self.admin, key),
                                 timeout=20)
        self.assertEqual(code, INVALID)
        self.assertIn('idempotency-key', msg)
        # keys are per caller: a client's key space is its own
        u1 = self.users.CreateUser(user_pb2.CreateUserRequest(client_user_id='u1'), metadata=md(a.api_key, key),
                                   timeout=10)
        u2 = self.users.CreateUser(user_pb2.CreateUserRequest(client_user_id='u1'), metadata=md(a.api_key, key),
                                   timeout=10)
        self.assertEqual(u1, u2)
        self.assertTrue(u2.created)  # replayed: the first answer
        code, _ = self.code_of(self.users.CreateUser, user_pb2.CreateUserRequest(client_user_id='u2'),
                               metadata=md(a.api_key, key), timeout=10)
        self.assertEqual(code, INVALID)

    def test_concurrent_duplicates(self):
        pid, key = uniq('conc'), uniq('k')
        results, errors = [], []

        def call():
            try:
                results.append(self.clients.RegisterClient(self.req(pid), metadata=md(self.admin, key), timeout=30))
            except grpc.RpcError as e:
                errors.append((e.code(), e.details()))
        ts = [threading.Thread(target=call) for _ in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 20)
        self.assertEqual(len({r.SerializeToString() for r in results}), 1)
        # one client registered (the superuser URL bypasses row-level security)
        n = gt.psql(os.environ['COFFER_PG_ADMIN_URL'].rsplit('/', 1)[0] + '/coffer',
                    "SELECT count(*) FROM client_organizations WHERE product_id = '%s'" % pid)
        self.assertEqual(n, '1')


class UserServiceTest(Base):
    def test_users(self):
        c = self.register()
        k = c.api_key
        r = self.users.CreateUser(user_pb2.CreateUserRequest(client_user_id='alice', email='a@x.example',
                                                             wallet_address='0x' + 'AB' * 20,
                                                             user_type=user_pb2.USER_TYPE_BUSINESS),
                                  metadata=md(k), timeout=10)
        self.assertTrue(r.created)
        self.assertEqual(r.user.wallet_address, '0x' + 'ab' * 20)
        self.assertEqual(r.user.user_type, user_pb2.USER_TYPE_BUSINESS)
        again = self.users.CreateUser(user_pb2.CreateUserRequest(client_user_id='alice', email='a@x.example',
                                                                 wallet_address='0x' + 'ab' * 20,
                                                                 user_type=user_pb2.USER_TYPE_BUSINESS),
                                      metadata=md(k), timeout=10)
        self.assertFalse(again.created)
        self.assertEqual(again.user, r.user)
        code, msg = self.code_of(self.users.CreateUser, user_pb2.CreateUserRequest(
            client_user_id='alice', email='other@x.example', wallet_address='0x' + 'ab' * 20,
            user_type=user_pb2.USER_TYPE_BUSINESS), metadata=md(k), timeout=10)
        self.assertEqual(code, grpc.StatusCode.ALREADY_EXISTS)
        self.assertIn('email', msg)
        g = self.users.GetUser(user_pb2.GetUserRequest(client_user_id='alice'), metadata=md(k), timeout=10)
        self.assertEqual(g.user, r.user)
        p = self.users.GetPortfolio(user_pb2.GetPortfolioRequest(client_user_id='alice'), metadata=md(k), timeout=10)
        self.assertEqual(p.client_user_id, 'alice')
        self.assertEqual(len(p.vaults), 0)
        self.assertEqual(p.totals.total_value, '0')
        self.assertEqual(p.totals.yield_earned, '0')
        # tenant isolation: another client cannot see alice
        other = self.register().api_key
        for fn, req in ((self.users.GetUser, user_pb2.GetUserRequest(client_user_id='alice')),
                        (self.users.GetPortfolio, user_pb2.GetPortfolioRequest(client_user_id='alice'))):
            code, _ = self.code_of(fn, req, metadata=md(other), timeout=10)
            self.assertEqual(code, grpc.StatusCode.NOT_FOUND)
        # the same client_user_id is another user for another client
        o = self.users.CreateUser(user_pb2.CreateUserRequest(client_user_id='alice'), metadata=md(other), timeout=10)
        self.assertTrue(o.created)
        self.assertNotEqual(o.user.user_id, r.user.user_id)
        code, _ = self.code_of(self.users.GetUser, user_pb2.GetUserRequest(client_user_id='nobody'), metadata=md(k),
                               timeout=10)
        self.assertEqual(code, grpc.StatusCode.NOT_FOUND)

    def test_user_validation(self):
        k = self.register().api_key
        cases = [
            (dict(client_user_id=''), 'client_user_id'),
            (dict(client_user_id='a b'), 'client_user_id'),
            (dict(client_user_id='a/b'), 'client_user_id'),
            (dict(client_user_id='x' * 129), 'client_user_id'),
            (dict(client_user_id='u', email='nope'), 'email'),
            (dict(client_user_id='u', email='@x'), 'email'),
            (dict(client_user_id='u', wallet_address='0x12'), 'wallet_address'),
            (dict(client_user_id='u', user_type=9), 'user_type'),
        ]
        for kw, word in cases:
            code, msg = self.code_of(self.users.CreateUser, user_pb2.CreateUserRequest(**kw), metadata=md(k),
                                     timeout=10)
            self.assertEqual(code, INVALID, kw)
            self.assertIn(word, msg, kw)
        for fn, req in ((self.users.GetUser, user_pb2.GetUserRequest()),
                        (self.users.GetPortfolio, user_pb2.GetPortfolioRequest())):
            code, _ = self.code_of(fn, req, metadata=md(k), timeout=10)
            self.assertEqual(code, INVALID)


class RateLimitTest(unittest.TestCase):
    def test_write_limit_with_retry_info(self):
        gt.require_stack()
        srv = gt.Server(os.environ['COFFER_PG_URL'], {'rate.write_per_minute': '3', 'rate.read_per_minute': '1000'})
        try:
            ch = gt.wait_ready(srv.target)
            clients = client_pb2_grpc.ClientServiceStub(ch)
            users = user_pb2_grpc.UserServiceStub(ch)
            r = clients.RegisterClient(client_pb2.RegisterClientRequest(
                product_id=uniq('rl'), company_name='Rate Co', webhook_url='https://rate.example/h'),
                metadata=md(srv.token), timeout=20)
            for i in range(3):
                users.CreateUser(user_pb2.CreateUserRequest(client_user_id='u%d' % i), metadata=md(r.api_key),
                                 timeout=10)
            with self.assertRaises(grpc.RpcError) as cm:
                users.CreateUser(user_pb2.CreateUserRequest(client_user_id='u9'), metadata=md(r.api_key), timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            delay = retry_info_ms(cm.exception)
            self.assertIsNotNone(delay)
            self.assertGreater(delay, 0)
            self.assertLessEqual(delay, 20000)
            # reads are another class
            clients.GetClient(client_pb2.GetClientRequest(), metadata=md(r.api_key), timeout=10)
        finally:
            srv.terminate()
            srv.close()


if __name__ == '__main__':
    unittest.main(argv=[sys.argv[0], '-v'])
