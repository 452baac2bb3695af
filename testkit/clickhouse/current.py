#!/usr/bin/env python3
"""A current ClickHouse (PyPI `chdb-core`: ClickHouse 26.x in-process) behind the
part of ClickHouse's HTTP interface that the `clickhouse` Rust crate uses, so RNS's
own schema code and queries run unchanged against it in tests.

    python3 current.py --port PORT --path DATA_DIRECTORY

What it serves, as clickhouse-server does:
- `POST /` with the statement as the body; `database` and `default_format` from the
  URL (a statement's own `FORMAT` wins). The answer is the result's bytes.
- `POST /?query=INSERT INTO table(columns) FORMAT RowBinary` with the rows as the
  (possibly chunked) body. chdb takes no input stream, so the rows are written to a
  file and inserted with `INSERT … SELECT … FROM file(…, 'RowBinary', <structure>)`:
  ClickHouse itself decodes them, by the target columns' types.
- `GET /?query=…` for readiness checks.
An error answers 500 with ClickHouse's message, as the server does; one statement
runs at a time (a chdb session is not shared between threads).
"""
import argparse
import os
import re
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

try:
    from chdb import session as chdb_session
except ImportError:
    sys.exit("chdb is missing: python3 -m pip install chdb-core (./scripts/lib.sh does it)")

INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>[\w.`]+)\s*\((?P<columns>[^)]*)\)\s*FORMAT\s+RowBinary\s*$",
    re.IGNORECASE | re.DOTALL,
)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Engine:
    def __init__(self, path):
        self.session = chdb_session.Session(path)
        self.lock = threading.Lock()
        self.spool = tempfile.mkdtemp(prefix="rows-", dir=path)
        self.inserts = 0

    def run(self, statement, database, output_format):
        with self.lock:
            if database:
                self.session.query(f"USE {database}")
            result = self.session.query(statement, output_format)
            return bytes(result.bytes()) if result is not None else b""

    def insert(self, table, columns, rows, database):
        names = [column.strip().strip("`") for column in columns.split(",")]
        if not all(NAME.match(name) for name in names):
            raise ValueError(f"unexpected column list {columns!r}")
        database_name, _, table_name = table.replace("`", "").rpartition(".")
        database_name = database_name or database or "default"
        with self.lock:
            described = self.session.query(
                "SELECT name, type FROM system.columns "
                f"WHERE database = '{database_name}' AND table = '{table_name}'",
                "TabSeparated",
            )
            types = dict(
                line.split("\t", 1)
                for line in bytes(described.bytes()).decode().splitlines()
                if line
            )
            missing = [name for name in names if name not in types]
            if missing:
                raise ValueError(f"no column {missing} in {database_name}.{table_name}")
            self.inserts += 1
            path = os.path.join(self.spool, f"{self.inserts}.bin")
            with open(path, "wb") as spooled:
                spooled.write(rows)
            structure = ", ".join(f"{name} {types[name]}" for name in names)
            listed = ", ".join(names)
            try:
                self.session.query(
                    f"INSERT INTO {database_name}.{table_name} ({listed}) "
                    f"SELECT {listed} FROM file('{path}', 'RowBinary', '{structure}')"
                )
            finally:
                os.remove(path)
        return b""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine = None

    def log_message(self, format, *arguments):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, payload):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        if status != 200:
            self.send_header("X-ClickHouse-Exception-Code", "1")
        self.end_headers()
        self.wfile.write(payload)

    def handle_statement(self, body):
        parameters = {
            name: values[-1] for name, values in parse_qs(urlparse(self.path).query).items()
        }
        database = parameters.get("database")
        output_format = parameters.get("default_format", "TabSeparated")
        try:
            query = parameters.get("query")
            if query is None:
                payload = self.engine.run(body.decode(), database, output_format)
            else:
                insert = INSERT.match(query)
                if insert and body:
                    payload = self.engine.insert(
                        insert["table"], insert["columns"], body, database
                    )
                else:
                    payload = self.engine.run(query + body.decode(), database, output_format)
        except Exception as error:  # ClickHouse's own message, as the server answers it
            self.answer(500, f"{error}\n".encode())
            return
        self.answer(200, payload)

    def do_POST(self):
        self.handle_statement(self.body())

    def do_GET(self):
        self.handle_statement(b"")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="the data directory")
    arguments = parser.parse_args()
    Handler.engine = Engine(arguments.path)
    server = ThreadingHTTPServer(("127.0.0.1", arguments.port), Handler)
    print(f"current ClickHouse on 127.0.0.1:{arguments.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
