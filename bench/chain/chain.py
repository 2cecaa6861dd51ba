"""bench/chain/run's driver (see there). Prints result lines."""
import argparse
import os
import re
import secrets
import subprocess
import sys
import threading
import time

import chain_testlib as ct
import grpc_testlib as gt

from coffer.v1 import deposit_pb2  # noqa: E402


class Env:
    """What chain_testlib.Api needs of a stack, from stack.env."""

    def __init__(self):
        e = os.environ
        self.chain = ct.Chain(e['COFFER_EVM_RPC'])
        self.chain_id = int(e['COFFER_EVM_CHAIN_ID'])
        self.usdc = e['COFFER_EVM_USDC'].lower()
        self.pool = e['COFFER_EVM_AAVE_POOL'].lower()
        self.atoken = e['COFFER_EVM_AAVE_ATOKEN'].lower()
        self.comet = e['COFFER_EVM_COMET'].lower()
        self.vault4626 = e['COFFER_EVM_VAULT4626'].lower()
        self.pg_admin = re.sub(r'/[^/?]*$', '/coffer', e['COFFER_PG_ADMIN_URL'])

    def sql(self, q):
        r = subprocess.run(['psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', self.pg_admin, '-c', q],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return r.stdout.strip()


def credit(api, env, key, vid, cid, n, each, conc=8):
    """n crypto orders of `each` into vault vid, credited with CompleteDeposit
    (the operator path: the same credit as deposit_watch), the tokens minted
    to the wallet in one transfer."""
    api.user(key)
    env.sql("INSERT INTO deposits (order_id, client_id, end_user_id, vault_id, chain_id, kind, amount, status) "
            "SELECT 'dep_' || lpad(to_hex(g), 8, '0') || substr(md5('%s'), 1, 12), '%s', "
            "(SELECT id FROM end_users WHERE client_id = '%s' LIMIT 1), '%s', %d, 'crypto', %d, 'INITIATED' "
            "FROM generate_series(1, %d) g" % (vid, cid, cid, vid, env.chain_id, each, n))
    orders = env.sql("SELECT order_id FROM deposits WHERE vault_id = '%s' AND status = 'INITIATED'" % vid).split()
    it, lock, errors = iter(orders), threading.Lock(), []

    def worker():
        while True:
            with lock:
                o = next(it, None)
            if o is None:
                return
            try:
                ct.call(api.deposits.CompleteDeposit, deposit_pb2.CompleteDepositRequest(
                    order_id=o, crypto_amount=str(each), tx_hash='0x' + secrets.token_hex(32)), ct.md(api.admin))
            except gt.grpc.RpcError as e:
                errors.append(e)
    ts = [threading.Thread(target=worker) for _ in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError('CompleteDeposit: %s' % errors[0])


def settle(api, env, where, timeout=600):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        open_rows = int(env.sql("SELECT count(*) FROM chain_transactions WHERE %s AND settled_at IS NULL" % where))
        if open_rows == 0:
            return
        env.chain.mine(2)
        api.job('receipts', timeout=600)
    raise RuntimeError('transactions not settled')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--deposits', type=int, default=1000)
    ap.add_argument('--vaults', type=int, default=100)
    a = ap.parse_args()
    env = Env()
    # a coffer-api of the bench's own on the stack: rate limits off
    server = gt.Server(os.environ['COFFER_PG_URL'], {
        'signer.socket': os.environ['COFFER_SIGNER_SOCKET'], 'evm.endpoints': os.environ['COFFER_EVM_RPC'],
        'evm.chain_id': str(env.chain_id), 'evm.confirmations': '2', 'evm.min_priority_fee': '0',
        'jobs.scheduler': 'false', 'rate.read_per_minute': '0', 'rate.write_per_minute': '0',
        'rate.execute_per_minute': '0', 'rate.admin_per_minute': '0'})
    try:
        run(a, env, ct.Api(env, server.target, server.token))
    finally:
        server.close()


def run(a, env, api):
    api.standard_protocols()
    each = 10 ** 6  # 1 USDC

    # 1. transactions per staking batch: 1 deposit vs many in the vault
    for n in (1, a.deposits):
        cid, key, wallet = api.register()
        vid = api.configure(key)
        t0 = time.monotonic()
        credit(api, env, key, vid, cid, n, each)
        took = time.monotonic() - t0
        env.chain.mint(env.usdc, wallet, n * each)
        r = api.job('staking', vid)
        settle(api, env, "vault_id = '%s'" % vid)
        rows = int(env.sql("SELECT count(*) FROM chain_transactions WHERE vault_id = '%s'" % vid))
        onchain = env.chain.nonce(wallet)
        print('staking batch over %d credited deposits (%d USDC; credited in %.1fs): %d intents, %d transactions '
              'on chain (%d supplies)' % (n, n * each // 10 ** 6, took, rows, onchain, r.items_done))
        sys.stdout.flush()

    # 2. accrual over many vaults with positions
    vids = []
    for i in range(a.vaults):
        cid, key, wallet = api.register()
        vid = api.configure(key)
        credit(api, env, key, vid, cid, 1, 100 * each, conc=1)
        env.chain.mint(env.usdc, wallet, 100 * each)
        vids.append(vid)
    t0 = time.monotonic()
    for vid in vids:
        api.job('staking', vid)
    settle(api, env, "vault_id IS NOT NULL")
    staked = time.monotonic() - t0
    env.chain.rpc('evm_increaseTime', [86400])
    env.chain.mine()
    t0 = time.monotonic()
    r = api.job('accrual', timeout=600)
    took = time.monotonic() - t0
    print('staking %d vaults (%d transactions, one RunJob per vault, then receipts): %.1fs' %
          (len(vids), 6 * len(vids), staked))
    print('accrual, one RunJob over %d vaults with positions (3 protocols each): %.2fs, %.1f ms per vault '
          '(%d accrued, %d skipped, %d failed)' % (r.items_done + r.items_skipped + r.items_failed, took,
                                                   1000 * took / max(1, r.items_done + r.items_skipped + r.items_failed),
                                                   r.items_done, r.items_skipped, r.items_failed))
    v = api.violations()
    print('CheckInvariants: %s' % ('clean' if not v else v[:3]))


if __name__ == '__main__':
    main()
