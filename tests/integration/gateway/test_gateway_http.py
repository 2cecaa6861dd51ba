#!/usr/bin/python3
"""coffer-gateway in the stack (scripts/stack up: COFFER_HTTP in front of
COFFER_GRPC), driven by curl: every public route of API.md that exists,
status codes, JSON shapes, the mapping rules, headers and limits.

Every annotated route (every path and method /openapi.json lists) must be
exercised at least once with a success (200 and the answer's JSON shape)
and at least once with a failure (a 4xx and a google.rpc.Status):
RouteCoverageTest, which runs last, fails the suite for a route nobody
called. Calls go through expect(), which checks and records them.

Adding a method: add rows to ROUTES (method, path, body, who, expected
status, and a shape: the JSON keys and kinds the answer must have; who is
None, 'admin', 'bad' or 'client', a client registered for the table) for
what needs no state, and a step to GatewayFlowsTest for what does (the
flows run in API order: register a client with the admin token, use its
API key, configure a vault, create users, deposit, withdraw, operate)."""
import json
import os
import secrets
import time
import unittest
from datetime import datetime, timezone

import gw_testlib as t

t.require_stack()
HTTP = os.environ['COFFER_HTTP']
ADMIN = os.environ.get('COFFER_ADMIN_TOKEN', '')
CHAIN = os.environ.get('COFFER_EVM_CHAIN_ID', '31337')


GET_INFO_SHAPE = {'version': 'string', 'commit': 'string', 'uptimeSeconds': 'int64', 'components': 'list',
                  'schemaVersion': 'int'}
COMPONENT_SHAPE = {'name': 'string', 'status': 'enum', 'detail': 'string', 'latencyUs': 'int64'}
DIAGNOSE_SHAPE = {'acquireUs': 'int64', 'roundTripUs': 'int64', 'heldMs': 'int64', 'holdCompleted': 'bool',
                  'serverVersion': 'string', 'poolSize': 'int', 'poolOpen': 'int', 'poolIdle': 'int',
                  'poolWaiting': 'int', 'poolConnects': 'int64', 'poolDiscarded': 'int64'}
STATUS_SHAPE = {'code': 'int', 'message': 'string', 'details': 'list'}

# proto/coffer/v1/*.proto in proto3 JSON (lowerCamelCase, every field written, unset messages null)
VAULT = {'vaultId': 'string', 'chainId': 'int64', 'tokenAddress': 'address', 'tokenSymbol': 'string',
         'tokenDecimals': 'int', 'currentIndex': 'decimal', 'totalShares': 'decimal', 'idleAssets': 'decimal',
         'deployedAssets': 'decimal', 'withdrawalsPayable': 'decimal', 'totalAssets': 'decimal',
         'lockedProfit': 'decimal', 'profitUnlockSeconds': 'int', 'apy7d': 'double', 'apy30d': 'double',
         'status': 'enum', 'pausedReason': 'string', 'strategies': [{'category': 'enum', 'targetBps': 'int'}],
         'clientId': 'string', 'createdAt': 'timestamp'}
API_KEY_INFO = {'prefix': 'string', 'createdAt': 'timestamp', 'expiresAt': 'timestamp?'}
CLIENT = {'clientId': 'string', 'productId': 'string', 'companyName': 'string', 'businessType': 'string',
          'webhookUrl': 'string', 'platformFeeBps': 'int', 'endUserYieldBps': 'int', 'environment': 'enum',
          'status': 'string', 'walletAddress': 'address', 'createdAt': 'timestamp', 'apiKeys': [API_KEY_INFO]}
REGISTER_SHAPE = {'client': CLIENT, 'apiKey': 'string', 'webhookSecret': 'string', 'walletAddress': 'address'}
GET_CLIENT_SHAPE = {'client': CLIENT}
ROTATE_SHAPE = {'apiKey': 'string', 'oldKeyExpiresAt': 'timestamp'}
CONFIGURE_SHAPE = {'vault': VAULT, 'created': 'bool'}
VAULTS_SHAPE = {'vaults': [VAULT]}
USER = {'userId': 'string', 'clientUserId': 'string', 'userType': 'enum', 'email': 'string',
        'walletAddress': 'address?', 'createdAt': 'timestamp'}
CREATE_USER_SHAPE = {'user': USER, 'created': 'bool'}
GET_USER_SHAPE = {'user': USER}
POSITION = {'vaultId': 'string', 'chainId': 'int64', 'tokenSymbol': 'string', 'tokenDecimals': 'int',
            'shares': 'decimal', 'reservedShares': 'decimal', 'effectiveBalance': 'decimal',
            'availableBalance': 'decimal', 'totalDeposited': 'decimal', 'totalWithdrawn': 'decimal',
            'yieldEarned': 'signed', 'weightedEntryIndex': 'decimal', 'currentIndex': 'decimal',
            'yieldPercentage': 'double', 'apy7d': 'double', 'apy30d': 'double'}
TOTALS = {'totalValue': 'decimal', 'totalDeposited': 'decimal', 'totalWithdrawn': 'decimal',
          'yieldEarned': 'signed', 'yieldPercentage': 'double'}
PORTFOLIO_SHAPE = {'clientUserId': 'string', 'vaults': [POSITION], 'totals': TOTALS}
DEPOSIT = {'orderId': 'string', 'clientUserId': 'string', 'vaultId': 'string', 'chainId': 'int64',
           'tokenSymbol': 'string', 'kind': 'enum', 'amount': 'decimal', 'creditedAmount': 'decimal?',
           'sharesMinted': 'decimal?', 'indexAtCredit': 'decimal?', 'status': 'enum', 'subStatus': 'string',
           'depositAddress': 'address?', 'txHash': 'hash?', 'createdAt': 'timestamp', 'updatedAt': 'timestamp',
           'completedAt': 'timestamp?', 'expiresAt': 'timestamp?', 'clientId': 'string'}
DEPOSIT_SHAPE = {'deposit': DEPOSIT}
DEPOSITS_SHAPE = {'deposits': [DEPOSIT], 'nextPageToken': 'string'}
DESTINATION = {'type': 'enum', 'address': 'address?', 'details': 'strmap'}
WITHDRAWAL = {'orderId': 'string', 'clientUserId': 'string', 'vaultId': 'string', 'chainId': 'int64',
              'tokenSymbol': 'string', 'amount': 'decimal', 'sharesReserved': 'decimal', 'sharesBurned': 'decimal?',
              'indexAtBurn': 'decimal?', 'destination': DESTINATION, 'status': 'enum', 'subStatus': 'string',
              'failureReason': 'string', 'estimatedCompletion': 'timestamp?', 'payoutReference': 'string',
              'createdAt': 'timestamp', 'updatedAt': 'timestamp', 'completedAt': 'timestamp?', 'clientId': 'string'}
WITHDRAWAL_SHAPE = {'withdrawal': WITHDRAWAL}
WITHDRAWALS_SHAPE = {'withdrawals': [WITHDRAWAL], 'nextPageToken': 'string'}
WALLET_SHAPE = {'walletAddress': 'address', 'balancesAvailable': 'bool', 'balancesError': 'string',
                'balances': [{'chainId': 'int64', 'tokenSymbol': 'string', 'tokenAddress': 'address?',
                              'tokenDecimals': 'int', 'balance': 'decimal'}]}
EXECUTION = {'result': {'totalDeployed': 'decimal', 'totalGasUsed': 'decimal', 'partialFailure': 'bool',
                        'failedProtocols': 'strings', 'timestamp': 'timestamp',
                        'transactions': [{'protocol': 'string', 'success': 'bool', 'txHash': 'hash?',
                                          'amount': 'decimal', 'error': 'string'}]}}
CHAIN_TX = {'id': 'string', 'chainId': 'int64', 'walletAddress': 'address', 'nonce': 'int64', 'kind': 'string',
            'protocol': 'string', 'toAddress': 'address', 'value': 'decimal', 'status': 'string', 'txHash': 'hash?',
            'blockNumber': 'int64', 'confirmations': 'int', 'error': 'string', 'replacedBy': 'string',
            'createdAt': 'timestamp', 'updatedAt': 'timestamp'}
CHAIN_TXS_SHAPE = {'transactions': [CHAIN_TX], 'total': 'int'}
RUN_JOB_SHAPE = {'name': 'string', 'itemsDone': 'int', 'itemsFailed': 'int', 'itemsSkipped': 'int',
                 'report': 'string', 'durationMs': 'int64'}
