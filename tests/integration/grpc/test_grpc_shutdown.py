#!/usr/bin/python3
"""Graceful shutdown of coffer-api serve on SIGTERM, on servers of the
test's own (against the stack's PostgreSQL): calls in flight complete,
new ones are refused, Watch streams see NOT_SERVING and end, the process
exits 0 (under ASan: also without leaks); past the grace period what is
left is cancelled."""
import os
import threading
import time
import unittest

import grpc_testlib as t
from grpc_testlib import grpc, system_pb2, system_pb2_grpc

t.require_stack()
PG_URL = os.environ['COFFER_PG_URL']


class ShutdownTest(unittest.TestCase):
    def start(self, settings=None):
        s = t.Server(PG_URL, settings)
        self.addCleanup(s.close)
        return s

    def test_sigterm_lets_calls_in_flight_finish(self):
        srv = self.start({'grpc.shutdown_grace': '20s'})
        ch = t.wait_ready(srv.target)
        self.addCleanup(ch.close)
        stub = system_pb2_grpc.SystemServiceStub(ch)

        watch = t.health_watch(ch)(t.health_pb2.HealthCheckRequest(), timeout=60)
        self.assertEqual(next(watch).status, t.SERVING)
        seen = []
        watcher = threading.Thread(target=lambda: seen.extend(self._drain(watch)))
        watcher.start()

        n = 10
        futures = [stub.DiagnoseDatabase.future(system_pb2.DiagnoseDatabaseRequest(hold_ms=1500),
                                                metadata=t.admin_md(srv.token), timeout=60) for _ in range(n)]
        # All of them are holding a database connection right now.
        self.assertEqual(t.wait_until(lambda: t.active_sleeps_of(PG_URL, srv) >= n, 10), True)
        t0 = time.monotonic()
        srv.proc.send_signal(15)

        # New connections are refused while the old calls drain.
        time.sleep(0.3)
        with grpc.insecure_channel(srv.target) as late:
            with self.assertRaises(grpc.RpcError) as e:
                system_pb2_grpc.SystemServiceStub(late).GetInfo(system_pb2.GetInfoRequest(), timeout=2)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)

        for f in futures:
            r = f.result(timeout=30)
            self.assertTrue(r.hold_completed)
            self.assertGreaterEqual(r.held_ms, 1400)
        rc = srv.proc.wait(timeout=30)
        self.assertEqual(rc, 0, srv.log_text()[-3000:])
        self.assertLess(time.monotonic() - t0, 15)
        watcher.join(timeout=10)
        statuses, code = seen[0], seen[1]
        self.assertIn(t.NOT_SERVING, statuses)
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE)
        log = srv.log_text()
        self.assertIn('event=serve.exit status=0', log)
        self.assertNotIn('grace_over', log)
        self.assertEqual(log.count('method=/coffer.v1.SystemService/DiagnoseDatabase code=OK'), n)

    @staticmethod
    def _drain(stream):
        statuses = []
        try:
            for m in stream:
                statuses.append(m.status)
        except grpc.RpcError as e:
            return [statuses, e.code()]
        return [statuses, grpc.StatusCode.OK]

    def test_grace_period_cancels_what_is_left(self):
        srv = self.start({'grpc.shutdown_grace': '1s'})
        ch = t.wait_ready(srv.target)
        self.addCleanup(ch.close)
        stub = system_pb2_grpc.SystemServiceStub(ch)
        futures = [stub.DiagnoseDatabase.future(system_pb2.DiagnoseDatabaseRequest(hold_ms=30000),
                                                metadata=t.admin_md(srv.token), timeout=60) for _ in range(3)]
        self.assertEqual(t.wait_until(lambda: t.active_sleeps_of(PG_URL, srv) >= 3, 10), True)
        t0 = time.monotonic()
        rc = srv.terminate(timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, srv.log_text()[-3000:])
        self.assertLess(took, 8)
        for f in futures:
            with self.assertRaises(grpc.RpcError):
                f.result(timeout=10)
        self.assertIn('event=serve.grace_over', srv.log_text())
        # The handlers stopped their queries instead of holding on.
        self.assertEqual(t.wait_until(lambda: t.active_sleeps_of(PG_URL, srv) == 0, 5), True)

    def test_idle_server_stops_at_once(self):
        srv = self.start()
        t.wait_ready(srv.target).close()
        t0 = time.monotonic()
        self.assertEqual(srv.terminate(timeout=30), 0, srv.log_text()[-3000:])
        self.assertLess(time.monotonic() - t0, 3)


if __name__ == '__main__':
    unittest.main(verbosity=2)
