#!/usr/bin/env python3
"""Creates the first user of a local MongoDB-protocol server that runs with --auth.

    mongo_first_user.py PORT USER [--tls-ca CA_FILE]     (the password comes on standard input)

A server under --auth with no user yet accepts one anonymous `createUser` on `admin` from
127.0.0.1 (the localhost exception, as mongod has it); once a user exists it refuses the next.
This script sends exactly that command: USER with the `root` role, SCRAM-SHA-256. It needs
nothing beyond Python's standard library (no driver is installed at this point), so it speaks
the wire protocol itself: one OP_MSG out, one back. Exit 0 when the server created the user,
1 with the server's error otherwise (never the password).
"""
import socket
import ssl
import struct
import sys

OP_MSG = 2013


def cstring(text):
    return text.encode() + b"\x00"


def bson(pairs):
    """A BSON document of (key, value) pairs: str, list and nested lists of pairs."""
    body = b""
    for key, value in pairs:
        if isinstance(value, str):
            data = value.encode() + b"\x00"
            body += b"\x02" + cstring(key) + struct.pack("<i", len(data)) + data
        elif isinstance(value, list) and value and isinstance(value[0], tuple):
            body += b"\x03" + cstring(key) + bson(value)
        elif isinstance(value, list):
            body += b"\x04" + cstring(key) + bson([(str(i), v) for i, v in enumerate(value)])
        else:
            raise TypeError(f"no BSON encoding here for {key}")
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


# Sizes of the fixed-width BSON types a reply may carry at its top level.
FIXED = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16}


def top_level(doc):
    """The top-level fields of a BSON reply that this script reads: numbers and strings."""
    fields, at = {}, 4
    while doc[at] != 0:
        kind = doc[at]
        end = doc.index(b"\x00", at + 1)
        key, at = doc[at + 1:end].decode(), end + 1
        if kind == 0x02:
            (size,) = struct.unpack_from("<i", doc, at)
            fields[key] = doc[at + 4:at + 3 + size].decode(errors="replace")
            at += 4 + size
        elif kind in (0x03, 0x04):
            at += struct.unpack_from("<i", doc, at)[0]
        elif kind == 0x05:
            at += 5 + struct.unpack_from("<i", doc, at)[0]
        elif kind in FIXED:
            if kind == 0x01:
                fields[key] = struct.unpack_from("<d", doc, at)[0]
            elif kind == 0x10:
                fields[key] = struct.unpack_from("<i", doc, at)[0]
            at += FIXED[kind]
        else:
            break
    return fields


def read_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def main():
    args = sys.argv[1:]
    ca = None
    if "--tls-ca" in args:
        i = args.index("--tls-ca")
        ca = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    port, user = int(args[0]), args[1]
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        sys.exit("no password on standard input")
    command = bson([
        ("createUser", user),
        ("pwd", password),
        ("roles", [[("role", "root"), ("db", "admin")]]),
        ("mechanisms", ["SCRAM-SHA-256"]),
        ("$db", "admin"),
    ])
    payload = struct.pack("<I", 0) + b"\x00" + command
    message = struct.pack("<iiii", 16 + len(payload), 1, 0, OP_MSG) + payload
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if ca:
        sock = ssl.create_default_context(cafile=ca).wrap_socket(sock, server_hostname="127.0.0.1")
    with sock:
        sock.sendall(message)
        (length,) = struct.unpack("<i", read_exactly(sock, 4))
        reply = read_exactly(sock, length - 4)
    fields = top_level(reply[12 + 4 + 1:])
    if fields.get("ok") == 1:
        print(f"created MongoDB user {user} (root) on 127.0.0.1:{port}")
        return
    sys.exit(f"createUser {user} on 127.0.0.1:{port} refused: "
             f"{fields.get('errmsg', 'no message')} (code {fields.get('code', '?')})")


if __name__ == "__main__":
    main()