ACCRUE_SHAPE = {'vault': VAULT, 'indexBefore': 'decimal', 'grossYield': 'decimal', 'loss': 'decimal',
                'clientFeeShares': 'decimal', 'platformFeeShares': 'decimal', 'lockedProfit': 'decimal',
                'paused': 'bool'}
REALIZE_SHAPE = {'vault': VAULT, 'loss': 'decimal', 'absorbedByLockedProfit': 'decimal',
                 'absorbedBySurplus': 'decimal', 'absorbedByHolders': 'decimal', 'indexBefore': 'decimal'}
PAUSE_SHAPE = {'vault': VAULT}
INVARIANTS_SHAPE = {'violations': [{'invariant': 'string', 'vaultId': 'string', 'detail': 'string'}],
                    'vaultsChecked': 'int'}
AUDIT_SHAPE = {'entries': [{'id': 'int64', 'at': 'timestamp', 'actor': 'string', 'clientId': 'string',
                            'action': 'string', 'entityType': 'string', 'entityId': 'string',
                            'detailsJson': 'string', 'prevHash': 'string', 'hash': 'string', 'chainSeq': 'int64'}],
               'nextPageToken': 'string'}
VERIFY_SHAPE = {'ok': 'bool', 'entriesChecked': 'int64', 'firstBadId': 'int64', 'detail': 'string',
                'headHash': 'string', 'badChains': 'int',
                'chains': [{'chain': 'string', 'entries': 'int64', 'headId': 'int64', 'headHash': 'string',
                            'firstBadId': 'int64', 'detail': 'string'}]}
PROTOCOL = {'protocolId': 'string', 'name': 'string', 'chainId': 'int64', 'category': 'enum', 'adapter': 'enum',
            'tokenAddress': 'address', 'addresses': 'strmap', 'apyBps': 'int', 'active': 'bool',
            'updatedAt': 'timestamp?'}
UPSERT_SHAPE = {'protocol': PROTOCOL, 'created': 'bool'}
PROTOCOLS_SHAPE = {'protocols': [PROTOCOL]}

NO_DEP = 'dep_' + 'a' * 20        # well-formed order ids nobody has
NO_WTH = 'wth_' + 'a' * 20
NO_VAULT = '00000000-0000-4000-8000-000000000000'
GOOD_CLIENT = {'productId': 'gw-never-registered', 'companyName': 'Never', 'webhookUrl': 'https://n.example/h'}
BAD_PROTOCOL = {'protocol': {'name': 'gw-bad-protocol', 'chainId': CHAIN, 'category': 'STRATEGY_CATEGORY_LENDING',
                             'adapter': 'PROTOCOL_ADAPTER_AAVE_V3', 'tokenAddress': '0x' + '12' * 20,
                             'addresses': {'pool': '0x' + '34' * 20}, 'apyBps': 1, 'active': False}}

# method, path, body, who (None/'admin'/'bad'/'client'), status, shape
ROUTES = [
    ('GET', '/v1/system/info', None, None, 200, GET_INFO_SHAPE),
    ('GET', '/v1/system/info', None, 'admin', 200, GET_INFO_SHAPE),
    ('GET', '/v1/system/info', None, 'bad', 401, STATUS_SHAPE),  # a credential that is sent must be valid
    ('POST', '/v1/system/diagnose-database', {}, 'admin', 200, DIAGNOSE_SHAPE),
    ('POST', '/v1/system/diagnose-database', {}, None, 401, STATUS_SHAPE),
    ('POST', '/v1/system/diagnose-database', {}, 'bad', 401, STATUS_SHAPE),
    ('POST', '/v1/system/diagnose-database', {}, 'client', 403, STATUS_SHAPE),
    ('POST', '/v1/webhooks/acme', b'{"raw": true}', None, 501, STATUS_SHAPE),
    ('GET', '/healthz', None, None, 200, {'status': 'string'}),
    ('GET', '/readyz', None, None, 200, {'status': 'string', 'upstreams': 'list'}),
    # ClientService
    ('POST', '/v1/clients', GOOD_CLIENT, None, 401, STATUS_SHAPE),
    ('POST', '/v1/clients', GOOD_CLIENT, 'client', 403, STATUS_SHAPE),
    ('POST', '/v1/clients', dict(GOOD_CLIENT, productId='Not Valid'), 'admin', 400, STATUS_SHAPE),
    ('POST', '/v1/clients', dict(GOOD_CLIENT, webhookUrl='http://example.com/h'), 'admin', 400, STATUS_SHAPE),
    ('GET', '/v1/client', None, 'client', 200, GET_CLIENT_SHAPE),
    ('GET', '/v1/client', None, None, 401, STATUS_SHAPE),
    ('GET', '/v1/client', None, 'admin', 403, STATUS_SHAPE),  # operators never act as a client
    ('POST', '/v1/client/api-keys:rotate', {'graceSeconds': 2592001}, 'client', 400, STATUS_SHAPE),
    ('POST', '/v1/client/api-keys:rotate', {}, None, 401, STATUS_SHAPE),
    ('GET', '/v1/vaults', None, 'client', 200, VAULTS_SHAPE),
    ('GET', '/v1/vaults', None, None, 401, STATUS_SHAPE),
    ('POST', '/v1/vaults', {'chainId': CHAIN, 'tokenAddress': '0x' + 'ab' * 20, 'tokenSymbol': 'GWT',
                            'tokenDecimals': 6, 'strategies': [{'category': 'STRATEGY_CATEGORY_LENDING',
                                                                'targetBps': 9000}]}, 'client', 400, STATUS_SHAPE),
    ('POST', '/v1/vaults', {'chainId': CHAIN, 'tokenDecimals': 'six'}, 'client', 400, STATUS_SHAPE),  # gateway
    # UserService
    ('POST', '/v1/users', {'clientUserId': 'has space'}, 'client', 400, STATUS_SHAPE),
    ('POST', '/v1/users', {'clientUserId': 'x'}, 'admin', 403, STATUS_SHAPE),
    ('GET', '/v1/users/nobody-here', None, 'client', 404, STATUS_SHAPE),
    ('GET', '/v1/users/nobody-here', None, None, 401, STATUS_SHAPE),
    ('GET', '/v1/users/nobody-here/portfolio', None, 'client', 404, STATUS_SHAPE),
    # DepositService
    ('POST', '/v1/deposits/crypto', {'clientUserId': 'nobody-here', 'chainId': CHAIN, 'tokenSymbol': 'GWT',
                                     'amount': '1000000'}, 'client', 404, STATUS_SHAPE),
    ('POST', '/v1/deposits/crypto', {'clientUserId': 'x', 'chainId': CHAIN, 'tokenSymbol': 'GWT',
                                     'amount': '12x'}, 'client', 400, STATUS_SHAPE),
    ('POST', '/v1/deposits/%s:complete' % NO_DEP, {'cryptoAmount': '1', 'txHash': '0x' + '11' * 32},
     'admin', 404, STATUS_SHAPE),
    ('POST', '/v1/deposits/%s:complete' % NO_DEP, {'cryptoAmount': '1', 'txHash': '0x' + '11' * 32},
     'client', 403, STATUS_SHAPE),
    ('GET', '/v1/deposits/' + NO_DEP, None, 'client', 404, STATUS_SHAPE),
    ('GET', '/v1/deposits/not-an-order', None, 'client', 400, STATUS_SHAPE),
    ('GET', '/v1/deposits', None, 'client', 200, DEPOSITS_SHAPE),
    ('GET', '/v1/deposits?pageSize=501', None, 'client', 400, STATUS_SHAPE),
    ('GET', '/v1/deposits?status=ORDER_STATUS_NOPE', None, 'client', 400, STATUS_SHAPE),  # gateway: enum name
    # WithdrawalService
    ('POST', '/v1/withdrawals', {'chainId': CHAIN, 'tokenSymbol': 'GWT', 'amount': '1'}, 'client', 400,
     STATUS_SHAPE),
    ('POST', '/v1/withdrawals/%s:cancel' % NO_WTH, {}, 'client', 404, STATUS_SHAPE),
    ('POST', '/v1/withdrawals/%s:complete' % NO_WTH, {'payoutReference': 'x'}, 'admin', 404, STATUS_SHAPE),
    ('POST', '/v1/withdrawals/%s:complete' % NO_WTH, {'payoutReference': 'x'}, 'client', 403, STATUS_SHAPE),
    ('POST', '/v1/withdrawals/%s:fail' % NO_WTH, {'reason': 'x'}, 'admin', 404, STATUS_SHAPE),
    ('POST', '/v1/withdrawals/%s:fail' % NO_WTH, {'reason': ''}, 'admin', 400, STATUS_SHAPE),
    ('GET', '/v1/withdrawals/' + NO_WTH, None, 'client', 404, STATUS_SHAPE),
    ('GET', '/v1/withdrawals', None, 'client', 200, WITHDRAWALS_SHAPE),
    ('GET', '/v1/withdrawals', None, None, 401, STATUS_SHAPE),
    # TreasuryService
    ('GET', '/v1/treasury/wallet', None, 'client', 200, WALLET_SHAPE),
    ('GET', '/v1/treasury/wallet', None, 'admin', 403, STATUS_SHAPE),
    ('GET', '/v1/treasury/transactions', None, 'client', 200, CHAIN_TXS_SHAPE),
    ('GET', '/v1/treasury/transactions?limit=501', None, 'client', 400, STATUS_SHAPE),
    ('POST', '/v1/treasury/deposits', {'token': 'USDC', 'chainId': CHAIN, 'amount': '1'}, 'client', 400,
     STATUS_SHAPE),  # no risk level
    ('POST', '/v1/treasury/deposits', {'token': 'USDC', 'chainId': CHAIN, 'amount': '1',
                                       'riskLevel': 'RISK_LEVEL_MODERATE'}, None, 401, STATUS_SHAPE),
    ('POST', '/v1/treasury/withdrawals', {'token': 'USDC', 'chainId': CHAIN}, 'client', 400, STATUS_SHAPE),
    ('POST', '/v1/treasury/withdrawals', {'token': 'USDC', 'chainId': CHAIN}, 'admin', 403, STATUS_SHAPE),
    # OperationsService
    ('POST', '/v1/ops/jobs/nope:run', {}, 'admin', 400, STATUS_SHAPE),
    ('POST', '/v1/ops/jobs/withdrawals:run', {}, 'client', 403, STATUS_SHAPE),
    ('POST', '/v1/ops/vaults/not-a-uuid:accrue', {'observedTotalAssets': '1'}, 'admin', 400, STATUS_SHAPE),
    ('POST', '/v1/ops/vaults/%s:accrue' % NO_VAULT, {'observedTotalAssets': '1'}, 'admin', 404, STATUS_SHAPE),
    ('POST', '/v1/ops/vaults/%s:realize-loss' % NO_VAULT, {'observedTotalAssets': '1', 'reason': 'r'}, 'admin',
     404, STATUS_SHAPE),
    ('POST', '/v1/ops/vaults/%s:realize-loss' % NO_VAULT, {'observedTotalAssets': '1', 'reason': 'r'}, 'client',
     403, STATUS_SHAPE),
    ('POST', '/v1/ops/vaults/%s:pause' % NO_VAULT, {'reason': 'r'}, 'admin', 404, STATUS_SHAPE),
    ('POST', '/v1/ops/vaults/%s:pause' % NO_VAULT, {}, 'admin', 400, STATUS_SHAPE),  # reason required
    ('POST', '/v1/ops/vaults/%s:resume' % NO_VAULT, {'reason': 'r'}, 'admin', 404, STATUS_SHAPE),
    ('POST', '/v1/ops/invariants:check', {}, 'client', 403, STATUS_SHAPE),
    ('GET', '/v1/ops/audit-log?pageSize=3', None, 'admin', 200, AUDIT_SHAPE),
    ('GET', '/v1/ops/audit-log?pageSize=501', None, 'admin', 400, STATUS_SHAPE),
    ('POST', '/v1/ops/audit-log:verify', {}, None, 401, STATUS_SHAPE),
    ('POST', '/v1/ops/protocols', BAD_PROTOCOL, 'admin', 400, STATUS_SHAPE),
    ('GET', '/v1/ops/protocols', None, 'admin', 200, PROTOCOLS_SHAPE),
    ('GET', '/v1/ops/protocols', None, 'client', 403, STATUS_SHAPE),
    ('GET', '/v1/ops/vaults', None, None, 401, STATUS_SHAPE),
    ('GET', '/v1/ops/vaults?clientId=not-a-uuid', None, 'admin', 400, STATUS_SHAPE),
]

