"""Helpers for coffer-api's gRPC integration tests: an independent client
(grpcio with stubs generated from proto/ by gen_stubs.py), the stack's
environment, and throwaway coffer-api servers and stacks.

Environment (set by meson test and scripts/test):
  COFFER_PY_STUBS    directory of the generated stubs
  COFFER_BUILD_ROOT  the meson build directory (coffer-api binary)
  COFFER_SOURCE_ROOT the source tree (scripts/stack)
  COFFER_GRPC, COFFER_ADMIN_TOKEN, COFFER_PG_URL, COFFER_API_LOG: stack.env
"""
import importlib.util
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

STUBS = os.environ.get('COFFER_PY_STUBS', '')
sys.path.append(STUBS)  # after site-packages: `grpc` must stay grpcio

import grpc  # noqa: E402
from coffer.v1 import system_pb2, system_pb2_grpc  # noqa: E402,F401


def _load(name, rel):
    # grpc/health/... would shadow the grpcio package if imported as
    # grpc.health; load those message modules by path instead.
    spec = importlib.util.spec_from_file_location(name, os.path.join(STUBS, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


health_pb2 = _load('coffer_test_health_pb2', 'grpc/health/v1/health_pb2.py')
reflection_pb2 = _load('coffer_test_reflection_pb2', 'grpc/reflection/v1alpha/reflection_pb2.py')

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def require_stack():
    """Exits 77 (meson: skipped) without a stack, 1 under CI=true."""
    if os.environ.get('COFFER_GRPC') and os.environ.get('COFFER_PG_URL'):
        return
    print('no stack: run through scripts/test or source a stack.env', file=sys.stderr)
    sys.exit(1 if os.environ.get('CI') == 'true' else 77)


def build_root():
    return os.environ['COFFER_BUILD_ROOT']


def source_root():
    return os.environ['COFFER_SOURCE_ROOT']


def coffer_api():
    return os.path.join(build_root(), 'api-server', 'coffer-api')


def health_check(ch):
    return ch.unary_unary('/grpc.health.v1.Health/Check',
                          request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                          response_deserializer=health_pb2.HealthCheckResponse.FromString)


def health_watch(ch):
    return ch.unary_stream('/grpc.health.v1.Health/Watch',
                           request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                           response_deserializer=health_pb2.HealthCheckResponse.FromString)


def reflection_info(ch):
    return ch.stream_stream('/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
                            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)


def raw_unary(ch, path):
    """A unary callable that sends and returns raw bytes."""
    return ch.unary_unary(path)


def admin_md(token):
    return (('authorization', 'Bearer ' + token),)


def wait_ready(target, timeout=15):
    ch = grpc.insecure_channel(target)
    grpc.channel_ready_future(ch).result(timeout=timeout)
    return ch


def as_postgres(argv):
    if os.geteuid() == 0:
        return ['runuser', '-u', 'postgres', '--'] + argv
    return argv


def psql(url, sql):
    r = subprocess.run(['psql', '-X', '-At', url, '-c', sql], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError('psql: ' + r.stderr)
    return r.stdout.strip()


def active_sleeps(pg_url, application_name='coffer-api'):
    """pg_sleep queries a coffer-api (by its db.application_name) is running now."""
    return int(psql(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' "
                            "AND state = 'active' AND query LIKE '%%pg_sleep%%'" % application_name))


def active_sleeps_of(pg_url, server):
    return active_sleeps(pg_url, server.application_name)


def wait_until(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class Server:
    """A coffer-api serve process of the test's own, on a kernel-chosen port."""

    def __init__(self, pg_url, settings=None):
        self.dir = tempfile.mkdtemp(prefix='coffer-grpc-test-')
        self.token = secrets.token_hex(32)
        self.application_name = 'coffer-api-test-%d-%s' % (os.getpid(), secrets.token_hex(4))
        conf = {
            'db.url': pg_url,
            'db.application_name': self.application_name,
            'grpc.listen': '127.0.0.1:0',
            'auth.admin_token': self.token,
            'auth.api_key_secret': secrets.token_hex(32),
            'secrets.key': secrets.token_hex(32),
        }
        if os.environ.get('COFFER_SIGNER_SOCKET'):  # RegisterClient needs the signer
            conf['signer.socket'] = os.environ['COFFER_SIGNER_SOCKET']
        conf.update(settings or {})
        self.conf_path = os.path.join(self.dir, 'coffer-api.conf')
        with open(self.conf_path, 'w') as f:
            for k, v in conf.items():
                f.write('%s = %s\n' % (k, v))
        self.log_path = os.path.join(self.dir, 'coffer-api.log')
        self.log = open(self.log_path, 'w')
        env = dict(os.environ)
        for k in list(env):  # the stack's settings must not leak into this server
            if k.startswith('COFFER_') and k not in ('COFFER_PY_STUBS',):
                del env[k]
        self.proc = subprocess.Popen([coffer_api(), 'serve', '--config', self.conf_path],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        try:
            port = wait_until(self._port, 30)
            if not port:
                raise RuntimeError('coffer-api did not start:\n' + self.log_text())
        except RuntimeError:
            self.close()
            raise
        self.target = '127.0.0.1:%d' % port

    def _port(self):
        if self.proc.poll() is not None:
            self.log.flush()
            raise RuntimeError('coffer-api exited %s:\n%s' % (self.proc.returncode, self.log_text()))
        m = re.search(r'event=serve\.listening .*? port=(\d+)', self.log_text())
        return int(m.group(1)) if m else None

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def terminate(self, timeout=30):
        """SIGTERM, then the exit status (SIGKILL and None after timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def load_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith('#') and '=' in line:
                k, v = line.split('=', 1)
                env[k] = v
    return env
