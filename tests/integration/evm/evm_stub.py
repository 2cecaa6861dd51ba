#!/usr/bin/env python3
"""A misbehaving Ethereum JSON-RPC server for tests/integration/test_evm_rpc_stub.c.

Listens on 127.0.0.1 (an ephemeral port, printed as the first stdout line)
and answers each POST according to the first segment of its path:

  /ok               a proper answer (eth_chainId 0x7a69, eth_blockNumber 0x10,
                    eth_getBalance 0x2a, eth_call a uint256 42), else -32601
  /chain/<n>        eth_chainId answers <n>
  /500, /429, /503  that HTTP status
  /garbage          HTTP 200 with an HTML body
  /badid            a proper answer with the wrong id
  /badhex           result "0xzz"
  /slow/<ms>        sleeps <ms> then answers like /ok
  /revert           JSON-RPC error 3 "execution reverted" with Error("nope") data
  /known            JSON-RPC error -32000 "already known"
  /http400          HTTP 400 with a JSON-RPC error body (-32602)
  /big              HTTP 200, 2 MiB of JSON
  /failfirst/<n>    the first <n> requests to this path get HTTP 500, then /ok
  /close            closes the connection without answering

GET /_counts returns a JSON object: path -> POST requests received.
Stdlib only; HTTP/1.1 keep-alive; one thread per connection.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {}
lock = threading.Lock()

REVERT_DATA = ("0x08c379a0"
               "0000000000000000000000000000000000000000000000000000000000000020"
               "0000000000000000000000000000000000000000000000000000000000000004"
               "6e6f706500000000000000000000000000000000000000000000000000000000")


def ok_result(method, path):
    if method == "eth_chainId":
        if path.startswith("/chain/"):
            return hex(int(path.split("/")[2]))
        return "0x7a69"
    if method == "eth_blockNumber":
        return "0x10"
    if method == "eth_getBalance":
        return "0x2a"
    if method == "eth_call":
        return "0x" + "00" * 31 + "2a"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet
        pass

    def reply(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        if self.path == "/_counts":
            with lock:
                self.reply(200, json.dumps(counts))
        else:
            self.reply(404, "{}")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        path = self.path.split("?")[0]
        with lock:
            counts[path] = counts.get(path, 0) + 1
            n = counts[path]
        try:
            req = json.loads(raw)
            rid, method = req["id"], req["method"]
        except (ValueError, KeyError, TypeError):
            self.reply(400, '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}')
            return
        seg = path.split("/")[1] if path.count("/") >= 1 else ""

        def answer(result):
            if result is None:
                self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid,
                                            "error": {"code": -32601, "message": "Method not found"}}))
            else:
                self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}))

        if seg in ("500", "429", "503"):
            self.reply(int(seg), "boom", "text/plain")
        elif seg == "garbage":
            self.reply(200, "<html>oops</html>", "text/html")
        elif seg == "badid":
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid + 1, "result": "0x10"}))
        elif seg == "badhex":
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": "0xzz"}))
        elif seg == "slow":
            time.sleep(int(path.split("/")[2]) / 1000.0)
            answer(ok_result(method, path))
        elif seg == "revert":
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid, "error": {
                "code": 3, "message": "execution reverted: nope", "data": REVERT_DATA}}))
        elif seg == "known":
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid,
                                        "error": {"code": -32000, "message": "already known"}}))
        elif seg == "http400":
            self.reply(400, json.dumps({"jsonrpc": "2.0", "id": rid,
                                        "error": {"code": -32602, "message": "invalid argument 0"}}))
        elif seg == "big":
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": "0x" + "00" * (1 << 20)}))
        elif seg == "failfirst":
            if n <= int(path.split("/")[2]):
                self.reply(500, "boom", "text/plain")
            else:
                answer(ok_result(method, path))
        elif seg == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
        else:
            answer(ok_result(method, path))


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.handle_error = lambda request, client_address: None  # /close, clients timing out
    print(srv.server_address[1], flush=True)
    # Exit when the test closes our stdin (or dies).
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sys.stdin.read()
    srv.shutdown()


if __name__ == "__main__":
    main()