# Routes with no success today, and why; the coverage check insists that
# they answered exactly this (so an implementation must update the test).
NO_SUCCESS_YET = {
    ('POST', '/v1/webhooks/{provider}'): (501, 'coffer-api answers UNIMPLEMENTED until the provider issue'),
}


def _openapi():
    r = t.curl('GET', HTTP + '/openapi.json')
    if r.status != 200:
        raise RuntimeError('GET /openapi.json: %r' % r)
    return t.OpenApiRoutes(r.json())


OPENAPI = _openapi()
SEEN = {}  # (METHOD, template) -> HTTP statuses answered as expected


def auth(who):
    if who is None:
        return {}
    if who == 'admin':
        return {'Authorization': 'Bearer ' + ADMIN}
    if who == 'bad':
        return {'Authorization': 'Bearer ' + 'x' * 40}
    return {'Authorization': 'Bearer ' + who}  # an API key


def expect(method, path, body=None, who=None, status=200, shape=None, msg=None, headers=None):
    """One call through the stack's gateway with curl: asserts the status,
    the JSON answer (shape; a google.rpc.Status whose code matches the
    status for errors; msg: a part of its message), the X-Request-Id, and
    records the route as exercised. Writes carry an Idempotency-Key, so
    waiting out a rate limit (429) is safe. Returns the parsed answer."""
    h = dict(auth(who))
    if method == 'POST':
        h['Idempotency-Key'] = 'gw-test-' + secrets.token_hex(12)
    h.update(headers or {})
    r = t.curl_patient(method, HTTP + path, body=body, headers=h)
    where = '%s %s (%s)' % (method, path, who if who in (None, 'admin', 'bad') else 'client')
    if r.status != status:
        raise AssertionError('%s: HTTP %d, want %d: %s' % (where, r.status, status, r.body[:600]))
    if not r.headers.get('content-type', '').startswith('application/json'):
        raise AssertionError('%s: content-type %r' % (where, r.headers.get('content-type')))
    if not r.headers.get('x-request-id'):
        raise AssertionError('%s: no X-Request-Id' % where)
    d = r.json()
    if status >= 400:
        errs = t.shape_errors(d, STATUS_SHAPE)
        if not errs and d['code'] not in t.HTTP_CODES.get(status, ()):
            errs.append('gRPC code %d with HTTP %d' % (d['code'], status))
        if not errs and msg and msg not in d['message']:
            errs.append('message %r lacks %r' % (d['message'], msg))
        if status == 401 and not errs and r.headers.get('www-authenticate') != 'Bearer realm="coffer"':
            errs.append('WWW-Authenticate %r' % r.headers.get('www-authenticate'))
    else:
        errs = t.shape_errors(d, shape) if shape is not None else []
    if errs:
        raise AssertionError('%s: %s\n%s' % (where, '; '.join(errs[:8]), r.body[:1500]))
    route = OPENAPI.match(method, path)
    if route:
        SEEN.setdefault((method, route), set()).add(status)
    return d


def uniq(prefix):
    return '%s-%s' % (prefix, secrets.token_hex(5))


def register(**fields):
    body = {'productId': uniq('gw'), 'companyName': 'Gateway Test', 'businessType': 'payments',
            'webhookUrl': 'https://gw.example/hooks'}
    body.update(fields)
    return expect('POST', '/v1/clients', body, 'admin', 200, REGISTER_SHAPE)


def ts(v):
    return datetime.strptime(v[:19], '%Y-%m-%dT%H:%M:%S').replace(tzinfo=timezone.utc).timestamp()


class GatewayRoutesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client_key = register()['apiKey']

    def check_shape(self, obj, shape, where):
        errs = t.shape_errors(obj, shape)
        self.assertEqual(errs, [], '%s: %s' % (where, obj))

    def test_routes_table(self):
        for method, path, body, who, status, shape in ROUTES:
            where = '%s %s (%s)' % (method, path, who)
            with self.subTest(where):
                r = expect(method, path, body, self.client_key if who == 'client' else who, status)
                self.check_shape(r, shape, where)

    def test_get_info_values(self):
        r = t.curl('GET', HTTP + '/v1/system/info')
        d = r.json()
        comps = {c['name']: c for c in d['components']}
        for c in d['components']:
            self.check_shape(c, COMPONENT_SHAPE, 'component')
        self.assertEqual(comps['db']['status'], 'COMPONENT_STATUS_UP')
        self.assertGreaterEqual(d['schemaVersion'], 1)

    def test_request_id(self):
        r = t.curl('GET', HTTP + '/v1/system/info', headers={'X-Request-Id': 'client-rid-123'})
        self.assertEqual(r.headers['x-request-id'], 'client-rid-123')
        r = t.curl('GET', HTTP + '/v1/system/info', headers={'X-Request-Id': 'bad id with spaces'})
        self.assertNotEqual(r.headers['x-request-id'], 'bad id with spaces')
        self.assertTrue(r.headers['x-request-id'])
        # coffer-api saw the same id (its access log carries it).
        r = t.curl('GET', HTTP + '/v1/system/info', headers={'X-Request-Id': 'gw-itest-rid-777'})
        log = os.environ.get('COFFER_API_LOG')
        if log:
            def seen():
                with open(log) as f:
                    return 'rid=gw-itest-rid-777' in f.read()
            self.assertTrue(t.wait_until(seen, 5))

    def test_mapping_both_spellings(self):
        h = auth('admin')
        for body in ({'holdMs': 1}, {'hold_ms': 1}, {'holdMs': '1'}, {'holdMs': 1.0}):
            r = t.curl('POST', HTTP + '/v1/system/diagnose-database', body=body, headers=h)
            self.assertEqual(r.status, 200, (body, r))
            self.assertEqual(r.json()['holdCompleted'], True)

    def test_bad_json_and_fields(self):
        h = auth('admin')
        cases = [
            ('{"holdMs": 1,}', 'line 1, column'),
            ('{\n"holdMs":\n}', 'line 3'),
            ('{"holdMs": 1, "bogus": 2}', 'unknown field "bogus"'),
            ('{"holdMs": 1, "hold_ms": 2}', 'given twice'),
            ('{"holdMs": "x"}', 'expected an integer'),
            ('{"holdMs": -1}', 'non-negative'),
            ('{"holdMs": 99999999999}', 'out of range'),
            ('[]', 'expected an object'),
            (b'{"holdMs": "\xff"}', 'malformed JSON'),
        ]
        for body, part in cases:
            r = t.curl('POST', HTTP + '/v1/system/diagnose-database', body=body, headers=h)
            self.assertEqual(r.status, 400, (body, r))
            d = r.json()
            self.assertEqual(d['code'], 3)
            self.assertIn(part, d['message'], body)
        # A value coffer-api refuses: its INVALID_ARGUMENT, mapped to 400.
        r = t.curl('POST', HTTP + '/v1/system/diagnose-database', body={'holdMs': 60001}, headers=h)
        self.assertEqual(r.status, 400, r)
        self.assertIn('hold_ms', r.json()['message'])

    def test_query_rules(self):
        r = t.curl('GET', HTTP + '/v1/system/info?nope=1')
        self.assertEqual(r.status, 400)
        self.assertIn('unknown field "nope"', r.json()['message'])
        r = t.curl('POST', HTTP + '/v1/system/diagnose-database?holdMs=1', body={}, headers=auth('admin'))
        self.assertEqual(r.status, 400)

    def test_deadline(self):
        h = dict(auth('admin'))
        h['Grpc-Timeout'] = '200m'
        r = t.curl('POST', HTTP + '/v1/system/diagnose-database', body={'holdMs': 3000}, headers=h)
        self.assertIn(r.status, (504, 200), r)  # the hold stops at the deadline: 504, or completed early
        if r.status == 200:
            self.assertFalse(r.json()['holdCompleted'])
        else:
            self.assertEqual(r.json()['code'], 4)
        h['Grpc-Timeout'] = 'soon'
        r = t.curl('POST', HTTP + '/v1/system/diagnose-database', body={}, headers=h)
        self.assertEqual(r.status, 400)
        self.assertIn('Grpc-Timeout', r.json()['message'])

    def test_not_found_and_method(self):
        r = t.curl('GET', HTTP + '/v1/nothing/here')
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()['code'], 5)
        r = t.curl('DELETE', HTTP + '/v1/system/info')
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers['allow'], 'GET')
        self.assertEqual(r.json()['code'], 12)

    def test_body_limit(self):
        big = b'{"holdMs": 1, "pad": "' + b'x' * (1024 * 1024 + 10) + b'"}'
        r = t.curl('POST', HTTP + '/v1/system/diagnose-database', body=big, headers=auth('admin'))
        self.assertEqual(r.status, 413)
        self.assertEqual(r.json()['code'], 8)

    def test_webhook_is_raw(self):
        # Not JSON at all: the route passes bytes, so it reaches coffer-api (501), never a 400.
        r = t.curl('POST', HTTP + '/v1/webhooks/acme', body=b'\x00\x01 not json {',
                   headers={'Content-Type': 'application/octet-stream', 'X-Signature': 't=1,v1=abc'})
        self.assertEqual(r.status, 501, r)
        self.assertIn('provider issue', r.json()['message'])

    def test_metrics(self):
        t.curl('GET', HTTP + '/v1/system/info')
        r = t.curl('GET', HTTP + '/metrics')
        self.assertEqual(r.status, 200)
        self.assertIn('text/plain', r.headers['content-type'])
        self.assertRegex(r.body, r'coffer_gateway_http_requests_total\{route="/v1/system/info",method="GET",code="200"\} \d+')
        self.assertIn('coffer_gateway_http_request_duration_seconds_bucket{route="/v1/system/info"', r.body)
        self.assertRegex(r.body, r'coffer_gateway_upstream_healthy\{target="[^"]+"\} 1')

    def test_openapi_lists_every_route(self):
        r = t.curl('GET', HTTP + '/openapi.json')
        self.assertEqual(r.status, 200)
        doc = r.json()
        self.assertEqual(doc['openapi'], '3.0.3')
        self.assertIn('get', doc['paths']['/v1/system/info'])
        self.assertIn('post', doc['paths']['/v1/webhooks/{provider}'])
        ops = {op['operationId'] for p in doc['paths'].values() for op in p.values()}
        self.assertIn('SystemService_GetInfo', ops)
        self.assertIn('WebhookService_IngestProviderWebhook', ops)


