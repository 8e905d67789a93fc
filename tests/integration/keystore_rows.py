"""Helpers for tests that change authenticated keystore rows as the holder of the root key may
(docs/KEYS.md "Authenticated rows"; the MAC input is src/keystore/rows.h's)."""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import struct


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def _length_prefixed(fields) -> bytes:
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


def age_tenant_key_rows(data_dir: str, tenant_name: str, by_ms: int):
    """Moves a tenant's key versions' creation time back, with valid row MACs (src/keystore/rows.h),
    as only a holder of the root key can."""
    with open(os.path.join(data_dir, "root.key")) as f:
        root = bytes.fromhex(f.read().strip())
    row_key = _hkdf_sha256(root, b"coffre/v2/root-key-subkeys", b"coffre/v2/keystore-row-mac")
    i64 = lambda v: struct.pack(">q", v)  # noqa: E731
    db = sqlite3.connect(os.path.join(data_dir, "keystore.db"))
    rows = db.execute("SELECT k.tenant_id, k.version, k.wrapped_key, k.state, k.created, k.destroying, k.gen "
                      "FROM tenant_keys k JOIN tenants t ON t.id = k.tenant_id WHERE t.name = ?",
                      (tenant_name,)).fetchall()
    for tenant_id, version, wrapped, state, created, destroying, gen in rows:
        created -= by_ms
        gen += 1
        mac = hmac.new(row_key, _length_prefixed([
            b"coffre/v2/row/tenant-key", tenant_id.encode(), i64(version), wrapped, state.encode(), i64(created),
            b"" if destroying is None else i64(destroying), i64(gen)]), hashlib.sha256).digest()
        db.execute("UPDATE tenant_keys SET created = ?, gen = ?, mac = ? WHERE tenant_id = ? AND version = ?",
                   (created, gen, mac, tenant_id, version))
    db.commit()
    db.close()
