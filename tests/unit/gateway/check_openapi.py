#!/usr/bin/env python3
"""The gateway's generated OpenAPI document validates (swagger-parser from
.deps/node; skipped, exit 77, when it is not installed, unless CI=true) and
lists every method with a google.api.http annotation in the API's
descriptor set, each binding under its path and HTTP method.
usage: check_openapi.py OPENAPI_JSON PROTOSET SOURCE_ROOT"""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(sys.argv[3], 'gateway'))
import protoset  # noqa: E402


def main() -> int:
    doc_path, set_path, root = sys.argv[1:4]
    doc = json.load(open(doc_path))
    ps = protoset.load(set_path)
    missing = []
    n = 0
    for f in ps['files']:
        for svc in f['services']:
            for m in svc['methods']:
                if not m['http']:
                    continue
                for i, rule in enumerate([m['http']] + m['http']['additional_bindings']):
                    n += 1
                    path = re.sub(r'\{([A-Za-z0-9_.]+)(?:=[^}]*)?\}', r'{\1}', rule['path'])
                    op = doc['paths'].get(path, {}).get(rule['method'].lower())
                    want = '%s_%s' % (svc['name'], m['name']) + ('_%d' % i if i else '')
                    if not op or op.get('operationId') != want:
                        missing.append('%s %s (%s)' % (rule['method'], path, want))
    if missing:
        print('openapi.json lacks: ' + ', '.join(missing), file=sys.stderr)
        return 1
    print('openapi.json lists all %d annotated bindings' % n)
    node_dir = os.path.join(root, '.deps', 'node')
    node = shutil.which('node')
    if not node or not os.path.isdir(os.path.join(node_dir, 'node_modules', '@apidevtools', 'swagger-parser')):
        print('swagger-parser not installed (scripts/install-deps): validation skipped', file=sys.stderr)
        return 1 if os.environ.get('CI') == 'true' else 77
    r = subprocess.run([node, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'validate_openapi.cjs'),
                        node_dir, doc_path])
    return r.returncode


if __name__ == '__main__':
    sys.exit(main())
