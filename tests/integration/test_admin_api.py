"""The authenticated admin API on the real daemon's admin listener (docs/OPERATIONS.md, "Admin
API"): credentials made with `coffre admin-credential create`, every endpoint driven over HTTP
for its role, refused (403) for the other role and (401) without a valid token; an access key
made through the API works with boto3; a rotation through the API shows in `coffre key list` and
as exactly one audit record; the auditor's export verifies with `coffre audit verify`; no token
ever appears in the daemon's output."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import tempfile
import time
import unittest
import urllib.parse

from harness import CoffreTestCase, unique_bucket


class AdminApiTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.daemon
        cls.admin_port = None
        deadline = time.monotonic() + 10
        while cls.admin_port is None and time.monotonic() < deadline:
            for line in list(d.stdout_lines):
                if line.startswith("admin listening on "):
                    cls.admin_port = int(line.rsplit(":", 1)[1])
            if cls.admin_port is None:
                time.sleep(0.05)
        if cls.admin_port is None:
            raise AssertionError("no 'admin listening on' line\n" + d.diagnostics())
        cls.admin_token = cls.make_credential("ops-alice", "admin")
        cls.admin2_token = cls.make_credential("ops-bob", "admin")
        cls.auditor_token = cls.make_credential("audit-carol", "auditor")
        cls.tokens = [cls.admin_token, cls.admin2_token, cls.auditor_token]

    @classmethod
    def make_credential(cls, name, role) -> str:
        p = cls.daemon.run_cli("admin-credential", "create", "--role", role, name,
                               "--data-dir", cls.daemon.data_dir, "--json")
        out = json.loads(p.stdout)
        assert out["name"] == name and out["role"] == role, out
        assert out["token"].startswith("coffre_adm_"), out
        return out["token"]

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-adminapi-it-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    # -- helpers --
    def call(self, method, path, token=None, body=None, raw_body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=30)
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        return resp.status, dict(resp.getheaders()), payload

    def ok_json(self, method, path, token, body=None, status=200):
        code, headers, payload = self.call(method, path, token, body)
        self.assertEqual(code, status, payload)
        self.assertTrue(headers["Content-Type"].startswith("application/json"), headers)
        return json.loads(payload)

    def assertJsonError(self, code, payload, expected):
        self.assertEqual(code, expected, payload)
        doc = json.loads(payload)
        self.assertIn("error", doc)
        self.assertIn("message", doc["error"])
        return doc["error"]["code"]

    def cli(self, *args, check=True):
        return self.daemon.run_cli(*args, "--data-dir", self.daemon.data_dir, check=check)

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def export_records(self, tenant):
        code, headers, payload = self.call(
            "GET", "/audit/export?" + urllib.parse.urlencode({"tenant": tenant, "format": "jsonl"}),
            self.auditor_token)
        self.assertEqual(code, 200, payload)
        lines = [json.loads(line) for line in payload.decode().splitlines() if line]
        return payload, [r for r in lines if r["type"] == "record"]

    # The endpoints of each role, with what each needs to answer 2xx.
    def admin_endpoints(self, tenant, access_key):
        return [
            ("GET", "/tenants", None),
            ("POST", "/tenants", {"name": "x-role-probe"}),
            ("GET", f"/tenants/{tenant}/access-keys", None),
            ("POST", f"/tenants/{tenant}/access-keys", None),
            ("POST", f"/tenants/{tenant}/access-keys/{access_key}/disable", None),
            ("POST", f"/tenants/{tenant}/access-keys/{access_key}/enable", None),
            ("DELETE", f"/tenants/{tenant}/access-keys/{access_key}", None),
            ("GET", f"/tenants/{tenant}/keys", None),
            ("POST", f"/tenants/{tenant}/keys/rotate", None),
        ]

    AUDITOR_ENDPOINTS = [("GET", "/audit/export?tenant=dev", None), ("GET", "/audit/public-key", None)]

    # ------------------------------------------------------------------------------------------

    def test_health_and_metrics_need_no_token(self):
        self.assertEqual(self.call("GET", "/health/live")[0], 200)
        self.assertEqual(self.call("GET", "/metrics")[0], 200)

    def test_every_endpoint_refuses_missing_and_invalid_tokens(self):
        for method, path, body in self.admin_endpoints("dev", "CO000000000000000000") + self.AUDITOR_ENDPOINTS:
            for token in (None, "coffre_adm_bogus", self.admin_token + "x", ""):
                code, headers, payload = self.call(method, path, token, body)
                self.assertEqual(self.assertJsonError(code, payload, 401), "unauthenticated", (method, path))
                self.assertIn("Bearer", headers.get("WWW-Authenticate", ""))

    def test_auditor_cannot_reach_admin_endpoints(self):
        before = self.cli_json("key", "list", "dev")
        for method, path, body in self.admin_endpoints("dev", self.daemon.access_key):
            code, _, payload = self.call(method, path, self.auditor_token, body)
            self.assertEqual(self.assertJsonError(code, payload, 403), "forbidden", (method, path))
        self.assertEqual(self.cli_json("key", "list", "dev"), before)
        # the dev access key is untouched
        self.s3.list_buckets()

    def test_admin_cannot_read_the_audit_log(self):
        for method, path, body in self.AUDITOR_ENDPOINTS:
            code, _, payload = self.call(method, path, self.admin_token, body)
            self.assertEqual(self.assertJsonError(code, payload, 403), "forbidden", (method, path))

    def test_tenant_and_access_key_lifecycle_through_the_api(self):
        t = self.ok_json("POST", "/tenants", self.admin_token, {"name": "api-acme"}, status=201)
        self.assertEqual(t["name"], "api-acme")
        first = t["access_key"]  # as `coffre tenant create`: with a first access key
        first_s3 = self.daemon.client_for(first)
        first_s3.list_buckets()
        names = [x["name"] for x in self.ok_json("GET", "/tenants", self.admin_token)["tenants"]]
        self.assertIn("api-acme", names)
        self.assertIn("api-acme", [x["tenant"] for x in self.cli_json("tenant", "list")])
        code, _, payload = self.call("POST", "/tenants", self.admin_token, {"name": "api-acme"})
        self.assertJsonError(code, payload, 409)

        k = self.ok_json("POST", "/tenants/api-acme/access-keys", self.admin_token, status=201)
        creds = {"access_key_id": k["access_key_id"], "secret_access_key": k["secret_access_key"]}
        s3 = self.daemon.client_for(creds)
        bucket = unique_bucket("adminapi")
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k", Body=b"hello admin api")
        self.assertEqual(s3.get_object(Bucket=bucket, Key="k")["Body"].read(), b"hello admin api")

        listed = self.ok_json("GET", "/tenants/api-acme/access-keys", self.admin_token)["access_keys"]
        self.assertEqual(sorted(x["access_key_id"] for x in listed),
                         sorted([first["access_key_id"], k["access_key_id"]]))
        self.assertNotIn("secret_access_key", listed[0])
        self.assertIn("last_used", listed[0])

        self.ok_json("POST", f"/tenants/api-acme/access-keys/{k['access_key_id']}/disable", self.admin_token)
        def cli_state():
            return {x["access_key_id"]: x["enabled"] for x in self.cli_json("access-key", "list", "api-acme")}
        self.assertEqual(cli_state(), {first["access_key_id"]: True, k["access_key_id"]: False})
        self.ok_json("POST", f"/tenants/api-acme/access-keys/{k['access_key_id']}/enable", self.admin_token)
        self.assertEqual(cli_state(), {first["access_key_id"]: True, k["access_key_id"]: True})
        self.ok_json("DELETE", f"/tenants/api-acme/access-keys/{k['access_key_id']}", self.admin_token)
        self.assertEqual(cli_state(), {first["access_key_id"]: True})
        code, _, payload = self.call("DELETE", f"/tenants/api-acme/access-keys/{k['access_key_id']}",
                                     self.admin_token)
        self.assertJsonError(code, payload, 404)

        _, recs = self.export_records("api-acme")
        api = [(r["operation"], r["action"]) for r in recs if r["action"].startswith("admin-api:")]
        self.assertEqual(api, [
            ("tenant_key.create", "admin-api:tenant create by ops-alice"),
            ("access_key.create", "admin-api:tenant create by ops-alice"),
            ("access_key.create", "admin-api:access-key create by ops-alice"),
            ("access_key.disable", "admin-api:access-key disable by ops-alice"),
            ("access_key.enable", "admin-api:access-key enable by ops-alice"),
            ("access_key.delete", "admin-api:access-key delete by ops-alice"),
        ])
        create = [r for r in recs if r["operation"] == "tenant_key.create"][0]
        self.assertEqual(create["access_key_id"], "ops-alice")
        self.assertTrue(create["client_address"].startswith("127.0.0.1:"), create)
        self.assertNotEqual(create["request_id"], "")

    def test_rotation_shows_in_key_list_and_is_one_audit_record(self):
        self.cli("tenant", "create", "api-rot")
        before = [r for r in self.export_records("api-rot")[1] if r["operation"] == "tenant_key.rotate"]
        self.assertEqual(before, [])
        r = self.ok_json("POST", "/tenants/api-rot/keys/rotate", self.admin_token)
        self.assertEqual(r["active_version"], 2)
        cli = self.cli_json("key", "list", "api-rot")
        self.assertEqual([(v["version"], v["state"]) for v in cli["versions"]], [(1, "retired"), (2, "active")])
        api = self.ok_json("GET", "/tenants/api-rot/keys", self.admin_token)
        self.assertEqual([(v["version"], v["state"]) for v in api["versions"]], [(1, "retired"), (2, "active")])
        self.assertTrue(all("objects" in v for v in api["versions"]))
        rot = [r for r in self.export_records("api-rot")[1] if r["operation"] == "tenant_key.rotate"]
        self.assertEqual(len(rot), 1, rot)
        self.assertEqual(rot[0]["action"], "admin-api:key rotate by ops-alice")
        self.assertEqual(rot[0]["access_key_id"], "ops-alice")
        self.assertEqual(rot[0]["key_version"], 2)

    def test_auditor_export_verifies_offline(self):
        self.s3.put_object(Bucket=self.new_bucket(), Key="a", Body=b"x" * 100)
        key = self.ok_json("GET", "/audit/public-key", self.auditor_token)["public_key"]
        self.assertEqual(key, self.cli("audit", "public-key").stdout.decode().strip())
        for fmt in ("jsonl", "csv"):
            code, headers, payload = self.call(
                "GET", f"/audit/export?tenant=dev&format={fmt}&from=2000-01-01&to=2999-01-01T00%3A00%3A00Z",
                self.auditor_token)
            self.assertEqual(code, 200, payload)
            self.assertIn("attachment", headers.get("Content-Disposition", ""))
            path = os.path.join(self.tmp, f"api-export.{fmt}")
            with open(path, "wb") as f:
                f.write(payload)
            p = self.daemon.run_cli("audit", "verify", path, "--public-key", key, check=False)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn(b"OK:", p.stdout)

    def test_bad_input(self):
        def err(method, path, token, expected, body=None, raw_body=None, headers=None):
            code, hdrs, payload = self.call(method, path, token, body, raw_body, headers)
            self.assertJsonError(code, payload, expected)
            return hdrs
        err("GET", "/tenants/ghost/access-keys", self.admin_token, 404)
        err("POST", "/tenants/ghost/keys/rotate", self.admin_token, 404)
        err("GET", "/audit/export?tenant=ghost", self.auditor_token, 404)
        err("POST", "/tenants", self.admin_token, 400, raw_body=b"{not json",
            headers={"Content-Type": "application/json"})
        err("POST", "/tenants", self.admin_token, 400, body={"nom": "x"})
        err("POST", "/tenants", self.admin_token, 400, body={"name": "Bad Name"})
        err("GET", "/audit/export?tenant=dev&from=2026-02-01&to=2026-01-01", self.auditor_token, 400)
        err("GET", "/audit/export?tenant=dev&format=xml", self.auditor_token, 400)
        err("GET", "/nowhere", self.admin_token, 404)
        err("GET", "/tenants/dev/keys/rotate", self.admin_token, 405)
        hdrs = err("PUT", "/tenants", self.admin_token, 405)
        self.assertEqual(hdrs.get("Allow"), "GET, POST")
        # A large body is refused from its Content-Length, before any of it is read: send only
        # the header, so the answer cannot race a reset caused by unread bytes.
        with socket.create_connection(("127.0.0.1", self.admin_port), timeout=30) as sock:
            sock.sendall(("POST /tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + self.admin_token +
                          "\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n").encode())
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            self.assertJsonError(resp.status, resp.read(), 413)
        names = [x["name"] for x in self.ok_json("GET", "/tenants", self.admin_token)["tenants"]]
        self.assertNotIn("x", names)

    def test_disabled_credential_is_refused(self):
        token = self.make_credential("ops-temp", "admin")
        self.tokens.append(token)
        self.ok_json("GET", "/tenants", token)
        self.cli("admin-credential", "disable", "ops-temp")
        code, _, payload = self.call("GET", "/tenants", token)
        self.assertJsonError(code, payload, 401)
        listed = {c["name"]: c for c in self.cli_json("admin-credential", "list")}
        self.assertIsNotNone(listed["ops-temp"]["disabled"])
        self.assertEqual(listed["audit-carol"]["role"], "auditor")
        self.assertTrue(all("token" not in c for c in listed.values()))
        p = self.cli("admin-credential", "create", "--role", "admin", "ops-temp", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        p = self.cli("admin-credential", "create", "--role", "root", "ops-other", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)

    def test_zz_tokens_never_appear_in_the_daemon_output(self):
        # Run last (alphabetical order): every other test has sent its tokens by now.
        self.call("GET", "/tenants", self.admin_token)
        self.call("GET", "/tenants", self.auditor_token)
        self.call("GET", "/audit/public-key", self.admin_token + "x")
        out = "\n".join(self.daemon.stdout_lines)
        with open(self.daemon._stderr_path, "rb") as f:
            err = f.read().decode("utf-8", "replace")
        self.assertIn("admin API GET /tenants", err)
        for token in self.tokens:
            secret = token[len("coffre_adm_"):]
            self.assertNotIn(secret, out)
            self.assertNotIn(secret, err)


if __name__ == "__main__":
    unittest.main()
