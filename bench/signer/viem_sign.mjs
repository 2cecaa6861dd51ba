// viem's in-process signTransaction, the stack the original design used:
// node bench/signer/viem_sign.mjs SECONDS  → "viem <signatures> <seconds> <sig/s>"
import { privateKeyToAccount } from 'viem/accounts';

const seconds = Number(process.argv[2] || 3);
const account = privateKeyToAccount('0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318');
const to = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
let n = 0;
// warm up the JIT
for (let i = 0; i < 200; i++) {
  await account.signTransaction({ type: 'eip1559', chainId: 1, nonce: i, to, value: 1n, gas: 21000n,
                                  maxFeePerGas: 256n, maxPriorityFeePerGas: 1n });
}
const t0 = performance.now();
const end = t0 + seconds * 1000;
while (performance.now() < end) {
  for (let i = 0; i < 32; i++, n++) {
    await account.signTransaction({ type: 'eip1559', chainId: 1, nonce: n, to, value: 1n, gas: 21000n,
                                    maxFeePerGas: 256n, maxPriorityFeePerGas: 1n });
  }
}
const took = (performance.now() - t0) / 1000;
console.log(`viem ${n} ${took.toFixed(3)} ${Math.round(n / took)}`);