class GatewayFlowsTest(unittest.TestCase):
    """The API's routes in the order a client app and an operator use them,
    through the gateway only: one client (its API key from RegisterClient)
    with a vault on a token of its own (no protocol serves it: nothing goes
    on chain), end users, deposits the operator confirms, withdrawals to
    bank accounts the operator pays out, the operator's tools; and one
    client on the test chain (treasury: its custodial wallet, staking,
    Execute*)."""

    @classmethod
    def setUpClass(cls):
        cls.reg = register(platformFeeBps=250, endUserYieldBps=8000)
        cls.key = cls.reg['apiKey']
        cls.client_id = cls.reg['client']['clientId']
        cls.token = '0x' + secrets.token_hex(20)
        cls.vault_body = {'chainId': CHAIN, 'tokenAddress': cls.token, 'tokenSymbol': 'GWT', 'tokenDecimals': 6,
                          'strategies': [{'category': 'STRATEGY_CATEGORY_LENDING', 'targetBps': 7000},
                                         {'category': 'STRATEGY_CATEGORY_STAKING', 'targetBps': 3000}],
                          'profitUnlockSeconds': 0}
        r = expect('POST', '/v1/vaults', cls.vault_body, cls.key, 200, CONFIGURE_SHAPE)
        assert r['created'] is True, r
        cls.vault = r['vault']

    # -- helpers -------------------------------------------------------------------------

    def user(self, cuid=None, **fields):
        body = {'clientUserId': cuid or uniq('user'), 'userType': 'USER_TYPE_INDIVIDUAL', 'email': 'u@example.com'}
        body.update(fields)
        r = expect('POST', '/v1/users', body, self.key, 200, CREATE_USER_SHAPE)
        return r['user']['clientUserId']

    def deposit(self, cuid, amount, key=None, symbol='GWT'):
        return expect('POST', '/v1/deposits/crypto', {'clientUserId': cuid, 'chainId': CHAIN, 'tokenSymbol': symbol,
                                                      'amount': str(amount)}, key or self.key, 200,
                      DEPOSIT_SHAPE)['deposit']

    def complete(self, order_id, amount):
        return expect('POST', '/v1/deposits/%s:complete' % order_id,
                      {'cryptoAmount': str(amount), 'txHash': '0x' + secrets.token_hex(32), 'logIndex': 0},
                      'admin', 200, DEPOSIT_SHAPE)['deposit']

    def bank_withdrawal(self, cuid, amount):
        return expect('POST', '/v1/withdrawals',
                      {'clientUserId': cuid, 'chainId': CHAIN, 'tokenSymbol': 'GWT', 'amount': str(amount),
                       'destination': {'type': 'DESTINATION_TYPE_BANK_ACCOUNT',
                                       'details': {'iban': 'DE89370400440532013000', 'holder': 'Test Holder'}}},
                      self.key, 200, WITHDRAWAL_SHAPE)['withdrawal']

    def job(self, name, vault_id=''):
        return expect('POST', '/v1/ops/jobs/%s:run' % name, {'vaultId': vault_id}, 'admin', 200, RUN_JOB_SHAPE)

    def vault_of(self, client_id, vault_id):
        r = expect('GET', '/v1/ops/vaults?clientId=' + client_id, None, 'admin', 200, VAULTS_SHAPE)
        got = [v for v in r['vaults'] if v['vaultId'] == vault_id]
        self.assertEqual(len(got), 1, r)
        self.assertTrue(all(v['clientId'] == client_id for v in r['vaults']), r)
        return got[0]

    def assert_invariants(self, vault_id):
        r = expect('POST', '/v1/ops/invariants:check', {'vaultId': vault_id}, 'admin', 200, INVARIANTS_SHAPE)
        self.assertEqual(r['violations'], [])
        self.assertEqual(r['vaultsChecked'], 1)

    # -- ClientService -----------------------------------------------------------------------

    def test_10_register_get_rotate(self):
        reg = self.reg
        self.assertRegex(reg['apiKey'], r'^ck_live_[0-9a-f]{64}$')
        self.assertRegex(reg['webhookSecret'], r'^whsec_[0-9a-f]+$')
        c = reg['client']
        self.assertEqual((c['platformFeeBps'], c['endUserYieldBps']), (250, 8000))  # wrappers: bare numbers
        self.assertEqual(c['environment'], 'ENVIRONMENT_LIVE')
        self.assertEqual(c['status'], 'active')
        self.assertEqual(c['walletAddress'], reg['walletAddress'])
        self.assertEqual([k['prefix'] for k in c['apiKeys']], [reg['apiKey'][:16]])
        self.assertIsNone(c['apiKeys'][0]['expiresAt'])  # unset message: null
        expect('POST', '/v1/clients', {'productId': c['productId'], 'companyName': 'Again',
                                       'webhookUrl': 'https://gw.example/hooks'}, 'admin', 409,
               msg='already registered')
        r = expect('GET', '/v1/client', None, self.key, 200, GET_CLIENT_SHAPE)
        self.assertEqual(r['client'], c)
        # RotateApiKey on a client of its own: the old key works for the grace period, then not.
        rot = register()
        old = rot['apiKey']
        r = expect('POST', '/v1/client/api-keys:rotate', {'graceSeconds': 3600}, old, 200, ROTATE_SHAPE)
        new = r['apiKey']
        self.assertRegex(new, r'^ck_live_[0-9a-f]{64}$')
        self.assertNotEqual(new, old)
        self.assertAlmostEqual(ts(r['oldKeyExpiresAt']), time.time() + 3600, delta=120)
        for key in (new, old):
            got = expect('GET', '/v1/client', None, key, 200, GET_CLIENT_SHAPE)['client']
            self.assertEqual(got['clientId'], rot['client']['clientId'])
        keys = {k['prefix']: k['expiresAt'] for k in got['apiKeys']}
        self.assertIsNone(keys[new[:16]])
        self.assertIsNotNone(keys[old[:16]])
        expect('POST', '/v1/client/api-keys:rotate', {'grace_seconds': 0}, new, 200, ROTATE_SHAPE)
        expect('GET', '/v1/client', None, old, 401)
        expect('GET', '/v1/client', None, new, 401)

    def test_20_vaults(self):
        r = expect('POST', '/v1/vaults', self.vault_body, self.key, 200, CONFIGURE_SHAPE)
        self.assertFalse(r['created'])
        self.assertEqual(r['vault']['vaultId'], self.vault['vaultId'])
        v = r['vault']
        self.assertEqual((v['chainId'], v['tokenAddress'], v['tokenSymbol'], v['tokenDecimals']),
                         (CHAIN, self.token, 'GWT', 6))
        self.assertEqual(v['currentIndex'], str(10 ** 18))
        self.assertEqual(v['status'], 'VAULT_STATUS_ACTIVE')
        self.assertEqual(v['strategies'], self.vault_body['strategies'])
        expect('POST', '/v1/vaults', dict(self.vault_body, tokenDecimals=8), self.key, 400)  # decimals never change
        r = expect('GET', '/v1/vaults', None, self.key, 200, VAULTS_SHAPE)
        self.assertEqual([v['vaultId'] for v in r['vaults']], [self.vault['vaultId']])

    # -- UserService -------------------------------------------------------------------------

    def test_30_users(self):
        cuid = uniq('alice')
        body = {'clientUserId': cuid, 'userType': 'USER_TYPE_BUSINESS', 'email': 'alice@example.com',
                'walletAddress': '0x' + '5a' * 20}
        a = expect('POST', '/v1/users', body, self.key, 200, CREATE_USER_SHAPE)
        self.assertTrue(a['created'])
        self.assertEqual((a['user']['clientUserId'], a['user']['userType'], a['user']['email']),
                         (cuid, 'USER_TYPE_BUSINESS', 'alice@example.com'))
        b = expect('POST', '/v1/users', body, self.key, 200, CREATE_USER_SHAPE)
        self.assertFalse(b['created'])
        self.assertEqual(b['user'], a['user'])
        expect('POST', '/v1/users', dict(body, email='other@example.com'), self.key, 409, msg='email')
        r = expect('GET', '/v1/users/' + cuid, None, self.key, 200, GET_USER_SHAPE)
        self.assertEqual(r['user'], a['user'])
        # another client never sees it
        other = register()['apiKey']
        expect('GET', '/v1/users/' + cuid, None, other, 404)
        r = expect('GET', '/v1/users/%s/portfolio' % cuid, None, self.key, 200, PORTFOLIO_SHAPE)
        self.assertEqual(r['clientUserId'], cuid)
        self.assertEqual(r['totals']['totalValue'], '0')
        expect('GET', '/v1/users/%s/portfolio' % cuid, None, 'admin', 403)

    # -- DepositService ----------------------------------------------------------------------

    def test_40_deposits(self):
        cuid = self.user()
        amount = 1000 * 10 ** 6
        d = self.deposit(cuid, amount)
        self.assertRegex(d['orderId'], r'^dep_[0-9a-z]{20}$')
        self.assertEqual((d['status'], d['kind'], d['amount'], d['creditedAmount'], d['clientUserId']),
                         ('ORDER_STATUS_INITIATED', 'DEPOSIT_KIND_CRYPTO', str(amount), '', cuid))
        self.assertEqual(d['depositAddress'].lower(), self.reg['walletAddress'].lower())
        self.assertIsNone(d['completedAt'])
        self.assertAlmostEqual(ts(d['expiresAt']), time.time() + 86400, delta=300)
        expect('POST', '/v1/deposits/crypto', {'clientUserId': cuid, 'chainId': CHAIN, 'tokenSymbol': 'GWT',
                                               'amount': '0'}, self.key, 400, msg='amount')
        expect('POST', '/v1/deposits/crypto', {'clientUserId': cuid, 'chainId': CHAIN, 'tokenSymbol': 'NOPE',
                                               'amount': '1'}, self.key, 404, msg='no vault')
        txh = '0x' + secrets.token_hex(32)
        c = expect('POST', '/v1/deposits/%s:complete' % d['orderId'],
                   {'cryptoAmount': str(amount), 'txHash': txh, 'logIndex': 3}, 'admin', 200, DEPOSIT_SHAPE)['deposit']
        self.assertEqual((c['orderId'], c['status'], c['creditedAmount'], c['sharesMinted'], c['indexAtCredit'],
                          c['txHash']),
                         (d['orderId'], 'ORDER_STATUS_COMPLETED', str(amount), str(amount * 10 ** 12),
                          str(10 ** 18), txh))
        self.assertIsNotNone(c['completedAt'])
        expect('POST', '/v1/deposits/%s:complete' % d['orderId'],
               {'cryptoAmount': str(amount), 'txHash': '0x' + secrets.token_hex(32)}, 'admin', 400,
               msg='already COMPLETED')
        expect('POST', '/v1/deposits/%s:complete' % d['orderId'], {'cryptoAmount': '0', 'txHash': txh},
               'admin', 400)
        g = expect('GET', '/v1/deposits/' + d['orderId'], None, self.key, 200, DEPOSIT_SHAPE)['deposit']
        self.assertEqual(g, c)
        expect('GET', '/v1/deposits/' + d['orderId'], None, register()['apiKey'], 404)  # another client's
        d2 = self.deposit(cuid, 5 * 10 ** 6)
        q = '/v1/deposits?clientUserId=' + cuid
        r = expect('GET', q, None, self.key, 200, DEPOSITS_SHAPE)
        self.assertEqual([x['orderId'] for x in r['deposits']], [d2['orderId'], d['orderId']])  # newest first
        self.assertEqual(r['nextPageToken'], '')
        r = expect('GET', q + '&status=ORDER_STATUS_COMPLETED', None, self.key, 200, DEPOSITS_SHAPE)
        self.assertEqual([x['orderId'] for x in r['deposits']], [d['orderId']])
        r = expect('GET', q + '&page_size=1', None, self.key, 200, DEPOSITS_SHAPE)
        self.assertEqual([x['orderId'] for x in r['deposits']], [d2['orderId']])
        self.assertNotEqual(r['nextPageToken'], '')
        r = expect('GET', q + '&pageSize=1&pageToken=' + r['nextPageToken'], None, self.key, 200, DEPOSITS_SHAPE)
        self.assertEqual([x['orderId'] for x in r['deposits']], [d['orderId']])
        p = expect('GET', '/v1/users/%s/portfolio' % cuid, None, self.key, 200, PORTFOLIO_SHAPE)
        self.assertEqual(len(p['vaults']), 1)
        pos = p['vaults'][0]
        self.assertEqual((pos['vaultId'], pos['shares'], pos['effectiveBalance'], pos['totalDeposited'],
                          pos['yieldEarned']),
                         (self.vault['vaultId'], str(amount * 10 ** 12), str(amount), str(amount), '0'))
        self.assertEqual(p['totals']['totalValue'], str(amount * 10 ** 12))  # 18 decimals

    # -- WithdrawalService -------------------------------------------------------------------

    def test_50_withdrawals(self):
        cuid = self.user()
        u = 10 ** 6
        self.complete(self.deposit(cuid, 1000 * u)['orderId'], 1000 * u)
        w1 = self.bank_withdrawal(cuid, 100 * u)
        self.assertRegex(w1['orderId'], r'^wth_[0-9a-z]{20}$')
        self.assertEqual((w1['status'], w1['amount'], w1['sharesReserved'], w1['sharesBurned']),
                         ('ORDER_STATUS_BALANCE_RESERVED', str(100 * u), str(100 * u * 10 ** 12), ''))
        self.assertEqual(w1['destination'], {'type': 'DESTINATION_TYPE_BANK_ACCOUNT', 'address': '',
                                             'details': {'iban': 'DE89370400440532013000', 'holder': 'Test Holder'}})
        self.assertIsNotNone(w1['estimatedCompletion'])
        expect('POST', '/v1/withdrawals', {'clientUserId': cuid, 'chainId': CHAIN, 'tokenSymbol': 'GWT',
                                           'amount': str(10 ** 15), 'destination': {
                                               'type': 'DESTINATION_TYPE_CRYPTO_ADDRESS', 'address': '0x' + '77' * 20}},
               self.key, 400, msg='insufficient available balance')
        r = expect('POST', '/v1/withdrawals/%s:cancel' % w1['orderId'], {}, self.key, 200, WITHDRAWAL_SHAPE)
        self.assertEqual(r['withdrawal']['status'], 'ORDER_STATUS_CANCELLED')
        expect('POST', '/v1/withdrawals/%s:cancel' % w1['orderId'], {}, self.key, 400)
        w2 = self.bank_withdrawal(cuid, 200 * u)
        w3 = self.bank_withdrawal(cuid, 50 * u)
        r = expect('POST', '/v1/withdrawals/%s:fail' % w3['orderId'], {'reason': 'bank rejected the account'},
                   'admin', 200, WITHDRAWAL_SHAPE)['withdrawal']
        self.assertEqual((r['status'], r['failureReason']), ('ORDER_STATUS_FAILED', 'bank rejected the account'))
        expect('POST', '/v1/withdrawals/%s:fail' % w3['orderId'], {'reason': 'x'}, self.key, 403)
        # not yet burned: no payout to confirm
        expect('POST', '/v1/withdrawals/%s:complete' % w2['orderId'], {'payoutReference': 'BANK-REF-1'},
               'admin', 400)
        j = self.job('withdrawals', self.vault['vaultId'])
        self.assertEqual(j['name'], 'withdrawals')
        self.assertGreaterEqual(j['itemsDone'], 1, j)
        g = expect('GET', '/v1/withdrawals/' + w2['orderId'], None, self.key, 200, WITHDRAWAL_SHAPE)['withdrawal']
        self.assertEqual(g['status'], 'ORDER_STATUS_PROVIDER_PROCESSING')
        self.assertEqual(g['sharesBurned'], str(200 * u * 10 ** 12))
        r = expect('POST', '/v1/withdrawals/%s:complete' % w2['orderId'], {'payoutReference': 'BANK-REF-42'},
                   'admin', 200, WITHDRAWAL_SHAPE)['withdrawal']
        self.assertEqual((r['status'], r['payoutReference']), ('ORDER_STATUS_COMPLETED', 'BANK-REF-42'))
        self.assertIsNotNone(r['completedAt'])
        expect('POST', '/v1/withdrawals/%s:complete' % w2['orderId'], {'payoutReference': 'BANK-REF-42'},
               'admin', 400)
        q = '/v1/withdrawals?clientUserId=' + cuid
        r = expect('GET', q, None, self.key, 200, WITHDRAWALS_SHAPE)
        self.assertEqual([(x['orderId'], x['status']) for x in r['withdrawals']],
                         [(w3['orderId'], 'ORDER_STATUS_FAILED'), (w2['orderId'], 'ORDER_STATUS_COMPLETED'),
                          (w1['orderId'], 'ORDER_STATUS_CANCELLED')])
        r = expect('GET', q + '&status=ORDER_STATUS_COMPLETED', None, self.key, 200, WITHDRAWALS_SHAPE)
        self.assertEqual([x['orderId'] for x in r['withdrawals']], [w2['orderId']])
        expect('GET', q + '&pageSize=501', None, self.key, 400)
        p = expect('GET', '/v1/users/%s/portfolio' % cuid, None, self.key, 200, PORTFOLIO_SHAPE)['vaults'][0]
        self.assertEqual((p['effectiveBalance'], p['totalWithdrawn'], p['reservedShares']),
                         (str(800 * u), str(200 * u), '0'))

    # -- OperationsService -------------------------------------------------------------------

    def test_60_operations(self):
        vid = self.vault['vaultId']
        cuid = self.user()
        self.complete(self.deposit(cuid, 100 * 10 ** 6)['orderId'], 100 * 10 ** 6)
        v = self.vault_of(self.client_id, vid)
        book = int(v['totalAssets'])
        self.assertGreaterEqual(book, 100 * 10 ** 6)
        r = expect('POST', '/v1/ops/vaults/%s:accrue' % vid, {'observedTotalAssets': str(book + 10 ** 7)},
                   'admin', 200, ACCRUE_SHAPE)
        self.assertEqual((r['grossYield'], r['loss'], r['paused']), (str(10 ** 7), '0', False))
        self.assertGreater(int(r['vault']['currentIndex']), int(r['indexBefore']))
        self.assertGreater(int(r['platformFeeShares']), 0)
        self.assertEqual(int(r['vault']['totalAssets']), book + 10 ** 7)
        expect('POST', '/v1/ops/vaults/%s:accrue' % vid, {'observedTotalAssets': 'lots'}, 'admin', 400)
        expect('POST', '/v1/ops/vaults/%s:accrue' % vid, {'observedTotalAssets': '1'}, self.key, 403)
        r = expect('POST', '/v1/ops/vaults/%s:pause' % vid, {'reason': 'gateway test pause'}, 'admin', 200,
                   PAUSE_SHAPE)
        self.assertEqual((r['vault']['status'], r['vault']['pausedReason']),
                         ('VAULT_STATUS_PAUSED', 'gateway test pause'))
        expect('POST', '/v1/ops/vaults/%s:pause' % vid, {'reason': 'again'}, 'admin', 400, msg='already paused')
        expect('POST', '/v1/ops/vaults/%s:accrue' % vid, {'observedTotalAssets': str(book)}, 'admin', 400,
               msg='paused')
        expect('POST', '/v1/deposits/crypto', {'clientUserId': cuid, 'chainId': CHAIN, 'tokenSymbol': 'GWT',
                                               'amount': '1'}, self.key, 400, msg='paused')
        r = expect('POST', '/v1/ops/vaults/%s:resume' % vid, {'reason': 'checked'}, 'admin', 200, PAUSE_SHAPE)
        self.assertEqual(r['vault']['status'], 'VAULT_STATUS_ACTIVE')
        expect('POST', '/v1/ops/vaults/%s:resume' % vid, {'reason': 'again'}, 'admin', 400, msg='not paused')
        # Nothing deployed: a loss cannot be booked here (test_70 books one on the chain client's vault).
        expect('POST', '/v1/ops/vaults/%s:realize-loss' % vid,
               {'observedTotalAssets': str(book - 1), 'reason': 'lost'}, 'admin', 400)
        expect('POST', '/v1/ops/vaults/%s:realize-loss' % vid,
               {'observedTotalAssets': str(book + 10 ** 9), 'reason': 'lost'}, 'admin', 400, msg='no loss')
        self.assert_invariants(vid)
        expect('POST', '/v1/ops/invariants:check', {'vaultId': 'nope'}, 'admin', 400)
        # the audit log: this client's rows only, newest first
        r = expect('GET', '/v1/ops/audit-log?clientId=%s&pageSize=500' % self.client_id, None, 'admin', 200,
                   AUDIT_SHAPE)
        ids = [int(e['id']) for e in r['entries']]
        self.assertEqual(ids, sorted(ids, reverse=True))
        self.assertTrue(all(e['clientId'] == self.client_id for e in r['entries']), r)
        actions = {e['action'] for e in r['entries']}
        for a in ('client.register', 'user.create', 'deposit.completed', 'vault.accrued'):
            self.assertIn(a, actions)
        for e in r['entries']:
            self.assertIsInstance(json.loads(e['detailsJson']), dict)
        r = expect('GET', '/v1/ops/audit-log?clientId=%s&action=vault.accrued' % self.client_id, None, 'admin',
                   200, AUDIT_SHAPE)
        self.assertEqual({(e['action'], e['entityId']) for e in r['entries']}, {('vault.accrued', vid)})
        r = expect('POST', '/v1/ops/audit-log:verify', {}, 'admin', 200, VERIFY_SHAPE)
        mine = [c for c in r['chains'] if c['chain'] == self.client_id]
        self.assertEqual(len(mine), 1, r['chains'])
        self.assertEqual(mine[0]['firstBadId'], '0', mine[0])
        self.assertGreater(int(mine[0]['entries']), 5)
        self.assertRegex(r['headHash'], r'^[0-9a-f]{64}$')
        expect('POST', '/v1/ops/audit-log:verify', {}, self.key, 403)
        # supported protocols: one of the test's own, on a token nobody uses, inactive
        name = uniq('gwproto')
        p = {'name': name, 'chainId': CHAIN, 'category': 'STRATEGY_CATEGORY_STAKING',
             'adapter': 'PROTOCOL_ADAPTER_ERC4626', 'tokenAddress': '0x' + secrets.token_hex(20),
             'addresses': {'vault': '0x' + secrets.token_hex(20)}, 'apyBps': 321, 'active': False}
        r = expect('POST', '/v1/ops/protocols', {'protocol': p}, 'admin', 200, UPSERT_SHAPE)
        self.assertTrue(r['created'])
        self.assertEqual((r['protocol']['name'], r['protocol']['apyBps'], r['protocol']['addresses']),
                         (name, 321, p['addresses']))
        r = expect('POST', '/v1/ops/protocols', {'protocol': dict(p, apyBps=322)}, 'admin', 200, UPSERT_SHAPE)
        self.assertFalse(r['created'])
        expect('POST', '/v1/ops/protocols', {'protocol': p}, self.key, 403)
        r = expect('GET', '/v1/ops/protocols?chainId=' + CHAIN, None, 'admin', 200, PROTOCOLS_SHAPE)
        self.assertEqual([x['apyBps'] for x in r['protocols'] if x['name'] == name], [322])
        r = expect('GET', '/v1/ops/protocols?chainId=%s&activeOnly=true' % CHAIN, None, 'admin', 200,
                   PROTOCOLS_SHAPE)
        self.assertNotIn(name, [x['name'] for x in r['protocols']])
        self.assertTrue(all(x['active'] for x in r['protocols']))
        expect('GET', '/v1/ops/vaults?clientId=' + self.client_id, None, self.key, 403)

    # -- TreasuryService, on the test chain ----------------------------------------------------

    STANDARD = ('aave-test', 'comet-test', 'vault4626-test')

    def standard_protocols(self, usdc):
        """The test chain's protocols for USDC as test_grpc_chain.py and
        scripts/walkthrough register them: created when missing (never
        changed: another suite may be switching them off for a moment),
        then waited for until they are the active ones."""
        env = os.environ
        want = {
            'aave-test': ('PROTOCOL_ADAPTER_AAVE_V3', 'STRATEGY_CATEGORY_LENDING',
                          {'pool': env['COFFER_EVM_AAVE_POOL'].lower(),
                           'a_token': env['COFFER_EVM_AAVE_ATOKEN'].lower()}),
            'comet-test': ('PROTOCOL_ADAPTER_COMPOUND_V3', 'STRATEGY_CATEGORY_LENDING',
                           {'comet': env['COFFER_EVM_COMET'].lower()}),
            'vault4626-test': ('PROTOCOL_ADAPTER_ERC4626', 'STRATEGY_CATEGORY_STAKING',
                               {'vault': env['COFFER_EVM_VAULT4626'].lower()}),
        }
        r = expect('GET', '/v1/ops/protocols?chainId=' + CHAIN, None, 'admin', 200, PROTOCOLS_SHAPE)
        have = {p['name'] for p in r['protocols']}
        for name, (adapter, category, addresses) in want.items():
            if name not in have:
                expect('POST', '/v1/ops/protocols', {'protocol': {
                    'name': name, 'chainId': CHAIN, 'category': category, 'adapter': adapter, 'tokenAddress': usdc,
                    'addresses': addresses, 'apyBps': 500, 'active': True}}, 'admin', 200, UPSERT_SHAPE)

        def ready():
            r = expect('GET', '/v1/ops/protocols?chainId=%s&activeOnly=true' % CHAIN, None, 'admin', 200,
                       PROTOCOLS_SHAPE)
            return {p['name'] for p in r['protocols'] if p['tokenAddress'].lower() == usdc} == set(self.STANDARD)
        self.assertTrue(t.wait_until(ready, 120, 1), 'the test chain\'s USDC protocols are not the standard ones')

    def execute_deposit(self, key, amount):
        body = {'token': 'USDC', 'chainId': CHAIN, 'amount': str(amount), 'riskLevel': 'RISK_LEVEL_CONSERVATIVE'}
        return expect('POST', '/v1/treasury/deposits', body, key, 200, EXECUTION)['result']

    def settle(self, chain):
        chain.mine(2)
        self.job('receipts')

    def test_70_treasury_on_chain(self):
        # Lending only (Aave, Comet: interest per balance): money in the shared
        # ERC-4626 test vault would dilute the yield test_grpc_chain.py expects there.
        env = os.environ
        for k in ('COFFER_EVM_RPC', 'COFFER_EVM_USDC', 'COFFER_SIGNER_SOCKET'):
            self.assertTrue(env.get(k), 'the stack has no %s: the treasury routes cannot succeed' % k)
        chain = t.Anvil(env['COFFER_EVM_RPC'])
        usdc = env['COFFER_EVM_USDC'].lower()
        u = 10 ** 6
        reg = register()
        key, cid, wallet = reg['apiKey'], reg['client']['clientId'], reg['walletAddress']
        chain.send(wallet, value=10 ** 18)  # gas
        self.standard_protocols(usdc)
        v = expect('POST', '/v1/vaults', {'chainId': CHAIN, 'tokenAddress': usdc, 'tokenSymbol': 'USDC',
                                          'tokenDecimals': 6, 'profitUnlockSeconds': 0,
                                          'strategies': [{'category': 'STRATEGY_CATEGORY_LENDING',
                                                          'targetBps': 10000}]},
                   key, 200, CONFIGURE_SHAPE)['vault']
        vid = v['vaultId']
        w = expect('GET', '/v1/treasury/wallet', None, key, 200, WALLET_SHAPE)
        self.assertEqual(w['walletAddress'], wallet)
        self.assertTrue(w['balancesAvailable'], w)
        bal = {b['tokenSymbol']: b for b in w['balances']}
        self.assertEqual(int(bal['native']['balance']), 10 ** 18)
        self.assertEqual((bal['USDC']['tokenAddress'].lower(), bal['USDC']['balance']), (usdc, '0'))
        expect('GET', '/v1/treasury/wallet?chainId=1', None, key, 400, msg='not served')
        # an end user's crypto deposit, credited by deposit_watch at the confirmation depth
        cuid = expect('POST', '/v1/users', {'clientUserId': uniq('chain-user')}, key, 200,
                      CREATE_USER_SHAPE)['user']['clientUserId']
        d = self.deposit(cuid, 1000 * u, key, 'USDC')
        chain.mint(usdc, wallet, 1000 * u)
        for _ in range(4):
            chain.mine(2)
            self.job('deposit_watch')
            g = expect('GET', '/v1/deposits/' + d['orderId'], None, key, 200, DEPOSIT_SHAPE)['deposit']
            if g['status'] == 'ORDER_STATUS_COMPLETED':
                break
        self.assertEqual((g['status'], g['creditedAmount']), ('ORDER_STATUS_COMPLETED', str(1000 * u)))
        # staking deploys it into the protocols; receipts books it
        self.standard_protocols(usdc)
        j = self.job('staking', vid)
        self.assertGreaterEqual(j['itemsDone'], 1, j)
        self.settle(chain)
        v = self.vault_of(cid, vid)
        self.assertGreater(int(v['deployedAssets']), 0, v)
        # RealizeLoss: one USDC of the deployed book is gone
        total = int(v['totalAssets'])
        r = expect('POST', '/v1/ops/vaults/%s:realize-loss' % vid,
                   {'observedTotalAssets': str(total - u), 'reason': 'gateway test: 1 USDC lost'}, 'admin', 200,
                   REALIZE_SHAPE)
        self.assertEqual(r['loss'], str(u))
        self.assertEqual(int(r['vault']['totalAssets']), total - u)
        self.assertEqual(int(r['absorbedByLockedProfit']) + int(r['absorbedBySurplus']) +
                         int(r['absorbedByHolders']), u)
        if r['vault']['status'] == 'VAULT_STATUS_PAUSED':
            expect('POST', '/v1/ops/vaults/%s:resume' % vid, {'reason': 'loss booked'}, 'admin', 200, PAUSE_SHAPE)
        self.assert_invariants(vid)
        # ExecuteDeposit: the client's own money (an unmatched transfer), not a deposit order
        chain.mint(usdc, wallet, 300 * u)
        for attempt in range(3):
            self.standard_protocols(usdc)
            res = self.execute_deposit(key, 200 * u)
            # another suite may have switched a protocol for a moment: only then try again
            if not (set(res['failedProtocols']) - set(self.STANDARD)) or attempt == 2:
                break
            self.settle(chain)
        self.assertEqual((res['partialFailure'], res['failedProtocols'], res['totalDeployed']),
                         (False, [], str(200 * u)), res)
        by = {x['protocol']: x for x in res['transactions']}
        # conservative: all of it lent, split over the two lending protocols
        self.assertEqual({p: int(x['amount']) for p, x in by.items()}, {'aave-test': 100 * u, 'comet-test': 100 * u})
        self.assertTrue(all(x['success'] and x['txHash'] and x['error'] == '' for x in res['transactions']), res)
        self.assertGreater(int(res['totalGasUsed']), 0)
        expect('POST', '/v1/treasury/deposits', {'token': 'USDC', 'chainId': CHAIN, 'amount': str(10 ** 12),
                                                 'riskLevel': 'RISK_LEVEL_CONSERVATIVE'}, key, 400,
               msg='exceeds the wallet')
        expect('POST', '/v1/treasury/deposits', {'token': 'NOPE', 'chainId': CHAIN, 'amount': '1',
                                                 'riskLevel': 'RISK_LEVEL_CONSERVATIVE'}, key, 404, msg='no vault')
        self.settle(chain)
        r = expect('POST', '/v1/treasury/withdrawals', {'token': 'USDC', 'chainId': CHAIN, 'withdrawals': [
            {'protocol': 'comet-test', 'amount': str(10 * u)}]}, key, 200, EXECUTION)['result']
        self.assertEqual([(x['protocol'], x['success'], x['amount']) for x in r['transactions']],
                         [('comet-test', True, str(10 * u))], r)
        self.assertEqual(r['totalDeployed'], str(10 * u))
        expect('POST', '/v1/treasury/withdrawals', {'token': 'USDC', 'chainId': CHAIN, 'withdrawals': [
            {'protocol': 'aave-test', 'amount': str(10 ** 12)}]}, key, 400, msg='treasury position')
        expect('POST', '/v1/treasury/withdrawals', {'token': 'USDC', 'chainId': CHAIN, 'withdrawals': [
            {'protocol': 'no-such-protocol', 'amount': '1'}]}, key, 404)
        # the wallet's transactions, newest first; filters
        r = expect('GET', '/v1/treasury/transactions?limit=500', None, key, 200, CHAIN_TXS_SHAPE)
        txs = r['transactions']
        self.assertEqual(r['total'], len(txs))
        self.assertTrue({'approve', 'supply', 'withdraw'} <= {x['kind'] for x in txs}, txs)
        self.assertTrue(all(x['walletAddress'].lower() == wallet.lower() for x in txs))
        self.assertEqual([x['createdAt'] for x in txs], sorted((x['createdAt'] for x in txs), reverse=True))
        self.assertTrue(any(x['txHash'] == by['comet-test']['txHash'] for x in txs))
        self.assertNotIn('vault4626-test', {x['protocol'] for x in txs})
        r = expect('GET', '/v1/treasury/transactions?protocol=comet-test&status=confirmed', None, key, 200,
                   CHAIN_TXS_SHAPE)
        self.assertGreater(r['total'], 0)
        self.assertTrue(all(x['protocol'] == 'comet-test' and x['status'] == 'confirmed'
                            for x in r['transactions']), r)
        r = expect('GET', '/v1/treasury/transactions?limit=1&offset=1', None, key, 200, CHAIN_TXS_SHAPE)
        self.assertEqual(([x['id'] for x in r['transactions']], r['total']), ([txs[1]['id']], len(txs)))
        expect('GET', '/v1/treasury/transactions?status=bogus', None, key, 400)
        self.assert_invariants(vid)


