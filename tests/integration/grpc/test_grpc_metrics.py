#!/usr/bin/python3
"""coffer-api's /metrics (metrics.listen): Prometheus text that counts the
calls this test makes, exactly, by method and code, with a consistent
latency histogram; only GET /metrics is served."""
import os
import re
import unittest
import urllib.error
import urllib.request

import grpc_testlib as t
from grpc_testlib import grpc, system_pb2, system_pb2_grpc

t.require_stack()
TARGET = os.environ['COFFER_GRPC']
METRICS = os.environ.get('COFFER_API_METRICS', '')

GETINFO = '/coffer.v1.SystemService/GetInfo'
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape():
    with urllib.request.urlopen(METRICS, timeout=5) as r:
        assert r.status == 200
        ctype = r.headers.get('Content-Type', '')
        assert ctype.startswith('text/plain; version=0.0.4'), ctype
        text = r.read().decode('utf-8')
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        m = LINE.match(line)
        assert m, 'not a Prometheus sample line: %r' % line
        samples[(m.group(1), m.group(2) or '')] = float(m.group(3))
    return samples, text


def value(samples, name, **labels):
    want = '{' + ','.join('%s="%s"' % kv for kv in labels.items()) + '}' if labels else ''
    return samples.get((name, want), 0.0)


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not METRICS:
            raise unittest.SkipTest('the stack has no COFFER_API_METRICS')
        cls.ch = t.wait_ready(TARGET)
        cls.system = system_pb2_grpc.SystemServiceStub(cls.ch)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()

    def test_counts_calls_by_method_and_code(self):
        before, _ = scrape()
        for _ in range(5):
            self.system.GetInfo(system_pb2.GetInfoRequest(), timeout=5)
        with self.assertRaises(grpc.RpcError) as e:
            t.raw_unary(self.ch, '/coffer.v1.SystemService/NoSuchMethod')(b'', timeout=5)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        with self.assertRaises(grpc.RpcError) as e:
            t.raw_unary(self.ch, GETINFO)(b'\xff\xff\xff', timeout=5)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        after, text = scrape()

        ok = ('coffer_rpc_requests_total', '{method="%s",code="OK"}' % GETINFO)
        bad = ('coffer_rpc_requests_total', '{method="%s",code="INVALID_ARGUMENT"}' % GETINFO)
        unknown = ('coffer_rpc_requests_total', '{method="unknown",code="UNIMPLEMENTED"}')
        # Other tests may run at the same time against the same server:
        # at least what we did, and GetInfo's OK count grows by >= 5.
        self.assertGreaterEqual(after[ok] - before.get(ok, 0), 5)
        self.assertGreaterEqual(after[bad] - before.get(bad, 0), 1)
        self.assertGreaterEqual(after[unknown] - before.get(unknown, 0), 1)

        # The histogram agrees with the counters: buckets cumulative and
        # monotonic, +Inf == _count == the sum over codes.
        labels = '{method="%s"' % GETINFO
        buckets = [(k[1], v) for k, v in after.items()
                   if k[0] == 'coffer_rpc_request_duration_seconds_bucket' and k[1].startswith(labels)]
        self.assertEqual(len(buckets), 14)
        les = []
        for lab, v in buckets:
            le = re.search(r'le="([^"]+)"', lab).group(1)
            les.append((float('inf') if le == '+Inf' else float(le), v))
        les.sort()
        for (_, a), (_, b) in zip(les, les[1:]):
            self.assertLessEqual(a, b)
        count = after[('coffer_rpc_request_duration_seconds_count', '{method="%s"}' % GETINFO)]
        self.assertEqual(les[-1][1], count)
        by_code = sum(v for k, v in after.items()
                      if k[0] == 'coffer_rpc_requests_total' and k[1].startswith(labels + ','))
        self.assertEqual(by_code, count)
        self.assertGreater(after[('coffer_rpc_request_duration_seconds_sum', '{method="%s"}' % GETINFO)], 0)

        # The other families are there.
        self.assertEqual(value(after, 'coffer_component_up', component='db'), 1.0)
        self.assertGreaterEqual(value(after, 'coffer_db_pool_connects_total'), 1)
        self.assertIn('coffer_job_runs_total{job="withdrawals",result="ok"}', text)
        self.assertIn('coffer_signer_request_duration_seconds_bucket{result="ok",le="+Inf"}', text)
        self.assertGreater(value(after, 'coffer_uptime_seconds'), 0)
        self.assertIn('# TYPE coffer_rpc_request_duration_seconds histogram', text)

    def test_only_get_metrics(self):
        base = METRICS.rsplit('/', 1)[0]
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + '/other', timeout=5)
        self.assertEqual(e.exception.code, 404)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(METRICS, data=b'x', method='POST'), timeout=5)
        self.assertEqual(e.exception.code, 405)


if __name__ == '__main__':
    unittest.main(verbosity=2)
