#!/usr/bin/python3
"""coffer-gateway in the stack (scripts/stack up: COFFER_HTTP in front of
COFFER_GRPC), driven by curl: every public route of API.md that exists,
status codes, JSON shapes, the mapping rules, headers and limits.

Adding a service: add rows to ROUTES (method, path, body, who, expected
status, and a shape: the JSON keys and kinds the answer must have)."""
import json
import os
import re
import unittest

import gw_testlib as t

t.require_stack()
HTTP = os.environ['COFFER_HTTP']
ADMIN = os.environ.get('COFFER_ADMIN_TOKEN', '')

INT64 = re.compile(r'^-?[0-9]+$')


def is_int64(v):
    return isinstance(v, str) and INT64.match(v) is not None


# kind checkers for shapes
KINDS = {
    'string': lambda v: isinstance(v, str),
    'int64': is_int64,  # 64-bit integers are JSON strings
    'int': lambda v: isinstance(v, int) and not isinstance(v, bool),
    'bool': lambda v: isinstance(v, bool),
    'list': lambda v: isinstance(v, list),
    'object': lambda v: isinstance(v, dict),
    'enum': lambda v: isinstance(v, str) and re.match(r'^[A-Z][A-Z0-9_]*$', v) is not None,
}

GET_INFO_SHAPE = {'version': 'string', 'commit': 'string', 'uptimeSeconds': 'int64', 'components': 'list',
                  'schemaVersion': 'int'}
COMPONENT_SHAPE = {'name': 'string', 'status': 'enum', 'detail': 'string', 'latencyUs': 'int64'}
DIAGNOSE_SHAPE = {'acquireUs': 'int64', 'roundTripUs': 'int64', 'heldMs': 'int64', 'holdCompleted': 'bool',
                  'serverVersion': 'string', 'poolSize': 'int', 'poolOpen': 'int', 'poolIdle': 'int',
                  'poolWaiting': 'int', 'poolConnects': 'int64', 'poolDiscarded': 'int64'}
STATUS_SHAPE = {'code': 'int', 'message': 'string', 'details': 'list'}

# method, path, body, who (None/'admin'/'bad'), status, shape
ROUTES = [
    ('GET', '/v1/system/info', None, None, 200, GET_INFO_SHAPE),
    ('GET', '/v1/system/info', None, 'admin', 200, GET_INFO_SHAPE),
    ('POST', '/v1/system/diagnose-database', {}, 'admin', 200, DIAGNOSE_SHAPE),
    ('POST', '/v1/system/diagnose-database', {}, None, 401, STATUS_SHAPE),
    ('POST', '/v1/system/diagnose-database', {}, 'bad', 401, STATUS_SHAPE),
    ('POST', '/v1/webhooks/acme', b'{"raw": true}', None, 501, STATUS_SHAPE),
    ('GET', '/healthz', None, None, 200, {'status': 'string'}),
    ('GET', '/readyz', None, None, 200, {'status': 'string', 'upstreams': 'list'}),
]


def auth(who):
    if who == 'admin':
        return {'Authorization': 'Bearer ' + ADMIN}
    if who == 'bad':
        return {'Authorization': 'Bearer ' + 'x' * 40}
    return {}


class GatewayRoutesTest(unittest.TestCase):
    def check_shape(self, obj, shape, where):
        self.assertIsInstance(obj, dict, where)
        self.assertEqual(set(obj), set(shape), '%s: keys (every field is written, lowerCamelCase)' % where)
        for k, kind in shape.items():
            self.assertTrue(KINDS[kind](obj[k]), '%s: %s=%r is not %s' % (where, k, obj[k], kind))

    def test_routes_table(self):
        for method, path, body, who, status, shape in ROUTES:
            where = '%s %s (%s)' % (method, path, who)
            with self.subTest(where):
                r = t.curl(method, HTTP + path, body=body, headers=auth(who))
                self.assertEqual(r.status, status, '%s: %r' % (where, r))
                self.assertTrue(r.headers.get('content-type', '').startswith('application/json'), where)
                self.assertTrue(r.headers.get('x-request-id'), where)
                self.check_shape(r.json(), shape, where)

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


if __name__ == '__main__':
    unittest.main(verbosity=2)