class RouteCoverageTest(unittest.TestCase):
    """Runs last (load_tests): every route /openapi.json lists was called
    with a success and with a failure, and nothing else was called."""
    maxDiff = None

    def test_every_openapi_route_exercised(self):
        routes = OPENAPI.routes
        self.assertGreater(len(routes), 0)
        exercised = set(SEEN)
        self.assertEqual(sorted(routes - exercised), [], 'routes nobody called')
        self.assertEqual(sorted(exercised - routes), [])
        ok = {r for r, st in SEEN.items() if 200 in st}
        failed = {r for r, st in SEEN.items() if any(400 <= s < 500 for s in st)}
        for r, (status, why) in NO_SUCCESS_YET.items():
            self.assertEqual(SEEN.get(r), {status}, '%s %s: %s' % (r[0], r[1], why))
        self.assertEqual(sorted(routes - set(NO_SUCCESS_YET) - ok), [], 'routes without a success case')
        self.assertEqual(sorted(routes - set(NO_SUCCESS_YET) - failed), [], 'routes without a 4xx case')


def load_tests(loader, tests, pattern):
    """The route coverage check after every other test of this file."""
    suite = unittest.TestSuite()
    for case in (GatewayFlowsTest, GatewayRoutesTest, RouteCoverageTest):
        suite.addTests(loader.loadTestsFromTestCase(case))
    return suite


if __name__ == '__main__':
    unittest.main(verbosity=2)
