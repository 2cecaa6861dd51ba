#!/usr/bin/python3
"""coffer-gateway under concurrency and with calls in flight: many
requests at once on their own connections (each answer must be its own
request's: checked by X-Request-Id end to end), a call that hits its
deadline, clients that hang up while their call is in flight, and SIGTERM
with calls in flight. Gateways of the test's own in front of a fake
coffer-api (gw_testlib.FakeUpstream); each test ends by stopping its
gateway and checking it exited 0 with no sanitizer report (under the
address-sanitizer build: no leak, no use after free)."""
import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import gw_testlib as t

t.require_stack()


def connect(gw):
    host, port = gw.url[len('http://'):].split(':')
    return http.client.HTTPConnection(host, int(port), timeout=30)


def request(gw, path, headers=None, conn=None):
    c = conn or connect(gw)
    try:
        c.request('GET', path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        if conn is None:
            c.close()


class GatewayConcurrencyTest(unittest.TestCase):
    def setUp(self):
        self.up = t.FakeUpstream()
        self.gw = t.Gateway([self.up.target])

    def tearDown(self):
        if not hasattr(self.gw, 'final_log'):
            self.gw.close()  # a test that failed before stop_clean
        self.up.close()

    def stop_clean(self):
        rc = self.gw.close()
        log = self.gw.final_log
        self.assertNotIn('AddressSanitizer', log)
        self.assertNotIn('LeakSanitizer', log)
        self.assertNotIn('runtime error', log)  # UBSan
        self.assertEqual(rc, 0, log[-3000:])

    def test_200_concurrent_requests(self):
        n = 200
        barrier = threading.Barrier(n)

        def one(i):
            c = connect(self.gw)
            c.connect()
            barrier.wait(timeout=30)
            rid = 'conc-%03d' % i
            # echo: the upstream answers with the metadata it received, so
            # a reply given to the wrong request would show.
            st, hdrs, body = request(self.gw, '/v1/system/info',
                                     {'X-Request-Id': rid, 'Grpc-Metadata-X-Test-Echo': '1'}, conn=c)
            c.close()
            return rid, st, hdrs.get('x-request-id'), json.loads(json.loads(body)['message'])['metadata']

        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
            results = list(ex.map(one, range(n)))
        self.assertEqual(len(results), n)
        for rid, st, echoed, md in results:
            self.assertEqual(st, 400)  # the echo's INVALID_ARGUMENT
            self.assertEqual(echoed, rid)
            self.assertEqual(md['x-request-id'], rid)
        self.assertEqual(len({r[2] for r in results}), n)

        # Generated ids: distinct too, and the one upstream saw is the one returned.
        def two(i):
            st, hdrs, body = request(self.gw, '/v1/system/info', {'Grpc-Metadata-X-Test-Echo': '1'})
            return hdrs.get('x-request-id'), json.loads(json.loads(body)['message'])['metadata']['x-request-id']

        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
            gen = list(ex.map(two, range(200)))
        self.assertTrue(all(a == b and a.startswith('gw-') for a, b in gen))
        self.assertEqual(len({a for a, _ in gen}), 200)
        # Keep-alive: many requests on one connection, answered in order.
        c = connect(self.gw)
        for i in range(50):
            st, hdrs, body = request(self.gw, '/v1/system/info', {'X-Request-Id': 'ka-%d' % i}, conn=c)
            self.assertEqual((st, hdrs.get('x-request-id')), (200, 'ka-%d' % i))
        c.close()
        self.stop_clean()

    def test_deadline_exceeded_is_504(self):
        t0 = time.monotonic()
        st, hdrs, body = request(self.gw, '/v1/system/info',
                                 {'Grpc-Timeout': '300m', 'Grpc-Metadata-X-Test-Sleep-Ms': '3000'})
        took = time.monotonic() - t0
        self.assertEqual(st, 504, body)
        self.assertEqual(json.loads(body)['code'], 4)  # DEADLINE_EXCEEDED
        self.assertLess(took, 2.5)
        self.assertGreaterEqual(took, 0.25)
        # The gateway goes on answering while that upstream call still sleeps.
        st, _, _ = request(self.gw, '/v1/system/info')
        self.assertEqual(st, 200)
        self.stop_clean()

    def test_client_disconnects_while_call_in_flight(self):
        port = int(self.gw.url.rsplit(':', 1)[1])
        n = 20
        for i in range(n):
            s = socket.create_connection(('127.0.0.1', port), timeout=10)
            s.sendall(('GET /v1/system/info HTTP/1.1\r\nHost: x\r\nX-Request-Id: gone-%d\r\n'
                       'Grpc-Metadata-X-Test-Sleep-Ms: 700\r\n\r\n' % i).encode())
            time.sleep(0.01)
            s.close()  # hangs up while the call is in flight
        # Every call reached the upstream and ran to its end; the gateway
        # then finds its client gone.
        self.assertTrue(t.wait_until(lambda: self.up.slept >= n, 30), self.up.slept)
        time.sleep(0.5)
        st, _, _ = request(self.gw, '/v1/system/info')
        self.assertEqual(st, 200)
        log = self.gw.log_text()
        self.assertEqual(sum(1 for i in range(n) if 'rid=gone-%d ' % i in log), n)
        self.stop_clean()

    def test_sigterm_waits_for_calls_in_flight(self):
        out = {}

        def slow():
            out['r'] = request(self.gw, '/v1/system/info', {'Grpc-Metadata-X-Test-Sleep-Ms': '1000'})

        th = threading.Thread(target=slow)
        th.start()
        self.assertTrue(t.wait_until(lambda: self.up.calls.get('/coffer.v1.SystemService/GetInfo', 0) >= 1, 10))
        self.stop_clean()  # SIGTERM now: the call in flight still gets its answer
        th.join(10)
        self.assertEqual(out['r'][0], 200)


    def test_sighup_is_ignored(self):
        # There is no reload: SIGHUP (sent by some supervisors and log
        # rotators) must neither kill the gateway nor disturb its calls.
        self.gw.proc.send_signal(signal.SIGHUP)
        self.assertTrue(t.wait_until(lambda: 'event=serve.sighup' in self.gw.log_text(), 10), self.gw.log_text())
        st, _, _ = request(self.gw, '/v1/system/info')
        self.assertEqual(st, 200)
        self.assertIsNone(self.gw.proc.poll())
        self.stop_clean()  # SIGTERM still stops it, exit 0


class GatewayLimitsTest(unittest.TestCase):
    """TLS, the connection limit and the idle timeout on the event loop."""

    def setUp(self):
        self.up = t.FakeUpstream()

    def tearDown(self):
        self.up.close()

    def stop_clean(self, gw):
        rc = gw.close()
        self.assertNotIn('Sanitizer', gw.final_log)
        self.assertEqual(rc, 0, gw.final_log[-3000:])

    def test_tls(self):
        d = tempfile.mkdtemp(prefix='coffer-gw-tls-')
        try:
            cert, key = os.path.join(d, 'cert.pem'), os.path.join(d, 'key.pem')
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                            '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'],
                           check=True, capture_output=True)
            gw = t.Gateway([self.up.target], {'tls.cert': cert, 'tls.key': key})
            try:
                url = gw.url.replace('http://', 'https://') + '/v1/system/info'
                r = subprocess.run(['curl', '-sk', '-o', '-', '-w', '\n%{http_code}', url, url],
                                   capture_output=True, timeout=30)
                self.assertEqual(r.stdout.decode().count('\n200'), 2, r)
                # a slow call over TLS: suspended and resumed like any other
                r = subprocess.run(['curl', '-sk', '-o', '/dev/null', '-w', '%{http_code}',
                                    '-H', 'Grpc-Metadata-X-Test-Sleep-Ms: 300', url], capture_output=True, timeout=30)
                self.assertEqual(r.stdout, b'200')
            finally:
                self.stop_clean(gw)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_idle_timeout_and_connection_limit(self):
        gw = t.Gateway([self.up.target], {'http.max_connections': '2', 'http.idle_timeout': '1s'})
        try:
            port = int(gw.url.rsplit(':', 1)[1])
            socks = []
            for _ in range(2):
                s = socket.create_connection(('127.0.0.1', port), timeout=10)
                s.sendall(b'GET /v1/system/info HTTP/1.1\r\nHost: x\r\n\r\n')
                self.assertTrue(s.recv(65536).startswith(b'HTTP/1.1 200'))
                socks.append(s)
            # at the limit, a third client is not served while both stay open
            c = socket.create_connection(('127.0.0.1', port), timeout=10)
            c.sendall(b'GET /v1/system/info HTTP/1.1\r\nHost: x\r\n\r\n')
            c.settimeout(0.5)
            try:
                got = c.recv(65536)
            except socket.timeout:
                got = None
            self.assertFalse(got and got.startswith(b'HTTP/1.1 200'), got)
            c.close()
            # idle connections are closed by the server after the timeout
            for s in socks:
                s.settimeout(5)
                self.assertEqual(s.recv(65536), b'')
                s.close()
            # and then there is room again
            self.assertEqual(request(gw, '/v1/system/info')[0], 200)
        finally:
            self.stop_clean(gw)


class GatewayStackConcurrencyTest(unittest.TestCase):
    """The stack's gateway and coffer-api: 200 GetInfo at once."""

    def test_200_concurrent_get_info(self):
        host, port = os.environ['COFFER_HTTP'][len('http://'):].split(':')

        def one(i):
            c = http.client.HTTPConnection(host, int(port), timeout=30)
            c.request('GET', '/v1/system/info', headers={'X-Request-Id': 'stack-%d' % i})
            r = c.getresponse()
            body = json.loads(r.read())
            c.close()
            return r.status, r.getheader('X-Request-Id'), body

        with concurrent.futures.ThreadPoolExecutor(max_workers=200) as ex:
            res = list(ex.map(one, range(200)))
        for i, (st, rid, body) in enumerate(res):
            self.assertEqual(st, 200)
            self.assertEqual(rid, 'stack-%d' % i)
            self.assertIn('schemaVersion', body)


if __name__ == '__main__':
    unittest.main(verbosity=2)
