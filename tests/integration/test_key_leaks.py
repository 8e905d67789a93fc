"""Hardening: a full key-lifecycle scenario at debug log level, then every key
that existed during it — root key, tenant keys, data keys, access-key secrets — is searched for,
in hex and base64, in everything the daemon and the CLI printed (except the access-key secrets
that `tenant create` / `access-key create` show on purpose, once)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sqlite3
import struct
import unittest

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import harness
from harness import Daemon, gen_bytes


def length_prefixed(*fields: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


def unseal(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], aad)


def encodings(secret: bytes) -> set[str]:
    out = {secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode(),
           base64.urlsafe_b64encode(secret).decode(), base64.b64encode(secret).decode().rstrip("=")}
    return {e for e in out if len(e) >= 16}


class KeyLeakTest(unittest.TestCase):
    def test_no_key_material_in_any_output_at_debug_level(self):
        d = Daemon()
        config_path = None
        outputs: list[str] = []   # everything that must not hold a key
        shown_secrets: list[str] = []
        keys: dict[str, bytes] = {}

        def cli(*args, shows_secret=False):
            p = d.run_cli(*args, "--data-dir", d.data_dir)
            text = p.stdout.decode() + p.stderr.decode()
            if shows_secret:
                shown_secrets.append(json.loads(p.stdout)["secret_access_key"])
            else:
                outputs.append(text)
            return p

        def collect_keys():
            with open(os.path.join(d.data_dir, "root.key")) as f:
                root = bytes.fromhex(f.read().strip())
            keys["root"] = root
            # The keystore seals under, and MACs rows with, keys derived from the root key
            # (docs/KEYS.md "Derived keys"): those must not leak either.
            def subkey(info: bytes) -> bytes:
                prk = hmac.new(b"coffre/v2/root-key-subkeys", root, hashlib.sha256).digest()
                return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
            wrap = subkey(b"coffre/v2/keystore-wrap")
            keys["keystore wrap key"] = wrap
            keys["keystore row mac key"] = subkey(b"coffre/v2/keystore-row-mac")
            db = sqlite3.connect(os.path.join(d.data_dir, "keystore.db"))
            for (sealed,) in db.execute("SELECT value FROM meta WHERE name = 'admin-token-key'"):
                keys["admin token key"] = unseal(wrap, sealed, length_prefixed(b"coffre/v2/admin-token-key"))
            tenant_keys = {}
            for tid, version, wrapped in db.execute("SELECT tenant_id, version, wrapped_key FROM tenant_keys"):
                k = unseal(wrap, wrapped, length_prefixed(b"coffre/v1/tenant-key", tid.encode(),
                                                          struct.pack(">I", version)))
                tenant_keys[(tid, version)] = k
                keys[f"tenant {tid} v{version}"] = k
            for akid, tid, sealed in db.execute("SELECT access_key_id, tenant_id, secret FROM access_keys"):
                keys[f"secret {akid}"] = unseal(wrap, sealed, length_prefixed(
                    b"coffre/v1/access-key-secret", akid.encode(), tid.encode()))
            db.close()
            cat = sqlite3.connect(os.path.join(d.data_dir, "catalog.db"))
            for table, id_col in (("objects", "object_id"), ("uploads", "upload_id")):
                for oid, bucket, key, tkid, version, wrapped in cat.execute(
                        f"SELECT t.{id_col}, b.name, t.key, t.tenant_key_id, t.key_version, t.wrapped_key "
                        f"FROM {table} t JOIN buckets b ON b.id = t.bucket_id"):
                    tid = tkid.hex()
                    tk = tenant_keys.get((tid, version))
                    if tk is None:
                        continue
                    # bound to bucket, key and object id (docs/KEYS.md)
                    binding = length_prefixed(b"coffre/v2/object", bucket.encode(), key.encode(), oid.encode())
                    keys[f"data key {oid} v{version}"] = unseal(tk, wrapped, length_prefixed(
                        b"coffre/v1/data-key", tid.encode(), struct.pack(">I", version), binding))
            cat.close()

        import tempfile
        tmp = tempfile.mkdtemp(prefix="coffre-it-leaks-")
        config_path = os.path.join(tmp, "config.json")
        with open(config_path, "w") as f:
            json.dump({"development": True, "create_root_key": True, "create_dev_tenant": True, "admin_listen": "",
                       "log_level": "debug"}, f)
        d = Daemon(tmp=tmp, extra_args=["--config", config_path])
        d.start()
        try:
            creds = json.loads(cli("tenant", "create", "bank", "--json", shows_secret=True).stdout)
            other = json.loads(cli("tenant", "create", "other", "--json", shows_secret=True).stdout)
            extra = json.loads(cli("access-key", "create", "bank", "--json", shows_secret=True).stdout)
            s3 = d.client_for(creds)
            s3.create_bucket(Bucket="docs")
            for i in range(3):
                s3.put_object(Bucket="docs", Key=f"k{i}", Body=gen_bytes(70000, seed=i))
                s3.get_object(Bucket="docs", Key=f"k{i}")["Body"].read()
            up = s3.create_multipart_upload(Bucket="docs", Key="mp")["UploadId"]
            s3.upload_part(Bucket="docs", Key="mp", UploadId=up, PartNumber=1, Body=b"x" * 100)
            o = d.client_for(other)
            o.create_bucket(Bucket="other-docs")
            o.put_object(Bucket="other-docs", Key="k", Body=b"secret document")
            collect_keys()  # before any version is destroyed
            cli("key", "rotate", "bank")
            s3.put_object(Bucket="docs", Key="after", Body=b"after rotation")
            collect_keys()
            cli("key", "rewrap", "bank")
            collect_keys()
            cli("key", "list", "bank")
            cli("key", "destroy", "bank", "1")
            cli("access-key", "disable", "bank", extra["access_key_id"])
            cli("access-key", "list", "bank")
            cli("tenant", "list")
            cli("tenant", "shred", "other", "--confirm", "other")
            d.stop()
            outputs.append("\n".join(d.stdout_lines))
            with open(d._stderr_path, "rb") as f:
                log = f.read().decode("utf-8", "replace")
            self.assertIn("[debug]", log)  # the scenario really ran at debug level
            outputs.append(log)
        finally:
            if d.alive:
                d.stop(check=False)
        # The dev credentials are printed by design at start (development convenience); only
        # the keys of the tenants made here are checked, and the root and data keys.
        dev = d.credentials["access_key_id"]
        everything = "\n".join(outputs)
        self.assertGreater(len(keys), 8)
        leaks = [name for name, secret in keys.items() if name != f"secret {dev}"
                 for e in encodings(secret) | ({secret.decode("latin-1")} if name.startswith("secret") else set())
                 if e in everything]
        for s in shown_secrets:
            if s in everything:
                leaks.append("an access-key secret outside its one showing")
        d.cleanup()
        self.assertEqual(leaks, [])


if __name__ == "__main__":
    unittest.main()
