"""Forged and replayed keystore rows on the real daemon (docs/KEYS.md "Authenticated rows").

Someone who can write keystore.db but does not hold the root key edits it with sqlite3 while the
daemon runs, and again across a restart: a forged admin credential, an auditor promoted to admin,
a disabled credential or access key switched back on, a shredded tenant un-shredded, and a dual
control approval granted or un-used by hand. Every one of them must be refused, and
/health/ready must report the keystore as failing its integrity check."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest

from botocore.exceptions import ClientError

from harness import Daemon

# Keystore.kRevalidateIntervalMs plus slack: the daemon notices another process's commits within it.
REVALIDATE_SECONDS = 1.0
SETTLE = REVALIDATE_SECONDS + 1.0


def forged_token() -> str:
    raw = os.urandom(32)
    return "coffre_adm_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


class KeystoreForgeryBase(unittest.TestCase):
    dual_control = False

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-forgery-it-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.config = os.path.join(self.tmp, "coffre.json")
        with open(self.config, "w") as f:
            json.dump({"create_root_key": True, "create_dev_tenant": True, "development": True,
                       "dual_control": self.dual_control,
                       "dual_control_approval_minutes": 5}, f)
        self.start()
        self.tokens = {}
        for name, role in (("alice", "admin"), ("bob", "admin"), ("audrey", "auditor")):
            out = json.loads(self.cli("admin-credential", "create", "--role", role, name, "--json").stdout)
            path = os.path.join(self.tmp, name + ".token")
            with open(path, "w") as f:
                f.write(out["token"] + "\n")
            os.chmod(path, 0o600)
            self.tokens[name] = (out["token"], path)

    def start(self):
        tmp = getattr(self, "daemon_tmp", None)
        self.d = Daemon(extra_args=["--config", self.config], tmp=tmp)
        self.d.start()
        self.daemon_tmp = self.d.tmp
        self.addCleanup(lambda d=self.d: d.alive and d.stop(check=False))
        self.admin_port = None
        deadline = time.monotonic() + 10
        while self.admin_port is None and time.monotonic() < deadline:
            for line in list(self.d.stdout_lines):
                if line.startswith("admin listening on "):
                    self.admin_port = int(line.rsplit(":", 1)[1])
            time.sleep(0.05)
        self.assertIsNotNone(self.admin_port, self.d.diagnostics())

    def restart(self):
        self.d.stop()
        self.start()

    def tearDown(self):
        if getattr(self, "d", None) is not None and self.d.alive:
            self.d.stop(check=False)
        if getattr(self, "daemon_tmp", None):
            shutil.rmtree(self.daemon_tmp, ignore_errors=True)

    # -- helpers --
    @property
    def keystore(self) -> str:
        return os.path.join(self.d.data_dir, "keystore.db")

    def sql(self, statement: str, *args):
        """What the attacker does: a plain sqlite3 write beside the running daemon."""
        conn = sqlite3.connect(self.keystore, timeout=10)
        try:
            cur = conn.execute(statement, args)
            rows = cur.fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def cli(self, *args, check=True):
        return self.d.run_cli(*args, "--config", self.config, "--data-dir", self.d.data_dir, check=check)

    def api(self, method, path, token, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=30)
        headers = {"Authorization": "Bearer " + token} if token else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        try:
            return resp.status, json.loads(payload) if payload else None
        except ValueError:
            return resp.status, payload

    def ready(self):
        return self.api("GET", "/health/ready", None)

    def assertReadyFailsOnKeystore(self):
        status, body = self.ready()
        self.assertEqual(status, 503, body)
        self.assertIn("keystore", json.dumps(body), body)

    def assertReady(self):
        status, body = self.ready()
        self.assertEqual(status, 200, body)

    def s3_refused(self, creds) -> bool:
        try:
            self.d.client_for(creds).list_buckets()
            return False
        except ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    def tenant_id(self, name) -> str:
        rows = self.sql("SELECT id FROM tenants WHERE name = ?", name)
        self.assertEqual(len(rows), 1)
        return rows[0][0]


class KeystoreForgeryTest(KeystoreForgeryBase):

    def test_forged_admin_credential_is_refused(self):
        self.assertReady()
        token = forged_token()
        digest = hashlib.sha256(token.encode()).digest()
        # Whatever the column is called in this schema, the attacker fills it with the token's digest.
        col = [r[1] for r in self.sql("PRAGMA table_info(admin_credentials)") if r[1].startswith("token")][0]
        self.sql(f"INSERT INTO admin_credentials(name, role, {col}, created) VALUES('mallory', 'admin', ?, ?)",
                 digest, int(time.time() * 1000))
        for phase in ("running", "restarted"):
            with self.subTest(phase=phase):
                status, _ = self.api("GET", "/tenants", token)
                self.assertEqual(status, 401, "a forged admin credential row authenticated")
                status, _ = self.api("POST", "/tenants/dev/access-keys", token)
                self.assertEqual(status, 401, "a forged admin credential issued an access key")
                # The genuine credentials still work.
                status, _ = self.api("GET", "/tenants", self.tokens["alice"][0])
                self.assertEqual(status, 200)
                self.assertReadyFailsOnKeystore()
                self.assertNotIn(token, self.d.stderr_tail(400))
            if phase == "running":
                self.restart()

    def test_stolen_token_hash_swap_and_promotion_are_refused(self):
        # Replace bob's stored token digest by one the attacker knows, and promote the auditor.
        token = forged_token()
        col = [r[1] for r in self.sql("PRAGMA table_info(admin_credentials)") if r[1].startswith("token")][0]
        stored = self.sql(f"SELECT {col} FROM admin_credentials WHERE name = 'bob'")[0][0]
        # Whatever the stored form, the attacker's digest is what the unfixed code compares.
        self.sql(f"UPDATE admin_credentials SET {col} = ? WHERE name = 'bob'", hashlib.sha256(token.encode()).digest())
        self.sql("UPDATE admin_credentials SET role = 'admin' WHERE name = 'audrey'")
        for phase in ("running", "restarted"):
            with self.subTest(phase=phase):
                status, _ = self.api("GET", "/tenants", token)
                self.assertEqual(status, 401, "a swapped token digest authenticated")
                status, _ = self.api("GET", "/tenants", self.tokens["audrey"][0])
                self.assertIn(status, (401, 403), "an auditor promoted by hand got admin rights")
                self.assertReadyFailsOnKeystore()
            if phase == "running":
                self.restart()
        self.assertEqual(len(stored), 32)

    def test_disabled_admin_credential_cannot_be_revived(self):
        self.cli("admin-credential", "disable", "bob")
        self.assertIn(self.api("GET", "/tenants", self.tokens["bob"][0])[0], (401, 403))
        self.sql("UPDATE admin_credentials SET disabled = NULL WHERE name = 'bob'")
        for phase in ("running", "restarted"):
            with self.subTest(phase=phase):
                status, _ = self.api("GET", "/tenants", self.tokens["bob"][0])
                self.assertIn(status, (401, 403), "a disabled credential was revived by hand")
                self.assertReadyFailsOnKeystore()
            if phase == "running":
                self.restart()

    def test_disabled_access_key_cannot_be_reenabled(self):
        creds = self.d.create_tenant("victim")
        self.d.client_for(creds).list_buckets()
        self.cli("access-key", "disable", "victim", creds["access_key_id"])
        time.sleep(SETTLE)
        self.assertTrue(self.s3_refused(creds))
        self.sql("UPDATE access_keys SET enabled = 1 WHERE access_key_id = ?", creds["access_key_id"])
        for phase in ("running", "restarted"):
            with self.subTest(phase=phase):
                time.sleep(SETTLE)
                self.assertTrue(self.s3_refused(creds), "an access key re-enabled with sqlite3 was accepted")
                self.assertReadyFailsOnKeystore()
            if phase == "running":
                self.restart()

    def test_replayed_access_key_row_is_refused_while_running(self):
        # The attacker saved the enabled row before the disable and writes the old bytes back.
        creds = self.d.create_tenant("replayed")
        self.d.client_for(creds).list_buckets()
        cols = [r[1] for r in self.sql("PRAGMA table_info(access_keys)")]
        old = self.sql(f"SELECT {', '.join(cols)} FROM access_keys WHERE access_key_id = ?", creds["access_key_id"])[0]
        self.cli("access-key", "disable", "replayed", creds["access_key_id"])
        time.sleep(SETTLE)
        self.assertTrue(self.s3_refused(creds))
        self.sql(f"UPDATE access_keys SET {', '.join(c + ' = ?' for c in cols)} WHERE access_key_id = ?",
                 *old, creds["access_key_id"])
        time.sleep(SETTLE)
        self.assertTrue(self.s3_refused(creds), "an old enabled row written back re-enabled the key")
        self.assertReadyFailsOnKeystore()

    def test_shredded_tenant_cannot_be_revived(self):
        creds = self.d.create_tenant("victim")
        tid = self.tenant_id("victim")
        self.cli("tenant", "shred", "victim", "--confirm", "victim")
        time.sleep(SETTLE)
        self.assertTrue(self.s3_refused(creds))
        self.sql("UPDATE tenants SET shredded = NULL WHERE id = ?", tid)
        self.sql("UPDATE access_keys SET enabled = 1 WHERE tenant_id = ?", tid)
        for phase in ("running", "restarted"):
            with self.subTest(phase=phase):
                time.sleep(SETTLE)
                self.assertTrue(self.s3_refused(creds), "the un-shredded tenant's access key was accepted")
                status, body = self.api("POST", "/tenants/victim/access-keys", self.tokens["alice"][0])
                self.assertNotIn(status, (200, 201), f"the un-shredded tenant got a new access key: {body}")
                status, body = self.api("POST", "/tenants/victim/keys/rotate", self.tokens["alice"][0])
                self.assertNotIn(status, (200, 201), f"the un-shredded tenant got a new key: {body}")
                self.assertReadyFailsOnKeystore()
            if phase == "running":
                self.restart()

    def test_forged_key_version_state_is_refused(self):
        # Marking a retired version active again (or clearing its destroy mark) by hand would
        # have new data keys wrapped under a version about to be destroyed.
        self.d.create_tenant("keys")
        self.cli("key", "rotate", "keys")
        tid = self.tenant_id("keys")
        self.sql("UPDATE tenant_keys SET state = 'retired' WHERE tenant_id = ? AND version = 2", tid)
        self.sql("UPDATE tenant_keys SET state = 'active' WHERE tenant_id = ? AND version = 1", tid)
        time.sleep(SETTLE)
        self.assertReadyFailsOnKeystore()
        p = self.cli("key", "list", "keys", "--json", check=False)
        if p.returncode == 0:
            # The refusal is logged; the JSON document is the line that starts with "{".
            line = [l for l in p.stdout.decode().splitlines() if l.startswith("{")][-1]
            listed = json.loads(line)
            versions = listed if isinstance(listed, list) else listed.get("versions", [])
            active = [v for v in versions if v.get("active") or v.get("state") == "active"]
            self.assertNotIn(1, [v.get("version") for v in active], "a forged active state was believed")

    def test_untouched_keystore_is_ready_across_restarts(self):
        creds = self.d.create_tenant("calm")
        self.d.client_for(creds).list_buckets()
        self.assertReady()
        self.restart()
        self.assertReady()
        self.d.client_for(creds).list_buckets()
        status, _ = self.api("GET", "/tenants", self.tokens["alice"][0])
        self.assertEqual(status, 200)


class ApprovalForgeryTest(KeystoreForgeryBase):
    dual_control = True

    def request(self, who, *target) -> str:
        out = json.loads(self.cli("approval", "request", *target, "--token-file", self.tokens[who][1],
                                  "--json").stdout)
        return out["id"]

    def test_hand_granted_approval_is_refused(self):
        creds = self.d.create_tenant("victim")
        approval = self.request("alice", "tenant.shred", "victim")
        now = int(time.time() * 1000)
        self.sql("UPDATE approvals SET approved_by = 'bob', approved = ? WHERE id = ?", now, approval)
        for phase in ("running", "restarted"):
            with self.subTest(phase=phase):
                p = self.cli("tenant", "shred", "victim", "--confirm", "victim", "--approval", approval, check=False)
                self.assertNotEqual(p.returncode, 0, "a hand-granted approval shredded the tenant")
                self.assertTrue(self.d.client_for(creds).list_buckets() is not None)
                self.assertReadyFailsOnKeystore()
            if phase == "running":
                self.restart()

    def test_forged_approval_row_is_refused(self):
        self.d.create_tenant("victim")
        tid = self.tenant_id("victim")
        now = int(time.time() * 1000)
        self.sql("INSERT INTO approvals(id, operation, tenant_id, version, requested_by, requested, expires, "
                 "approved_by, approved) VALUES('apr-00000000deadbeef', 'tenant.shred', ?, 0, 'alice', ?, ?, 'bob', ?)",
                 tid, now, now + 600_000, now)
        for phase in ("running", "restarted"):
            with self.subTest(phase=phase):
                p = self.cli("tenant", "shred", "victim", "--confirm", "victim", "--approval",
                             "apr-00000000deadbeef", check=False)
                self.assertNotEqual(p.returncode, 0, "a forged approval row shredded the tenant")
                self.assertReadyFailsOnKeystore()
            if phase == "running":
                self.restart()

    def test_used_approval_cannot_be_reused_by_hand(self):
        self.d.create_tenant("first")
        approval = self.request("alice", "tenant.shred", "first")
        self.cli("approval", "approve", approval, "--token-file", self.tokens["bob"][1])
        self.cli("tenant", "shred", "first", "--confirm", "first", "--approval", approval)
        # Point the used approval at another tenant and clear its use.
        self.d.create_tenant("second")
        self.sql("UPDATE approvals SET used = NULL, tenant_id = ? WHERE id = ?", self.tenant_id("second"), approval)
        p = self.cli("tenant", "shred", "second", "--confirm", "second", "--approval", approval, check=False)
        self.assertNotEqual(p.returncode, 0, "a used approval was reused after an edit")
        self.assertReadyFailsOnKeystore()


@unittest.skipUnless(os.environ.get("COFFRE_LEGACY_BINARY"),
                     "set COFFRE_LEGACY_BINARY to a coffre built before authenticated rows")
class LegacyKeystoreUpgradeTest(unittest.TestCase):
    """A keystore written by the previous release opens, is converted, and keeps every credential
    and object."""

    def test_upgrade_keeps_everything_and_authenticates_rows(self):
        tmp = tempfile.mkdtemp(prefix="coffre-upgrade-it-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        config = os.path.join(tmp, "coffre.json")
        with open(config, "w") as f:
            json.dump({"create_root_key": True, "create_dev_tenant": True}, f)
        old = Daemon(binary=os.environ["COFFRE_LEGACY_BINARY"], extra_args=["--config", config], tmp=tmp)
        old.start()
        try:
            creds = old.create_tenant("acme")
            client = old.client_for(creds)
            client.create_bucket(Bucket="kept")
            client.put_object(Bucket="kept", Key="k", Body=b"before the upgrade")
            admin = json.loads(old.run_cli("admin-credential", "create", "--role", "admin", "alice", "--json",
                                           "--config", config, "--data-dir", old.data_dir).stdout)["token"]
        finally:
            old.stop()
        new = Daemon(extra_args=["--config", config], tmp=tmp)
        new.start()
        self.addCleanup(lambda: new.alive and new.stop(check=False))
        self.assertEqual(new.client_for(creds).get_object(Bucket="kept", Key="k")["Body"].read(),
                         b"before the upgrade")
        port = None
        for line in new.stdout_lines:
            if line.startswith("admin listening on "):
                port = int(line.rsplit(":", 1)[1])
        self.assertIsNotNone(port)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/tenants", headers={"Authorization": "Bearer " + admin})
        self.assertEqual(conn.getresponse().status, 200, "an admin token of the old release stopped working")
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/health/ready")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        db = sqlite3.connect(os.path.join(new.data_dir, "keystore.db"))
        self.assertEqual(db.execute("SELECT count(*) FROM access_keys WHERE mac IS NULL").fetchone()[0], 0)
        self.assertIn("keystore-rows-authenticated",
                      [r[0] for r in db.execute("SELECT event FROM key_events WHERE tenant_id = ''")])
        db.close()
        new.stop()


if __name__ == "__main__":
    unittest.main()
