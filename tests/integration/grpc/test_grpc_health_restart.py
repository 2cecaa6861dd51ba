#!/usr/bin/python3
"""Health follows PostgreSQL: NOT_SERVING while it is stopped, SERVING
again once it is back. Runs on a throwaway stack of its own (scripts/stack
up --dir TMP), since stopping the shared stack's PostgreSQL would break
the other suites."""
import os
import shutil
import subprocess
import tempfile
import threading
import unittest

import grpc_testlib as t
from grpc_testlib import grpc, system_pb2, system_pb2_grpc

t.require_stack()


class HealthRestartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='coffer-health-stack-')
        cls.stack = os.path.join(t.source_root(), 'scripts', 'stack')
        r = subprocess.run([cls.stack, 'up', '--dir', cls.dir, '--build', t.build_root()],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            subprocess.run([cls.stack, 'down', '--dir', cls.dir], capture_output=True, timeout=120)
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise RuntimeError('stack up failed:\n' + r.stdout + r.stderr)
        cls.env = t.load_env(os.path.join(cls.dir, 'stack.env'))

    @classmethod
    def tearDownClass(cls):
        subprocess.run([cls.stack, 'down', '--dir', cls.dir], capture_output=True, timeout=120)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def pg_ctl(self, *args):
        data = self.env['COFFER_PG_DATA']
        argv = t.as_postgres([self.pg_bin(), '-D', data, '-w', '-t', '60'] + list(args))
        subprocess.run(argv, check=True, capture_output=True, timeout=90)

    @staticmethod
    def pg_bin():
        bins = sorted(d for d in os.listdir('/usr/lib/postgresql'))
        return '/usr/lib/postgresql/%s/bin/pg_ctl' % bins[-1]

    def status(self, check):
        return check(t.health_pb2.HealthCheckRequest(), timeout=5).status

    def test_not_serving_while_postgres_is_down(self):
        ch = t.wait_ready(self.env['COFFER_GRPC'])
        self.addCleanup(ch.close)
        check = t.health_check(ch)
        stub = system_pb2_grpc.SystemServiceStub(ch)
        self.assertEqual(self.status(check), t.SERVING)

        watch = t.health_watch(ch)(t.health_pb2.HealthCheckRequest(), timeout=120)
        seen = []

        def follow():
            try:
                for m in watch:
                    seen.append(m.status)
            except grpc.RpcError:
                pass
        follower = threading.Thread(target=follow)
        follower.start()

        self.pg_ctl('-m', 'fast', 'stop')
        try:
            self.assertEqual(t.wait_until(lambda: self.status(check) == t.NOT_SERVING, 15, 0.2), True)
            info = stub.GetInfo(system_pb2.GetInfoRequest(), timeout=5)
            db = [c for c in info.components if c.name == 'db'][0]
            self.assertEqual(db.status, system_pb2.COMPONENT_STATUS_DOWN)
            self.assertTrue(db.detail)
            with self.assertRaises(grpc.RpcError) as e:
                stub.DiagnoseDatabase(system_pb2.DiagnoseDatabaseRequest(),
                                      metadata=t.admin_md(self.env['COFFER_ADMIN_TOKEN']), timeout=10)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
        finally:
            log = os.path.join(os.path.dirname(self.env['COFFER_PG_DATA']), 'postgres.log')
            self.pg_ctl('-l', log, '-o', '-p %s' % self.env['COFFER_PG_PORT'], 'start')

        self.assertEqual(t.wait_until(lambda: self.status(check) == t.SERVING, 20, 0.2), True)
        r = stub.DiagnoseDatabase(system_pb2.DiagnoseDatabaseRequest(),
                                  metadata=t.admin_md(self.env['COFFER_ADMIN_TOKEN']), timeout=10)
        self.assertTrue(r.server_version)
        self.assertEqual(t.wait_until(lambda: seen[-1:] == [t.SERVING] and len(seen) >= 3, 5), True)
        self.assertEqual(seen[:3], [t.SERVING, t.NOT_SERVING, t.SERVING])
        watch.cancel()
        follower.join(timeout=5)


if __name__ == '__main__':
    unittest.main(verbosity=2)
