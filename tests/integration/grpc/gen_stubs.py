#!/usr/bin/python3
"""Generates Python gRPC stubs from proto/ with grpc_tools.protoc (the
independent client of the integration tests) into --out, then touches
--stamp. The standard protos come from the same Debian packages the C
build uses."""
import argparse
import os
import shutil
import sys

from grpc_tools import protoc

INCLUDES = [
    '/usr/include',
    '/usr/share/gocode/src/github.com/gogo/googleapis',
    '/usr/share/grpc-proto',
]
PROTOS = [
    'google/api/http.proto',
    'google/api/annotations.proto',
    'grpc/health/v1/health.proto',
    'grpc/reflection/v1alpha/reflection.proto',
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--proto-root', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--stamp', required=True)
    args = ap.parse_args()
    coffer = sorted(os.path.relpath(os.path.join(d, f), args.proto_root)
                    for d, _, fs in os.walk(os.path.join(args.proto_root, 'coffer', 'v1'))
                    for f in fs if f.endswith('.proto'))
    tmp = args.out + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    argv = ['protoc', '-I' + args.proto_root] + ['-I' + i for i in INCLUDES] + [
        '--python_out=' + tmp, '--grpc_python_out=' + tmp] + coffer + PROTOS
    if protoc.main(argv) != 0:
        print('gen_stubs: protoc failed', file=sys.stderr)
        return 1
    shutil.rmtree(args.out, ignore_errors=True)
    os.rename(tmp, args.out)
    with open(args.stamp, 'w') as f:
        f.write('\n'.join(coffer + PROTOS) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
