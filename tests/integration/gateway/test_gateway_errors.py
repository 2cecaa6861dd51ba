#!/usr/bin/python3
"""coffer-gateway's error mapping, headers, deadlines and failover, against
fake coffer-api upstreams (gw_testlib.FakeUpstream) and gateways of the
test's own. Needs only the built binary, but runs with the integration
suite (skips without a stack, like the rest)."""
import json
import unittest

import gw_testlib as t

t.require_stack()

# gRPC code -> grpc-gateway's HTTP status
TABLE = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400,
         12: 501, 13: 500, 14: 503, 15: 500, 16: 401}


class GatewayErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = t.FakeUpstream()
        cls.gw = t.Gateway([cls.up.target])

    @classmethod
    def tearDownClass(cls):
        cls.gw.close()
        cls.up.close()

    def get_info(self, headers=None):
        return t.curl('GET', self.gw.url + '/v1/system/info', headers=headers)

    def test_each_status_code(self):
        for code, http in TABLE.items():
            with self.subTest(code=code):
                r = self.get_info({'Grpc-Metadata-X-Test-Code': str(code)})
                self.assertEqual(r.status, http, r)
                d = r.json()
                self.assertEqual(set(d), {'code', 'message', 'details'})
                self.assertEqual(d['code'], code)
                self.assertEqual(d['message'], 'test status %d' % code)
                self.assertEqual(d['details'], [])
                if code == 16:
                    self.assertEqual(r.headers.get('www-authenticate'), 'Bearer realm="coffer"')
                if code == 8:
                    self.assertEqual(r.headers.get('retry-after'), '1')  # no RetryInfo: a default

    def test_ok_is_json_with_defaults(self):
        r = self.get_info()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {'version': '', 'commit': '', 'uptimeSeconds': '0', 'components': [],
                                    'schemaVersion': 0})
        self.assertEqual(r.headers.get('grpc-metadata-x-test-seen'), 'yes')  # response headers forwarded

    def test_retry_info_details(self):
        r = self.get_info({'Grpc-Metadata-X-Test-Code': '8', 'Grpc-Metadata-X-Test-Retry': '7'})
        self.assertEqual(r.status, 429)
        self.assertEqual(r.headers.get('retry-after'), '7')
        d = r.json()
        self.assertEqual(d['details'], [{'@type': 'type.googleapis.com/google.rpc.RetryInfo', 'retryDelay': '7s'}])
        r = self.get_info({'Grpc-Metadata-X-Test-Code': '14', 'Grpc-Metadata-X-Test-Retry': '2'})
        self.assertEqual(r.status, 503)
        self.assertEqual(r.headers.get('retry-after'), '2')

    def test_metadata_forwarded(self):
        r = self.get_info({'Authorization': 'Bearer k1', 'Idempotency-Key': 'idem-1', 'X-Request-Id': 'rid-9',
                           'Grpc-Metadata-X-Test-Echo': '1', 'Grpc-Metadata-Tenant': 'acme', 'Grpc-Timeout': '3S',
                           'Cookie': 'secret=1'})
        self.assertEqual(r.status, 400)
        info = json.loads(r.json()['message'])
        md = info['metadata']
        self.assertEqual(md['authorization'], 'Bearer k1')
        self.assertEqual(md['idempotency-key'], 'idem-1')
        self.assertEqual(md['x-request-id'], 'rid-9')
        self.assertEqual(md['tenant'], 'acme')
        self.assertNotIn('cookie', md)
        self.assertLessEqual(info['time_remaining'], 3.2)  # grpc-timeout rounding
        self.assertGreater(info['time_remaining'], 1.0)
        self.assertEqual(r.headers['x-request-id'], 'rid-9')
        # Without Grpc-Timeout: the default deadline (10s).
        r = self.get_info({'Grpc-Metadata-X-Test-Echo': '1'})
        info = json.loads(r.json()['message'])
        self.assertGreater(info['time_remaining'], 5.0)
        self.assertLessEqual(info['time_remaining'], 10.5)

    def test_path_query_body_binding(self):
        # the webhook route: path variable + raw body + headers, byte for byte
        body = b'\x00\xff{"not": json'
        r = t.curl('POST', self.gw.url + '/v1/webhooks/prov-1', body=body,
                   headers={'Grpc-Metadata-X-Test-Echo': '1', 'Content-Type': 'application/octet-stream',
                            'X-Signature': 'v1=abc'})
        info = json.loads(r.json()['message'])
        self.assertEqual(info['path'], '/coffer.v1.WebhookService/IngestProviderWebhook')
        raw = bytes.fromhex(info['request_hex'])
        self.assertIn(b'prov-1', raw)
        self.assertIn(body, raw)
        self.assertIn(b'X-Signature', raw)
        self.assertIn(b'v1=abc', raw)

    def test_unknown_route_and_readyz(self):
        r = t.curl('GET', self.gw.url + '/v9/x')
        self.assertEqual(r.status, 404)
        r = t.curl('GET', self.gw.url + '/readyz')
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()['upstreams'][0]['healthy'], True)


class GatewayFailoverTest(unittest.TestCase):
    def test_unreachable_target_fails_over(self):
        up = t.FakeUpstream()
        dead = '127.0.0.1:1'
        gw = t.Gateway([dead, up.target])
        try:
            for _ in range(6):
                r = t.curl('GET', gw.url + '/v1/system/info')
                self.assertEqual(r.status, 200, r)
            r = t.curl('GET', gw.url + '/readyz')
            self.assertEqual(r.status, 200)
            health = {u['target']: u['healthy'] for u in r.json()['upstreams']}
            self.assertEqual(health, {dead: False, up.target: True})
            m = t.curl('GET', gw.url + '/metrics').body
            self.assertIn('coffer_gateway_upstream_healthy{target="%s"} 0' % dead, m)
        finally:
            gw.close()
            up.close()

    def test_unavailable_after_send_is_not_retried(self):
        first = t.FakeUpstream(default_code=14)  # answers UNAVAILABLE itself: the call was sent
        second = t.FakeUpstream()
        gw = t.Gateway([first.target, second.target])
        try:
            codes = [t.curl('GET', gw.url + '/v1/system/info').status for _ in range(6)]
            path = '/coffer.v1.SystemService/GetInfo'
            # Round robin over both; each call that reached `first` came back 503, none moved on.
            self.assertEqual(codes.count(503), first.calls.get(path, 0))
            self.assertEqual(codes.count(200), second.calls.get(path, 0))
            self.assertEqual(first.calls.get(path, 0) + second.calls.get(path, 0), 6)
        finally:
            gw.close()
            first.close()
            second.close()

    def test_no_upstream(self):
        gw = t.Gateway(['127.0.0.1:1'])
        try:
            r = t.curl('GET', gw.url + '/readyz')
            self.assertEqual(r.status, 503)
            r = t.curl('GET', gw.url + '/v1/system/info')
            self.assertEqual(r.status, 503)
            self.assertEqual(r.json()['code'], 14)
            r = t.curl('GET', gw.url + '/healthz')
            self.assertEqual(r.status, 200)
        finally:
            gw.close()


if __name__ == '__main__':
    unittest.main(verbosity=2)
