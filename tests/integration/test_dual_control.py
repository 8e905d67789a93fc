"""Dual control on the real daemon (docs/KEYS.md "Dual control"): with `dual_control` in the
config, shredding a tenant, destroying a key version and rotating the root key are refused
without an approval; one admin credential requests it (CLI or admin API), the same admin cannot
grant it, an auditor cannot, a second admin can; the approval then runs exactly the operation it
names, once (a failed run gives it back); requests and grants are in the auditors' export, with
both people, and the operation's record names its approval. One person cannot walk around it with
a second admin credential: making one needs an approval (after the first two), one made after a
request cannot grant it, and credential changes and access-key enabling are in the signed log."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tempfile
import time
import unittest

from harness import Daemon


class DualControlTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-dual-it-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.config = os.path.join(self.tmp, "coffre.json")
        with open(self.config, "w") as f:
            json.dump({"development": True, "create_root_key": True, "create_dev_tenant": True, "dual_control": True,
                       "dual_control_approval_minutes": 5}, f)
        self.d = Daemon(extra_args=["--config", self.config])
        self.d.start()
        self.addCleanup(self.d.cleanup)
        self.addCleanup(lambda: self.d.proc and self.d.proc.poll() is None and self.d.stop(check=False))
        self.admin_port = None
        deadline = time.monotonic() + 10
        while self.admin_port is None and time.monotonic() < deadline:
            for line in list(self.d.stdout_lines):
                if line.startswith("admin listening on "):
                    self.admin_port = int(line.rsplit(":", 1)[1])
            time.sleep(0.05)
        self.assertIsNotNone(self.admin_port, self.d.diagnostics())
        self.tokens = {}
        for name, role in (("alice", "admin"), ("bob", "admin"), ("audrey", "auditor")):
            out = json.loads(self.cli("admin-credential", "create", "--role", role, name, "--json").stdout)
            path = os.path.join(self.tmp, name + ".token")
            with open(path, "w") as f:
                f.write(out["token"] + "\n")
            os.chmod(path, 0o600)
            self.tokens[name] = (out["token"], path)

    # -- helpers --
    def cli(self, *args, check=True):
        return self.d.run_cli(*args, "--config", self.config, "--data-dir", self.d.data_dir, check=check)

    def refused(self, *args, message: str):
        p = self.cli(*args, check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn(message, p.stderr.decode(), p.stderr)
        return p

    def request(self, who, *target) -> str:
        out = json.loads(self.cli("approval", "request", *target, "--token-file", self.tokens[who][1],
                                  "--json").stdout)
        self.assertEqual(out["state"], "pending")
        self.assertEqual(out["requested_by"], who)
        return out["id"]

    def api(self, method, path, who, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=30)
        headers = {"Authorization": "Bearer " + self.tokens[who][0]}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        return resp.status, json.loads(payload)

    def state(self, approval_id) -> str:
        listed = json.loads(self.cli("approval", "list", "--json").stdout)
        return next(a["state"] for a in listed if a["id"] == approval_id)

    def readable(self, client, bucket) -> bool:
        try:
            return client.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"secret " + bucket.encode()
        except Exception:  # noqa: BLE001 - any failure means not readable
            return False

    def export(self, tenant):
        out = os.path.join(self.tmp, f"export-{tenant}-{time.monotonic_ns()}.jsonl")
        self.cli("audit", "export", "--tenant", tenant, "--format", "jsonl", "--out", out)
        with open(out) as f:
            return [r for r in (json.loads(line) for line in f) if r["type"] == "record"]

    # ------------------------------------------------------------------------------------------

    def test_shred_needs_a_second_admin(self):
        clients = {}
        for name in ("victim", "keeper"):
            creds = json.loads(self.cli("tenant", "create", name, "--json").stdout)
            c = self.d.client(creds["access_key_id"], creds["secret_access_key"])
            c.create_bucket(Bucket=name)
            c.put_object(Bucket=name, Key="doc", Body=b"secret " + name.encode())
            clients[name] = c

        shred = ("tenant", "shred", "victim", "--confirm", "victim")
        self.refused(*shred, message="dual control is on")

        approval = self.request("alice", "tenant.shred", "victim")
        self.refused("approval", "approve", approval, "--token-file", self.tokens["alice"][1],
                     message="a second, different admin credential must grant it")
        self.refused("approval", "approve", approval, "--token-file", self.tokens["audrey"][1],
                     message="auditor")
        self.refused(*shred, "--approval", approval, message="a second admin must grant it first")
        # A wrong token: the same answer as the admin API's for an unknown one.
        bad = os.path.join(self.tmp, "bad.token")
        with open(bad, "w") as f:
            f.write("coffre_adm_" + "A" * 43)
        self.refused("approval", "approve", approval, "--token-file", bad, message="invalid or disabled admin token")
        self.assertTrue(self.readable(clients["victim"], "victim"))

        status, granted = self.api("POST", f"/approvals/{approval}/approve", "bob")
        self.assertEqual(status, 200, granted)
        self.assertEqual(granted["state"], "approved")
        self.assertEqual(granted["approved_by"], "bob")

        # The approval names its target: it does not shred another tenant.
        self.refused("tenant", "shred", "keeper", "--confirm", "keeper", "--approval", approval,
                     message="not this operation")
        self.assertEqual(self.state(approval), "approved")

        self.cli(*shred, "--approval", approval)
        self.assertEqual(self.state(approval), "used")
        deadline = time.monotonic() + 10
        while self.readable(clients["victim"], "victim") and time.monotonic() < deadline:
            time.sleep(0.2)  # the daemon's keystore cache revalidates within a second
        self.assertFalse(self.readable(clients["victim"], "victim"))
        self.assertTrue(self.readable(clients["keeper"], "keeper"))

        # The auditors' view: who asked, who granted, and the shred naming the approval.
        records = self.export("victim")
        ops = [(r["operation"], r["outcome"]) for r in records]
        self.assertIn(("approval.request", "success"), ops)
        request = next(r for r in records if r["operation"] == "approval.request")
        grant = next(r for r in records if r["operation"] == "approval.grant")
        shred_rec = next(r for r in records if r["operation"] == "tenant.shred")
        self.assertEqual(request["access_key_id"], "alice")
        self.assertIn(approval, request["action"])
        self.assertEqual(grant["access_key_id"], "bob")
        self.assertIn(approval, grant["action"])
        self.assertIn("requested by alice", grant["action"])
        self.assertIn("with approval " + approval, shred_rec["action"])
        self.assertLess(records.index(request), records.index(grant))
        self.assertLess(records.index(grant), records.index(shred_rec))

    def test_destroy_keeps_its_approval_when_it_fails_and_uses_it_once(self):
        creds = json.loads(self.cli("tenant", "create", "acme", "--json").stdout)
        c = self.d.client(creds["access_key_id"], creds["secret_access_key"])
        c.create_bucket(Bucket="acme")
        c.put_object(Bucket="acme", Key="doc", Body=b"secret acme")
        self.cli("key", "rotate", "acme")

        status, requested = self.api("POST", "/approvals", "bob",
                                     {"operation": "tenant_key.destroy", "tenant": "acme", "version": 1})
        self.assertEqual(status, 201, requested)
        approval = requested["id"]
        self.cli("approval", "approve", approval, "--token-file", self.tokens["alice"][1])
        # Version 1 still wraps the object's data key: refused, and the approval is kept.
        self.refused("key", "destroy", "acme", "1", "--approval", approval, message="run coffre key rewrap first")
        self.assertEqual(self.state(approval), "approved")
        self.cli("key", "rewrap", "acme")
        self.refused("key", "destroy", "acme", "1", message="dual control is on")
        self.cli("key", "destroy", "acme", "1", "--approval", approval)
        self.assertEqual(self.state(approval), "used")
        versions = json.loads(self.cli("key", "list", "acme", "--json").stdout)["versions"]
        self.assertEqual([v["version"] for v in versions], [2])
        self.assertTrue(self.readable(c, "acme"))
        # Used up.
        self.cli("key", "rotate", "acme")
        self.cli("key", "rewrap", "acme")
        self.refused("key", "destroy", "acme", "2", "--approval", approval, message="not this operation")
        status, listed = self.api("GET", "/approvals", "alice")
        self.assertEqual(status, 200)
        self.assertTrue(listed["dual_control"])
        self.assertEqual([a["state"] for a in listed["approvals"] if a["id"] == approval], ["used"])

    def test_root_key_rotation_needs_an_approval(self):
        self.d.stop()
        new_key = os.path.join(self.tmp, "new-root.key")
        self.cli_plain("keystore", "init", "--root-key-file", new_key)
        rotate = ("keystore", "rotate-root", "--new-key-file", new_key)
        self.refused(*rotate, message="dual control is on")
        approval = self.request("alice", "root_key.rotate")
        self.cli("approval", "approve", approval, "--token-file", self.tokens["bob"][1])
        rotated = self.cli(*rotate, "--approval", approval)
        self.assertIn(b"root key rotated", rotated.stdout)
        self.assertEqual(self.state_with_key(new_key, approval), "used")

    # -- one person walking around dual control with a second credential ----------------------

    def audit_ops(self) -> int:
        """How many records `coffre audit check` verified (every chain and signature)."""
        out = self.cli("audit", "check").stdout.decode()
        self.assertIn("OK:", out)
        return int(out.split("OK: ", 1)[1].split(" ", 1)[0])

    def global_records(self):
        # The admin-credential records are in the global chain (no tenant), which
        # `audit export --tenant` does not cover: the test looks for them in the stored files.
        found = []
        for root, _dirs, files in os.walk(os.path.join(self.d.data_dir)):
            for name in files:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as f:
                        found.append(f.read())
                except OSError:
                    pass
        return b"\n".join(found)

    def test_one_admin_cannot_create_a_second_admin_alone(self):
        before = self.audit_ops()
        self.refused("admin-credential", "create", "--role", "admin", "mallory", message="dual control is on")
        listed = json.loads(self.cli("admin-credential", "list", "--json").stdout)
        self.assertNotIn("mallory", [c["name"] for c in listed])
        # The way that works: one admin requests it, another grants it.
        approval = self.request("alice", "admin_credential.create", "mallory")
        self.refused("admin-credential", "create", "--role", "admin", "mallory", "--approval", approval,
                     message="a second admin must grant it first")
        self.cli("approval", "approve", approval, "--token-file", self.tokens["bob"][1])
        # It approves that name only.
        self.refused("admin-credential", "create", "--role", "admin", "eve", "--approval", approval,
                     message="not this operation")
        out = json.loads(self.cli("admin-credential", "create", "--role", "admin", "mallory", "--approval",
                                  approval, "--json").stdout)
        self.assertEqual(out["name"], "mallory")
        self.assertEqual(self.state(approval), "used")
        # An auditor credential takes no part in dual control: no approval needed.
        self.cli("admin-credential", "create", "--role", "auditor", "audit2")
        self.cli("admin-credential", "disable", "audit2")
        # request, grant, create mallory, create audit2, disable audit2 (the refused attempt made
        # no record: it was refused before anything was recorded).
        self.assertEqual(self.audit_ops(), before + 5)
        raw = self.global_records()
        self.assertIn(b"admin_credential.create", raw)
        self.assertIn(b"admin_credential.disable", raw)
        self.assertNotIn(out["token"].encode(), raw)

    def test_a_credential_created_after_the_request_cannot_grant_it(self):
        self.cli("tenant", "create", "victim")
        shred = self.request("alice", "tenant.shred", "victim")
        time.sleep(0.01)
        # carol comes into existence after the shred was requested (here properly approved; the
        # attack would be alice making carol herself).
        made = self.request("alice", "admin_credential.create", "carol")
        self.cli("approval", "approve", made, "--token-file", self.tokens["bob"][1])
        out = json.loads(self.cli("admin-credential", "create", "--role", "admin", "carol", "--approval", made,
                                  "--json").stdout)
        path = os.path.join(self.tmp, "carol.token")
        with open(path, "w") as f:
            f.write(out["token"] + "\n")
        self.refused("approval", "approve", shred, "--token-file", path, message="created after")
        self.assertEqual(self.state(shred), "pending")
        self.cli("approval", "approve", shred, "--token-file", self.tokens["bob"][1])
        self.assertEqual(self.state(shred), "approved")

    def test_credential_changes_and_access_key_enable_are_in_the_signed_log(self):
        creds = json.loads(self.cli("tenant", "create", "acme", "--json").stdout)
        key = creds["access_key_id"]
        self.cli("access-key", "disable", "acme", key)
        self.cli("access-key", "enable", "acme", key)
        records = self.export("acme")
        ops = [(r["operation"], r["access_key_id"]) for r in records]
        self.assertIn(("access_key.disable", key), ops)
        self.assertIn(("access_key.enable", key), ops)
        self.assertLess(ops.index(("access_key.disable", key)), ops.index(("access_key.enable", key)))
        # Disabling an admin credential is recorded too (it can bring the count of enabled
        # admins back under the bootstrap threshold, so it must never go unseen).
        before = self.audit_ops()
        self.cli("admin-credential", "disable", "bob")
        self.assertEqual(self.audit_ops(), before + 1)
        self.assertIn(b"admin_credential.disable", self.global_records())

    # rotate-root's helpers: after it, the keystore opens only with the new key.
    def cli_plain(self, *args):
        return self.d.run_cli(*args)

    def state_with_key(self, key_file, approval_id) -> str:
        config = os.path.join(self.tmp, "after-rotation.json")
        with open(config, "w") as f:
            json.dump({"root_key_file": key_file, "dual_control": True}, f)
        listed = json.loads(self.d.run_cli("approval", "list", "--json", "--config", config,
                                           "--data-dir", self.d.data_dir).stdout)
        return next(a["state"] for a in listed if a["id"] == approval_id)


if __name__ == "__main__":
    unittest.main()
