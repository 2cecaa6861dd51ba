"""bench/ledger/run's driver: CompleteDeposit through gRPC for a fixed time
with N concurrent callers; prints one result line. Orders are created
beforehand in SQL (as the database superuser), so only the credit is
timed."""
import argparse
import os
import re
import secrets
import subprocess
import threading
import time

import grpc_testlib as gt
from grpc_testlib import grpc

from coffer.v1 import client_pb2, client_pb2_grpc, common_pb2, deposit_pb2, deposit_pb2_grpc  # noqa: E402
from coffer.v1 import user_pb2, user_pb2_grpc  # noqa: E402
from google.protobuf import wrappers_pb2  # noqa: E402

ORDERS_PER_VAULT = 4000


def psql(sql):
    url = re.sub(r'/[^/?]*$', '/coffer', os.environ['COFFER_PG_ADMIN_URL'])
    r = subprocess.run(['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', url, '-c', sql],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return r.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--duration', type=float, default=5)
    ap.add_argument('--concurrency', type=int, default=16)
    ap.add_argument('--vaults', type=int, default=8)
    a = ap.parse_args()
    ch = gt.wait_ready(os.environ['COFFER_GRPC'])
    admin = (('authorization', 'Bearer ' + os.environ['COFFER_ADMIN_TOKEN']),)
    clients = client_pb2_grpc.ClientServiceStub(ch)
    users = user_pb2_grpc.UserServiceStub(ch)
    vaults = []
    for i in range(a.vaults):
        r = clients.RegisterClient(client_pb2.RegisterClientRequest(
            product_id='bench-%d-%s' % (i, secrets.token_hex(3)), company_name='Bench', business_type='payments',
            webhook_url='https://bench.example/hooks'), metadata=admin, timeout=30)
        key = (('authorization', 'Bearer ' + r.api_key),)
        v = clients.ConfigureVault(client_pb2.ConfigureVaultRequest(
            chain_id=31337, token_address='0x' + 'a0' * 20, token_symbol='USDC', token_decimals=6,
            strategies=[common_pb2.StrategyTarget(category=common_pb2.STRATEGY_CATEGORY_LENDING, target_bps=10000)],
            profit_unlock_seconds=wrappers_pb2.UInt32Value(value=0)), metadata=key, timeout=30).vault
        for u in range(8):
            users.CreateUser(user_pb2.CreateUserRequest(client_user_id='u%d' % u), metadata=key, timeout=30)
        vaults.append((r.client.client_id, v.vault_id))
    for cid, vid in vaults:
        psql("INSERT INTO deposits (order_id, client_id, end_user_id, vault_id, chain_id, kind, amount, status) "
             "SELECT 'dep_' || lpad(to_hex(g), 8, '0') || substr(md5('%s'), 1, 12), '%s', "
             "(SELECT id FROM end_users WHERE client_id = '%s' ORDER BY id OFFSET g %% 8 LIMIT 1), '%s', 31337, "
             "'crypto', 1000000, 'INITIATED' FROM generate_series(1, %d) g"
             % (vid, cid, cid, vid, ORDERS_PER_VAULT))
    orders = psql("SELECT order_id FROM deposits WHERE status = 'INITIATED' ORDER BY order_id").split()
    stub = deposit_pb2_grpc.DepositServiceStub(ch)
    lock = threading.Lock()
    it = iter(orders)
    done, errors = [0], [0]
    codes = {}
    stop = time.monotonic() + a.duration

    def worker():
        n = e = 0
        while time.monotonic() < stop:
            with lock:
                order = next(it, None)
            if order is None:
                break
            try:
                stub.CompleteDeposit(deposit_pb2.CompleteDepositRequest(
                    order_id=order, crypto_amount='1000000', tx_hash='0x' + secrets.token_hex(32)),
                    metadata=admin, timeout=30)
                n += 1
            except grpc.RpcError as ex:
                e += 1
                what = '%s: %s' % (ex.code().name, (ex.details() or '')[:80])
                with lock:
                    codes[what] = codes.get(what, 0) + 1
        with lock:
            done[0] += n
            errors[0] += e

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.monotonic() - t0
    print('CompleteDeposit via gRPC (%d callers, %d vaults, %.1fs): %.0f deposits/s (%d credited, %d errors)'
          % (a.concurrency, a.vaults, took, done[0] / took, done[0], errors[0]))
    for what, n in sorted(codes.items(), key=lambda kv: -kv[1])[:5]:
        print('  %d x %s' % (n, what))


if __name__ == '__main__':
    main()
