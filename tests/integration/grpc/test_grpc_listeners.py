#!/usr/bin/python3
"""Listeners of a coffer-api of the test's own: TLS on TCP (tls.cert and
tls.key, a throwaway self-signed certificate) and plaintext on the Unix
socket at once; a plaintext client cannot talk to the TLS port."""
import os
import subprocess
import tempfile
import unittest

import grpc_testlib as t
from grpc_testlib import grpc, system_pb2, system_pb2_grpc

t.require_stack()
PG_URL = os.environ['COFFER_PG_URL']


class ListenersTest(unittest.TestCase):
    def test_tls_and_unix_socket(self):
        d = tempfile.mkdtemp(prefix='coffer-tls-')
        cert, key = os.path.join(d, 'cert.pem'), os.path.join(d, 'key.pem')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                        '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=coffer-api.test',
                        '-addext', 'subjectAltName=DNS:coffer-api.test'],
                       check=True, capture_output=True, timeout=60)
        sock = os.path.join(d, 'api.sock')
        srv = t.Server(PG_URL, {'tls.cert': cert, 'tls.key': key, 'grpc.unix_socket': sock})
        self.addCleanup(srv.close)
        self.assertIn('tls=on', srv.log_text())
        with open(cert, 'rb') as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        opts = (('grpc.ssl_target_name_override', 'coffer-api.test'),)
        with grpc.secure_channel(srv.target, creds, options=opts) as ch:
            r = system_pb2_grpc.SystemServiceStub(ch).GetInfo(system_pb2.GetInfoRequest(), timeout=10)
            self.assertTrue(r.version)
            self.system_over(ch, srv.token)
        with grpc.insecure_channel(srv.target) as ch:
            with self.assertRaises(grpc.RpcError) as e:
                system_pb2_grpc.SystemServiceStub(ch).GetInfo(system_pb2.GetInfoRequest(), timeout=3)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
        with grpc.insecure_channel('unix:' + sock) as ch:
            self.assertEqual(t.health_check(ch)(t.health_pb2.HealthCheckRequest(), timeout=5).status, t.SERVING)
            self.system_over(ch, srv.token)
        # The C client speaks TLS too (coffer-api status --tls-ca).
        r = subprocess.run([t.coffer_api(), 'status', '--target', srv.target, '--tls-ca', cert,
                            '--tls-name', 'coffer-api.test'], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('SERVING', r.stdout)
        self.assertEqual(srv.terminate(), 0, srv.log_text()[-3000:])

    def system_over(self, ch, token):
        r = system_pb2_grpc.SystemServiceStub(ch).DiagnoseDatabase(system_pb2.DiagnoseDatabaseRequest(),
                                                                     metadata=t.admin_md(token), timeout=10)
        self.assertTrue(r.server_version)

    def test_bad_settings_refuse_to_start(self):
        d = tempfile.mkdtemp(prefix='coffer-bad-')
        cases = [
            ({'tls.cert': os.path.join(d, 'missing.pem'), 'tls.key': os.path.join(d, 'missing.pem')}, 'tls.cert'),
            ({'auth.admin_token': 'short'}, 'auth.admin_token'),
            ({'grpc.listen': '', 'grpc.unix_socket': ''}, 'grpc.unix_socket'),
            ({'grpc.listen': '203.0.113.1:1'}, 'grpc.listen'),
        ]
        for settings, word in cases:
            with self.assertRaises(RuntimeError) as e:
                t.Server(PG_URL, settings).close()
            self.assertIn(word, str(e.exception))


if __name__ == '__main__':
    unittest.main(verbosity=2)
