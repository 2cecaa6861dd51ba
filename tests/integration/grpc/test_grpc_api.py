#!/usr/bin/python3
"""coffer-api's gRPC behaviour, seen by an independent client (grpcio),
against the stack's coffer-api (scripts/stack up: COFFER_GRPC)."""
import concurrent.futures
import os
import time
import unittest

import grpc_testlib as t
from grpc_testlib import grpc, system_pb2, system_pb2_grpc

from google.protobuf import descriptor_pb2

t.require_stack()
TARGET = os.environ['COFFER_GRPC']
TOKEN = os.environ.get('COFFER_ADMIN_TOKEN', '')
PG_URL = os.environ['COFFER_PG_URL']
API_LOG = os.environ.get('COFFER_API_LOG', '')


class GrpcApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ch = t.wait_ready(TARGET)
        cls.system = system_pb2_grpc.SystemServiceStub(cls.ch)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()

    # -- health --------------------------------------------------------------

    def test_health_serving(self):
        check = t.health_check(self.ch)
        for service in ('', 'coffer.v1.SystemService', 'grpc.health.v1.Health'):
            r = check(t.health_pb2.HealthCheckRequest(service=service), timeout=5)
            self.assertEqual(r.status, t.SERVING, service)

    def test_health_unknown_service(self):
        with self.assertRaises(grpc.RpcError) as e:
            t.health_check(self.ch)(t.health_pb2.HealthCheckRequest(service='no.such.Service'), timeout=5)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn('no.such.Service', e.exception.details())

    def test_health_watch(self):
        stream = t.health_watch(self.ch)(t.health_pb2.HealthCheckRequest(service=''), timeout=10)
        first = next(stream)
        self.assertEqual(first.status, t.SERVING)
        stream.cancel()
        unknown = t.health_watch(self.ch)(t.health_pb2.HealthCheckRequest(service='nope'), timeout=10)
        self.assertEqual(next(unknown).status, t.SERVICE_UNKNOWN)
        unknown.cancel()

    # -- SystemService --------------------------------------------------------

    def test_get_info(self):
        r = self.system.GetInfo(system_pb2.GetInfoRequest(), timeout=5)
        self.assertTrue(r.version)
        self.assertTrue(r.commit)
        self.assertGreaterEqual(r.schema_version, 1)
        comps = {c.name: c for c in r.components}
        self.assertEqual(comps['db'].status, system_pb2.COMPONENT_STATUS_UP)
        self.assertIn('signer', comps)

    def test_get_info_stays_current(self):
        # Each thread keeps its last packed answer while nothing in it
        # changes: the uptime still moves on, and the worker path (a
        # credential sent) answers like the queue thread.
        a = self.system.GetInfo(system_pb2.GetInfoRequest(), timeout=5)
        time.sleep(1.2)
        b = self.system.GetInfo(system_pb2.GetInfoRequest(), timeout=5)
        self.assertGreaterEqual(b.uptime_seconds, a.uptime_seconds + 1)
        c = self.system.GetInfo(system_pb2.GetInfoRequest(), metadata=t.admin_md(TOKEN), timeout=5)
        self.assertGreaterEqual(c.uptime_seconds, b.uptime_seconds)
        self.assertEqual((c.version, c.commit, c.schema_version), (b.version, b.commit, b.schema_version))
        self.assertEqual([x.name for x in c.components], [x.name for x in b.components])

    # -- generic behaviour ----------------------------------------------------

    def test_unknown_method_is_unimplemented_at_once(self):
        for path in ('/coffer.v1.NoSuchService/Nothing', '/coffer.v1.SystemService/NoSuchMethod'):
            t0 = time.monotonic()
            with self.assertRaises(grpc.RpcError) as e:
                t.raw_unary(self.ch, path)(b'', timeout=30)
            took = time.monotonic() - t0
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED, path)
            self.assertLess(took, 1.0, path)

    def test_garbage_payload_is_invalid_argument(self):
        for garbage in (b'\xff' * 11, b'\x0a\xff\x01', b'\x07'):
            with self.assertRaises(grpc.RpcError) as e:
                t.raw_unary(self.ch, '/coffer.v1.SystemService/GetInfo')(garbage, timeout=5)
            self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, garbage)
            self.assertIn('coffer.v1.GetInfoRequest', e.exception.details())

    def test_oversize_message_is_resource_exhausted(self):
        big = b'\x0a' + b'\x80\x80\x40' + b'x' * (1 << 20)  # field 1, 1 MiB: fine
        t.raw_unary(self.ch, '/coffer.v1.SystemService/GetInfo')(big, timeout=10)
        huge = b'x' * (5 * 1024 * 1024)  # over the 4 MiB default
        with self.assertRaises(grpc.RpcError) as e:
            t.raw_unary(self.ch, '/coffer.v1.SystemService/GetInfo')(huge, timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_expired_deadline(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.system.GetInfo(system_pb2.GetInfoRequest(), timeout=0.000001)
        self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)

    def test_deadline_stops_the_handler(self):
        # A 5 s hold under a 0.5 s deadline: the client sees DEADLINE_EXCEEDED
        # and the server cancels the query instead of holding the connection.
        t0 = time.monotonic()
        with self.assertRaises(grpc.RpcError) as e:
            self.system.DiagnoseDatabase(system_pb2.DiagnoseDatabaseRequest(hold_ms=5000),
                                         metadata=t.admin_md(TOKEN), timeout=0.5)
        self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual(t.wait_until(lambda: t.active_sleeps(PG_URL) == 0, 3), True)

    def test_thousand_concurrent_calls_from_fifty_channels(self):
        channels = [t.wait_ready(TARGET) for _ in range(50)]
        try:
            futures = []
            for i in range(1000):
                stub = system_pb2_grpc.SystemServiceStub(channels[i % 50])
                futures.append(stub.GetInfo.future(system_pb2.GetInfoRequest(), timeout=60))
            rids = set()
            for f in futures:
                self.assertEqual(f.result().schema_version >= 1, True)
                rids.add(dict(f.initial_metadata())['x-request-id'])
            self.assertEqual(len(rids), 1000)
        finally:
            for c in channels:
                c.close()

    def test_concurrent_database_calls(self):
        # More callers than pooled connections: they queue, none fails.
        stub = self.system
        futures = [stub.DiagnoseDatabase.future(system_pb2.DiagnoseDatabaseRequest(hold_ms=20),
                                                metadata=t.admin_md(TOKEN), timeout=60) for _ in range(200)]
        for f in futures:
            r = f.result()
            self.assertTrue(r.hold_completed)
            self.assertLessEqual(r.pool_open, r.pool_size)

    def test_request_id_echoed(self):
        _, call = self.system.GetInfo.with_call(system_pb2.GetInfoRequest(),
                                                metadata=(('x-request-id', 'test-rid-0042'),), timeout=5)
        self.assertEqual(dict(call.initial_metadata())['x-request-id'], 'test-rid-0042')
        _, call = self.system.GetInfo.with_call(system_pb2.GetInfoRequest(), timeout=5)
        generated = dict(call.initial_metadata())['x-request-id']
        self.assertRegex(generated, r'^[0-9a-f]{8}-[0-9a-f]{12}$')
        # Not a sane id (spaces): replaced by a generated one.
        _, call = self.system.GetInfo.with_call(system_pb2.GetInfoRequest(),
                                                metadata=(('x-request-id', 'a b'),), timeout=5)
        self.assertRegex(dict(call.initial_metadata())['x-request-id'], r'^[0-9a-f]{8}-')
        # Errors carry it too.
        with self.assertRaises(grpc.RpcError) as e:
            t.raw_unary(self.ch, '/coffer.v1.Nope/Nope')(b'', metadata=(('x-request-id', 'rid-err-1'),),
                                                         timeout=5)
        self.assertEqual(dict(e.exception.initial_metadata())['x-request-id'], 'rid-err-1')

    def test_access_log_line_per_call(self):
        if not API_LOG:
            self.skipTest('COFFER_API_LOG not set')
        rid = 'access-log-%d' % os.getpid()
        self.system.GetInfo(system_pb2.GetInfoRequest(), metadata=(('x-request-id', rid),), timeout=5)

        def lines():
            with open(API_LOG) as f:
                return [ln for ln in f if ('rid=%s ' % rid) in ln and 'event=rpc.call' in ln]
        got = t.wait_until(lines, 3)
        self.assertEqual(len(got), 1, got)
        for field in ('method=/coffer.v1.SystemService/GetInfo', 'code=OK', 'duration_us=',
                      'caller=anonymous', 'peer='):
            self.assertIn(field, got[0])

    # -- authentication ---------------------------------------------------------

    def test_admin_method_needs_the_admin_token(self):
        req = system_pb2.DiagnoseDatabaseRequest()
        cases = [
            ((), grpc.StatusCode.UNAUTHENTICATED),
            (t.admin_md('wrong-token-' + 'x' * 40), grpc.StatusCode.UNAUTHENTICATED),
            ((('authorization', 'Basic dXNlcjpwYXNz'),), grpc.StatusCode.UNAUTHENTICATED),
            ((('authorization', 'Bearer'),), grpc.StatusCode.UNAUTHENTICATED),
            (t.admin_md(TOKEN[:-1]), grpc.StatusCode.UNAUTHENTICATED),
        ]
        for md, code in cases:
            with self.assertRaises(grpc.RpcError) as e:
                self.system.DiagnoseDatabase(req, metadata=md, timeout=5)
            self.assertEqual(e.exception.code(), code, md)
        r = self.system.DiagnoseDatabase(req, metadata=t.admin_md(TOKEN), timeout=5)
        self.assertTrue(r.server_version)
        self.assertGreaterEqual(r.pool_size, 1)
        self.assertTrue(r.hold_completed)
        # Case-insensitive scheme.
        self.system.DiagnoseDatabase(req, metadata=(('authorization', 'bearer ' + TOKEN),), timeout=5)

    def test_invalid_credentials_refused_everywhere(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.system.GetInfo(system_pb2.GetInfoRequest(), metadata=t.admin_md('not-a-token-' + 'y' * 30),
                                timeout=5)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

    def test_tokens_never_logged(self):
        if not API_LOG:
            self.skipTest('COFFER_API_LOG not set')
        wrong = 'never-log-me-' + 'z' * 40
        for md in (t.admin_md(TOKEN), t.admin_md(wrong)):
            try:
                self.system.DiagnoseDatabase(system_pb2.DiagnoseDatabaseRequest(), metadata=md, timeout=5)
            except grpc.RpcError:
                pass
        time.sleep(0.2)
        with open(API_LOG) as f:
            text = f.read()
        self.assertNotIn(TOKEN, text)
        self.assertNotIn(wrong, text)
        self.assertIn('caller=admin', text)

    # -- reflection -----------------------------------------------------------

    def reflect(self, **kw):
        req = t.reflection_pb2.ServerReflectionRequest(**kw)
        return next(t.reflection_info(self.ch)(iter([req]), timeout=5))

    def test_reflection_lists_our_services(self):
        r = self.reflect(list_services='*')
        names = {s.name for s in r.list_services_response.service}
        # the services of later issues join as they land: check ours are there
        self.assertLessEqual({'coffer.v1.SystemService', 'grpc.health.v1.Health',
                              'grpc.reflection.v1alpha.ServerReflection', 'coffer.v1.ClientService',
                              'coffer.v1.UserService'}, names)
        self.assertTrue(all(n.startswith(('coffer.v1.', 'grpc.')) for n in names), names)

    def test_reflection_describes_a_service_with_its_imports(self):
        r = self.reflect(file_containing_symbol='coffer.v1.SystemService')
        files = {}
        for raw in r.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[fd.name] = fd
        self.assertIn('coffer/v1/system.proto', files)
        self.assertIn('google/api/annotations.proto', files)
        self.assertIn('google/protobuf/descriptor.proto', files)
        svc = [s for s in files['coffer/v1/system.proto'].service if s.name == 'SystemService'][0]
        self.assertEqual({m.name for m in svc.method}, {'GetInfo', 'DiagnoseDatabase'})
        # The google.api.http option survives (as an extension of MethodOptions).
        r = self.reflect(file_containing_extension=t.reflection_pb2.ExtensionRequest(
            containing_type='google.protobuf.MethodOptions', extension_number=72295728))
        names = [descriptor_pb2.FileDescriptorProto.FromString(b).name
                 for b in r.file_descriptor_response.file_descriptor_proto]
        self.assertEqual(names[0], 'google/api/annotations.proto')

    def test_reflection_several_questions_on_one_stream(self):
        reqs = [t.reflection_pb2.ServerReflectionRequest(file_containing_symbol=s)
                for s in ('coffer.v1.GetInfoResponse', 'grpc.health.v1.Health.Watch', 'no.such.Symbol')]
        reqs.append(t.reflection_pb2.ServerReflectionRequest(file_by_filename='grpc/health/v1/health.proto'))
        answers = list(t.reflection_info(self.ch)(iter(reqs), timeout=5))
        self.assertEqual(len(answers), 4)
        self.assertTrue(answers[0].HasField('file_descriptor_response'))
        self.assertTrue(answers[1].HasField('file_descriptor_response'))
        self.assertEqual(answers[2].error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])
        self.assertEqual(answers[3].original_request.file_by_filename, 'grpc/health/v1/health.proto')

    # -- listeners --------------------------------------------------------------

    def test_unix_socket(self):
        target = os.environ.get('COFFER_GRPC_UNIX')
        if not target:
            self.skipTest('the stack has no Unix socket')
        with grpc.insecure_channel(target) as ch:
            r = t.health_check(ch)(t.health_pb2.HealthCheckRequest(), timeout=5)
            self.assertEqual(r.status, t.SERVING)


if __name__ == '__main__':
    unittest.main(verbosity=2)
