"""The auditors' key-usage log, end to end: S3 operations through boto3 leave one record per key use
with the request id the client saw; the CLI exports a tenant's records and verifies them offline;
tampering with the export is detected and located; an unwritable audit log fails key use closed.
Key-lifecycle commands (tenant, key and access-key changes, the rotation policy) leave exactly one
record each, and refuse to act when their record cannot be written."""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

from harness import CoffreTestCase, Daemon, MiB, coffre_binary, gen_bytes, unique_bucket
from keystore_rows import age_tenant_key_rows
from test_operations import admin_get, admin_port, metric_value, write_config

DATA_KEY_USES = ("data_key.wrap", "data_key.unwrap", "data.decrypt")


def rid(resp) -> str:
    return resp["ResponseMetadata"]["RequestId"]


class AuditLogTest(CoffreTestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-audit-it-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def cli(self, *args, check=True):
        return self.daemon.run_cli(*args, check=check)

    def data_args(self):
        return ["--data-dir", self.daemon.data_dir]

    def public_key(self) -> str:
        return self.cli("audit", "public-key", *self.data_args()).stdout.decode().strip()

    def export(self, tenant="dev", fmt="jsonl", name=None, extra=()) -> str:
        out = os.path.join(self.tmp, name or f"export-{time.monotonic_ns()}.{fmt}")
        self.cli("audit", "export", *self.data_args(), "--tenant", tenant, "--format", fmt, "--out", out,
                 *extra)
        return out

    def verify(self, path, key=None, check=False):
        return self.cli("audit", "verify", path, "--public-key", key or self.public_key(), check=check)

    @staticmethod
    def read(path) -> str:
        with open(path) as f:
            return f.read()

    @staticmethod
    def records(path):
        with open(path) as f:
            lines = [json.loads(line) for line in f]
        return lines, [r for r in lines if r["type"] == "record"]

    # ------------------------------------------------------------------------------------------

    def test_each_key_use_is_recorded_once_with_the_request_id(self):
        s3 = self.s3
        bucket = self.new_bucket()
        ops = {}
        ops["put"] = rid(s3.put_object(Bucket=bucket, Key="dossier/contrat.pdf", Body=b"x" * 1000))
        ops["get"] = rid(s3.get_object(Bucket=bucket, Key="dossier/contrat.pdf"))
        ops["range"] = rid(s3.get_object(Bucket=bucket, Key="dossier/contrat.pdf", Range="bytes=10-20"))
        ops["copy"] = rid(s3.copy_object(Bucket=bucket, Key="dossier/copie.pdf",
                                         CopySource={"Bucket": bucket, "Key": "dossier/contrat.pdf"}))
        create = s3.create_multipart_upload(Bucket=bucket, Key="dossier/gros.bin")
        ops["create"] = rid(create)
        upload_id = create["UploadId"]
        part1 = s3.upload_part(Bucket=bucket, Key="dossier/gros.bin", UploadId=upload_id, PartNumber=1,
                               Body=gen_bytes(5 * MiB, 1))
        ops["part"] = rid(part1)
        part2 = s3.upload_part_copy(Bucket=bucket, Key="dossier/gros.bin", UploadId=upload_id, PartNumber=2,
                                    CopySource={"Bucket": bucket, "Key": "dossier/contrat.pdf"})
        ops["partcopy"] = rid(part2)
        done = s3.complete_multipart_upload(
            Bucket=bucket, Key="dossier/gros.bin", UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part1["ETag"]},
                                       {"PartNumber": 2, "ETag": part2["CopyPartResult"]["ETag"]}]})
        ops["complete"] = rid(done)
        ops["head"] = rid(s3.head_object(Bucket=bucket, Key="dossier/contrat.pdf"))  # uses no key

        path = self.export()
        p = self.verify(path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(b"OK:", p.stdout)
        _, recs = self.records(path)
        mine = [r for r in recs if r["bucket"] == bucket]
        by_rid = {}
        for r in mine:
            by_rid.setdefault(r["request_id"], []).append(r)

        def one(op_key, operation, action, key):
            got = by_rid.get(ops[op_key], [])
            self.assertEqual(len(got), 1, f"{op_key}: {got}")
            r = got[0]
            self.assertEqual(r["operation"], operation)
            self.assertEqual(r["action"], action)
            self.assertEqual(r["object_key"], key)
            self.assertEqual(r["outcome"], "success")
            self.assertEqual(r["access_key_id"], self.daemon.access_key)
            self.assertTrue(r["client_address"].startswith("127.0.0.1:"), r)
            self.assertEqual(r["key_version"], 1)
            self.assertEqual(len(r["key_id"]), 32)
            self.assertRegex(r["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            return r

        put = one("put", "data_key.wrap", "PutObject", "dossier/contrat.pdf")
        self.assertEqual(one("get", "data_key.unwrap", "GetObject", "dossier/contrat.pdf")["object_id"],
                         put["object_id"])
        one("range", "data_key.unwrap", "GetObject", "dossier/contrat.pdf")
        create_rec = one("create", "data_key.wrap", "CreateMultipartUpload", "dossier/gros.bin")
        self.assertEqual(create_rec["object_id"], upload_id)
        self.assertEqual(one("part", "data_key.unwrap", "UploadPart", "dossier/gros.bin")["object_id"], upload_id)
        # A Complete unwraps the upload's key to seal the object's manifest, then makes it the object's.
        complete = sorted(by_rid[ops["complete"]], key=lambda r: r["operation"], reverse=True)
        self.assertEqual([(r["operation"], r["action"], r["object_key"], r["object_id"]) for r in complete],
                         [("data_key.wrap", "CompleteMultipartUpload", "dossier/gros.bin", upload_id),
                          ("data_key.unwrap", "CompleteMultipartUpload", "dossier/gros.bin", upload_id)])
        # A copy uses two keys: the source's (unwrap) and the destination's (wrap).
        copy = sorted(by_rid[ops["copy"]], key=lambda r: r["operation"])
        self.assertEqual([(r["operation"], r["object_key"]) for r in copy],
                         [("data_key.unwrap", "dossier/contrat.pdf"), ("data_key.wrap", "dossier/copie.pdf")])
        partcopy = sorted(by_rid[ops["partcopy"]], key=lambda r: r["object_key"])
        self.assertEqual([(r["operation"], r["object_key"]) for r in partcopy],
                         [("data_key.unwrap", "dossier/contrat.pdf"), ("data_key.unwrap", "dossier/gros.bin")])
        self.assertNotIn(ops["head"], by_rid)
        self.assertEqual(len(mine), 11)
        # The chain: contiguous seqs, each record linking to its predecessor's hash.
        for a, b in zip(recs, recs[1:]):
            self.assertEqual(b["seq"], a["seq"] + 1)
            self.assertEqual(b["prev"], a["hash"])
        # No key material, nothing secret.
        text = self.read(path)
        self.assertNotIn(self.daemon.secret_key, text)
        self.assertTrue(os.path.exists(path + ".README.txt"))
        self.assertIn("coffre audit verify", self.read(path + ".README.txt"))

    def test_writes_refused_on_their_headers_use_no_key(self):
        """The authenticating worker begins a PUT's or a part's writer (wrapping or unwrapping a data
        key) only when the request's headers pass the checks its handler makes before the body: a
        request refused on them leaves no key-use record."""
        bucket = self.new_bucket()
        upload_id = self.s3.create_multipart_upload(Bucket=bucket, Key="parts")["UploadId"]
        refused = {
            "InvalidDigest": self.daemon.request("PUT", f"/{bucket}/bad-md5", body=b"data",
                                                 headers={"Content-MD5": "AAAA"}),
            "NotImplemented": self.daemon.request("PUT", f"/{bucket}/bad-condition", body=b"data",
                                                  headers={"If-None-Match": '"abc"'}),
            "InvalidArgument": self.daemon.request("PUT", f"/{bucket}/parts", body=b"data",
                                                   query=[("uploadId", upload_id), ("partNumber", "10001")]),
        }
        for code, r in refused.items():
            self.assertEqual(r.error_code, code, r)
        accepted = self.daemon.request("PUT", f"/{bucket}/parts", body=b"data",
                                       query=[("uploadId", upload_id), ("partNumber", "1")])
        self.assertEqual(accepted.status, 200, accepted)
        _, recs = self.records(self.export())
        request_ids = {r["request_id"] for r in recs}
        for code, r in refused.items():
            self.assertNotIn(r.headers["x-amz-request-id"], request_ids, code)
        self.assertIn(accepted.headers["x-amz-request-id"], request_ids)

    def test_a_tenants_export_holds_no_other_tenants_data(self):
        other = self.daemon.create_tenant(unique_bucket("tn"))
        c2 = self.daemon.client_for(other)
        b2 = unique_bucket("other")
        c2.create_bucket(Bucket=b2)
        r2 = rid(c2.put_object(Bucket=b2, Key="secret-dossier", Body=b"y"))
        bucket = self.new_bucket()
        self.s3.put_object(Bucket=bucket, Key="mine", Body=b"z")
        text = self.read(self.export())
        for needle in (b2, "secret-dossier", r2, other["access_key_id"]):
            self.assertNotIn(needle, text)
        other_path = self.export(tenant=other["tenant"])
        _, recs = self.records(other_path)
        # Its chain begins with its creation (section 1.1), then its one PUT.
        self.assertEqual([r["operation"] for r in recs], ["tenant_key.create", "access_key.create", "data_key.wrap"])
        self.assertEqual(recs[-1]["request_id"], r2)
        self.assertEqual(self.verify(other_path).returncode, 0)

    def test_tampering_is_detected_and_located(self):
        bucket = self.new_bucket()
        for i in range(4):
            self.s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"d")
        path = self.export()
        key = self.public_key()
        self.assertEqual(self.verify(path, key).returncode, 0)
        with open(path) as f:
            lines = f.read().splitlines()
        rec_idx = [i for i, line in enumerate(lines) if json.loads(line)["type"] == "record"]
        self.assertGreaterEqual(len(rec_idx), 4)

        def tampered(new_lines):
            p = os.path.join(self.tmp, f"t-{time.monotonic_ns()}.jsonl")
            with open(p, "w") as f:
                f.write("\n".join(new_lines) + "\n")
            return self.verify(p, key)

        # Edit a field of the second-to-last record.
        i = rec_idx[-2]
        r = json.loads(lines[i])
        r["object_key"] = "forged"
        p = tampered(lines[:i] + [json.dumps(r)] + lines[i + 1:])
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn(f"record seq {r['seq']} (line {i + 1})".encode(), p.stdout)
        self.assertIn(b"altered", p.stdout)
        # Delete a record.
        i = rec_idx[1]
        p = tampered(lines[:i] + lines[i + 1:])
        self.assertEqual(p.returncode, 3)
        self.assertIn(b"missing", p.stdout)
        # Swap two records.
        a, b = rec_idx[0], rec_idx[2]
        swapped = list(lines)
        swapped[a], swapped[b] = swapped[b], swapped[a]
        p = tampered(swapped)
        self.assertEqual(p.returncode, 3)
        self.assertIn(b"reordered", p.stdout)
        # Cut the end (keeping the checkpoint that signs it).
        cut = [line for j, line in enumerate(lines) if j != rec_idx[-1]]
        p = tampered(cut)
        self.assertEqual(p.returncode, 3)
        self.assertIn(b"missing", p.stdout)
        # Cut the end with its checkpoint: an unsigned tail remains.
        last_cp = max(j for j, line in enumerate(lines) if json.loads(line)["type"] == "checkpoint")
        p = tampered(lines[:last_cp])
        self.assertEqual(p.returncode, 3)
        self.assertIn(b"unsigned tail", p.stdout)
        # Forge a checkpoint.
        cp = json.loads(lines[last_cp])
        cp["seq"] += 1
        p = tampered(lines[:last_cp] + [json.dumps(cp)] + lines[last_cp + 1:])
        self.assertEqual(p.returncode, 3)
        self.assertIn(b"signature", p.stdout)

    def test_csv_export_verifies_and_detects_tampering(self):
        bucket = self.new_bucket()
        self.s3.put_object(Bucket=bucket, Key="csv-dossier", Body=b"d")
        path = self.export(fmt="csv")
        self.assertEqual(self.verify(path).returncode, 0)
        text = self.read(path)
        with open(path, "w") as f:
            f.write(text.replace("csv-dossier", "csv-dossieR"))
        p = self.verify(path)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)

    def test_bad_input_is_refused_with_nothing_written(self):
        out = os.path.join(self.tmp, "x.jsonl")
        for args in (["--tenant", "no-such-tenant"],
                     ["--tenant", "dev", "--from", "2026-02-01", "--to", "2026-01-01"],
                     ["--tenant", "dev", "--from", "yesterday"],
                     ["--tenant", "dev", "--format", "xml"]):
            p = self.cli("audit", "export", *self.data_args(), *args, "--out", out, check=False)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertTrue(p.stderr.strip(), args)
            self.assertFalse(os.path.exists(out), args)
        p = self.cli("audit", "export", *self.data_args(), "--tenant", "dev", "--out",
                     "/nonexistent-dir/x.jsonl", check=False)
        self.assertNotEqual(p.returncode, 0)
        # Existing output is never replaced.
        good = self.export(name="keep.jsonl")
        before = self.read(good)
        p = self.cli("audit", "export", *self.data_args(), "--tenant", "dev", "--out", good, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(self.read(good), before)
        # Wrong key, foreign and malformed files.
        wrong = "coffre-audit-ed25519:" + "11" * 32
        p = self.verify(good, wrong)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"another key", p.stderr)
        foreign = os.path.join(self.tmp, "foreign.json")
        with open(foreign, "w") as f:
            f.write('{"hello": "world"}\n')
        self.assertEqual(self.verify(foreign).returncode, 1)
        with open(foreign, "w") as f:
            f.write(before[: len(before) // 2])
        self.assertEqual(self.verify(foreign).returncode, 1)
        self.assertNotEqual(self.verify(os.path.join(self.tmp, "missing.jsonl")).returncode, 0)
        self.assertNotEqual(self.cli("audit", "verify", good, "--public-key", "garbage", check=False).returncode, 0)

    def test_unwritable_audit_log_fails_key_use_closed_and_recovers(self):
        bucket = self.new_bucket()
        self.s3.put_object(Bucket=bucket, Key="before", Body=b"d")
        # Another process holds audit.db's write lock past the gateway's busy timeout.
        db = sqlite3.connect(os.path.join(self.daemon.data_dir, "audit.db"), timeout=10, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            self.assertClientError("ServiceUnavailable", 503, self.s3.put_object, Bucket=bucket, Key="during",
                                   Body=b"d")
            self.assertClientError("ServiceUnavailable", 503, self.s3.get_object, Bucket=bucket, Key="before")
        finally:
            db.execute("ROLLBACK")
            db.close()
        self.assertKeyAbsent(bucket, "during")
        self.assertIn("audit log cannot be written", self.daemon.stderr_tail(200))
        # Key use resumes by itself.
        self.s3.put_object(Bucket=bucket, Key="after", Body=b"d")
        self.assertEqual(self.get_bytes(bucket, "before"), b"d")
        _, recs = self.records(self.export())
        keys = [r["object_key"] for r in recs if r["bucket"] == bucket]
        self.assertNotIn("during", keys)
        self.assertEqual(keys, ["before", "after", "before"])


class AuditLifecycleTest(CoffreTestCase):
    """Key-lifecycle events (docs/AUDIT.md section 1.1), on a daemon of its own."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-audit-lc-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def cli(self, *args, check=True, daemon=None):
        d = daemon or self.daemon
        return d.run_cli(*args, "--data-dir", d.data_dir, check=check)

    def cli_json(self, *args, daemon=None):
        return json.loads(self.cli(*args, "--json", daemon=daemon).stdout)

    def export(self, tenant, daemon=None):
        """The tenant's records, after checking that the export verifies offline."""
        d = daemon or self.daemon
        out = os.path.join(self.tmp, f"export-{time.monotonic_ns()}.jsonl")
        self.cli("audit", "export", "--tenant", tenant, "--format", "jsonl", "--out", out, daemon=d)
        key = self.cli("audit", "public-key", daemon=d).stdout.decode().strip()
        p = d.run_cli("audit", "verify", out, "--public-key", key, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(out) as f:
            lines = [json.loads(line) for line in f]
        header = lines[0]
        self.assertEqual(header["tenant_name"], tenant)
        return header["tenant"], [r for r in lines if r["type"] == "record"]

    def assertLifecycle(self, rec, operation, tenant_id, action, key_version=None, access_key_id=""):
        self.assertEqual(rec["operation"], operation, rec)
        self.assertEqual(rec["outcome"], "success", rec)
        self.assertEqual(rec["tenant"], tenant_id, rec)
        self.assertEqual(rec["action"], action, rec)
        self.assertEqual(rec["access_key_id"], access_key_id, rec)
        self.assertEqual(rec["client_address"], "", rec)
        self.assertEqual(rec["request_id"], "", rec)
        if operation.startswith("access_key."):
            self.assertEqual((rec["key_id"], rec["key_version"]), ("", 0), rec)
        else:
            self.assertEqual(rec["key_id"], tenant_id, rec)
            self.assertEqual(rec["key_version"], key_version, rec)
        if operation != "data_key.rewrap":
            self.assertEqual((rec["bucket"], rec["object_key"], rec["object_id"]), ("", "", ""), rec)

    def keystore_state(self, tenant):
        """What the CLI shows of a tenant's keys (none of these commands needs the audit log)."""
        keys = self.cli_json("key", "list", tenant)
        access = self.cli_json("access-key", "list", tenant)
        tenants = sorted(t["tenant"] for t in self.cli_json("tenant", "list"))
        return (keys["shredded"], [(v["version"], v["state"]) for v in keys["versions"]],
                sorted((k["access_key_id"], k["enabled"]) for k in access), tenants)

    # ------------------------------------------------------------------------------------------

    def test_dev_tenant_creation_at_first_start_is_recorded(self):
        dev_id, recs = self.export("dev")
        first = recs[:2]
        self.assertEqual([r["seq"] for r in first], [1, 2])
        self.assertLifecycle(first[0], "tenant_key.create", dev_id, "daemon:dev tenant", 1)
        self.assertLifecycle(first[1], "access_key.create", dev_id, "daemon:dev tenant",
                             access_key_id=self.daemon.access_key)
        lifecycle = [r for r in recs if r["operation"] not in DATA_KEY_USES]
        self.assertEqual(len(lifecycle), 2, lifecycle)

    def test_each_lifecycle_command_is_recorded_exactly_once(self):
        name = unique_bucket("lc")
        creds = self.daemon.create_tenant(name)
        first_key = creds["access_key_id"]
        s3 = self.daemon.client_for(creds)
        bucket = unique_bucket("lcb")
        s3.create_bucket(Bucket=bucket)
        put_rid = rid(s3.put_object(Bucket=bucket, Key="dossier/a.pdf", Body=b"a" * 100))
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dossier/big.bin")["UploadId"]

        self.cli("key", "rotate", name)
        self.cli("key", "rewrap", name)
        self.cli("key", "destroy", name, "1")
        second = self.cli_json("access-key", "create", name)
        second_key = second["access_key_id"]
        self.cli("access-key", "disable", name, second_key)
        self.cli("access-key", "enable", name, second_key)
        self.cli("access-key", "delete", name, second_key)
        self.cli("tenant", "shred", name, "--confirm", name)

        tenant_id, recs = self.export(name)
        put = [r for r in recs if r["request_id"] == put_rid]
        self.assertEqual(len(put), 1)
        lifecycle = [r for r in recs if r["operation"] not in DATA_KEY_USES]
        self.assertEqual([r["operation"] for r in lifecycle],
                         ["tenant_key.create", "access_key.create", "tenant_key.rotate", "data_key.rewrap",
                          "data_key.rewrap", "tenant_key.destroy", "access_key.create", "access_key.disable",
                          "access_key.enable", "access_key.delete", "tenant.shred"])
        it = iter(lifecycle)
        self.assertLifecycle(next(it), "tenant_key.create", tenant_id, "cli:tenant create", 1)
        self.assertLifecycle(next(it), "access_key.create", tenant_id, "cli:tenant create",
                             access_key_id=first_key)
        self.assertLifecycle(next(it), "tenant_key.rotate", tenant_id, "cli:key rotate", 2)
        rewraps = [next(it), next(it)]
        for r in rewraps:
            self.assertLifecycle(r, "data_key.rewrap", tenant_id, "cli:key rewrap", 2)
            self.assertEqual(r["bucket"], bucket)
        # One per data key: the object's and the multipart upload's in progress.
        self.assertEqual(sorted((r["object_key"], r["object_id"]) for r in rewraps),
                         sorted([("dossier/a.pdf", put[0]["object_id"]), ("dossier/big.bin", upload_id)]))
        self.assertLifecycle(next(it), "tenant_key.destroy", tenant_id, "cli:key destroy", 1)
        self.assertLifecycle(next(it), "access_key.create", tenant_id, "cli:access-key create",
                             access_key_id=second_key)
        self.assertLifecycle(next(it), "access_key.disable", tenant_id, "cli:access-key disable",
                             access_key_id=second_key)
        self.assertLifecycle(next(it), "access_key.enable", tenant_id, "cli:access-key enable",
                             access_key_id=second_key)
        self.assertLifecycle(next(it), "access_key.delete", tenant_id, "cli:access-key delete",
                             access_key_id=second_key)
        self.assertLifecycle(next(it), "tenant.shred", tenant_id, "cli:tenant shred", 2)
        # The chain is whole and nothing secret went into it.
        self.assertEqual([r["seq"] for r in recs], list(range(recs[0]["seq"], recs[0]["seq"] + len(recs))))
        text = json.dumps(recs)
        for secret in (creds["secret_access_key"], second["secret_access_key"]):
            self.assertNotIn(secret, text)
        # Re-running shred only finishes the catalog cleanup: no key is touched, nothing recorded.
        self.cli("tenant", "shred", name, "--confirm", name)
        _, again = self.export(name)
        self.assertEqual(len([r for r in again if r["operation"] == "tenant.shred"]), 1)

    def test_commands_refuse_to_act_when_the_audit_log_cannot_be_written(self):
        name = unique_bucket("locked")
        self.daemon.create_tenant(name)
        self.cli("key", "rotate", name)  # so that version 1 could be destroyed
        spare = self.cli_json("access-key", "create", name)["access_key_id"]
        new_name = unique_bucket("never")
        tenant_id, recs_before = self.export(name)
        before = self.keystore_state(name)

        # Another process holds audit.db's write lock past the commands' busy timeout (2 s).
        db = sqlite3.connect(os.path.join(self.daemon.data_dir, "audit.db"), timeout=10, isolation_level=None)
        try:
            db.execute("BEGIN EXCLUSIVE")
            for args in (("key", "rotate", name),
                         ("key", "destroy", name, "1"),
                         ("key", "rewrap", name),
                         ("tenant", "shred", name, "--confirm", name),
                         ("access-key", "create", name),
                         ("access-key", "disable", name, spare),
                         ("access-key", "delete", name, spare),
                         ("tenant", "create", new_name)):
                p = self.cli(*args, check=False)
                self.assertNotEqual(p.returncode, 0, (args, p.stdout, p.stderr))
                self.assertIn(b"audit log", p.stderr, args)
                self.assertNotIn(b"secret", p.stdout.lower(), args)
        finally:
            db.execute("ROLLBACK")
            db.close()

        self.assertEqual(self.keystore_state(name), before)
        self.assertNotIn(new_name, before[3])
        _, recs = self.export(name)
        self.assertEqual(recs, recs_before)  # nothing was recorded either
        # Once the log is writable the same command works, with its one record.
        self.cli("key", "rotate", name)
        _, recs = self.export(name)
        added = recs[len(recs_before):]
        self.assertEqual([(r["operation"], r["key_version"]) for r in added], [("tenant_key.rotate", 3)])

    def test_rotation_policy_is_recorded_with_action_policy(self):
        d = Daemon()
        d.start()
        try:
            d.create_tenant("aged")
            d.create_tenant("fresh")
        finally:
            d.stop()
        try:
            # Age tenant "aged"'s key by ten days, as if time had passed.
            # The row is authenticated: re-MACed with the root key the test holds.
            age_tenant_key_rows(d.data_dir, "aged", 10 * 24 * 3600 * 1000)
            config = os.path.join(d.tmp, "config.json")
            with open(config, "w") as f:
                json.dump({"development": True, "create_root_key": True, "create_dev_tenant": True, "admin_listen": "",
                           "rotate_after_days": 7}, f)
            d2 = Daemon(tmp=d.tmp, extra_args=["--config", config])
            d2.start()
            try:
                deadline = time.monotonic() + 30
                while len(self.cli_json("key", "list", "aged", daemon=d2)["versions"]) < 2:
                    self.assertLess(time.monotonic(), deadline, "the policy did not rotate the aged key")
                    time.sleep(0.1)
                aged_id, recs = self.export("aged", daemon=d2)
                rotations = [r for r in recs if r["operation"] == "tenant_key.rotate"]
                self.assertEqual(len(rotations), 1, rotations)
                self.assertLifecycle(rotations[0], "tenant_key.rotate", aged_id, "policy", 2)
                _, fresh = self.export("fresh", daemon=d2)
                self.assertEqual([r["operation"] for r in fresh], ["tenant_key.create", "access_key.create"])
            finally:
                d2.stop()
        finally:
            d.cleanup()


class AuditGroupCommitTest(unittest.TestCase):
    """A GET waits for its audit record without holding a worker thread. So while a flush of the log
    is slow (a slow disk; here another process holding audit.db's write lock), the daemon keeps
    serving what needs no record, and the GETs queued behind the flush share the next one. With a
    single worker thread, a GET that held its thread while waiting would stall everything until the
    lock wait gave up, and each record would be a commit of its own. The load comes from
    bench/load's coffre_load, built beside the daemon: Python clients are too slow to keep 16
    requests in flight."""

    def test_gets_behind_a_stalled_flush_hold_no_thread_and_share_one_commit(self):
        load = os.path.join(os.path.dirname(coffre_binary()), "bench", "coffre_load")
        self.assertTrue(os.access(load, os.X_OK), f"{load} is not built")
        tmp = tempfile.mkdtemp(prefix="coffre-audit-gc-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        config = write_config(tmp, admin_listen="127.0.0.1:0", worker_threads=1)
        with Daemon(extra_args=["--config", config]) as d:
            admin = admin_port(d)
            s3 = d.client()
            bucket = unique_bucket("gc")
            s3.create_bucket(Bucket=bucket)
            load_cmd = [load, "--endpoint", d.endpoint.split("://")[-1], "--target", "s3", "--credentials",
                        os.path.join(d.data_dir, "dev-credentials.json"), "--bucket", bucket, "--size", "4096",
                        "--count", "8"]

            def finish(p):
                out, err = p.communicate(timeout=120)
                self.assertEqual(p.returncode, 0, out + err)
                result = json.loads(out.strip().splitlines()[-1])
                self.assertEqual(result["errors"], 0, result)
                return result

            finish(subprocess.Popen(load_cmd + ["--op", "populate", "--concurrency", "8"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))

            def counters():
                status, _, text = admin_get(admin, "/metrics")
                self.assertEqual(status, 200)
                text = text.decode()
                return (metric_value(text, "coffre_audit_records_written_total"),
                        metric_value(text, "coffre_audit_commits_total"),
                        metric_value(text, 'coffre_key_operations_total{operation="unwrap",outcome="ok"}'))

            records_before, commits_before, unwraps_before = counters()
            # Hold audit.db's write lock for well under the daemon's lock wait (2 s), so that the
            # GETs queued behind it succeed once it is released.
            other = sqlite3.connect(os.path.join(d.data_dir, "audit.db"), isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            locked_at = time.monotonic()
            try:
                gets = subprocess.Popen(load_cmd + ["--op", "get", "--concurrency", "16", "--duration", "0.3"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                # Served by the only worker thread while GETs wait for the stalled flush.
                head = s3.head_object(Bucket=bucket, Key="obj-0")
                self.assertEqual(head["ContentLength"], 4096)
                # Each GET unwraps its data key and queues its record, then waits without the
                # thread: all 16 get that far while the flush is stalled (a GET holding the thread
                # would stop the count at 1).
                unwrapped = 0
                while unwrapped < 16 and time.monotonic() - locked_at < 1.5:
                    time.sleep(0.02)
                    unwrapped = counters()[2] - unwraps_before
            finally:
                other.execute("ROLLBACK")
                other.close()
            self.assertGreaterEqual(unwrapped, 16, "the GETs did not all queue their records behind the stalled flush")
            result = finish(gets)
            records_after, commits_after, _ = counters()
            records, commits = records_after - records_before, commits_after - commits_before
            # One data_key.unwrap record per GET, and no other key use meanwhile.
            self.assertEqual(records, result["ops"], result)
            self.assertGreater(commits, 0)
            self.assertLess(commits, records, "every GET's record was flushed on its own")

    def test_puts_waiting_for_their_commit_hold_no_worker(self):
        """A PUT's commit (its audit record, its blob's and catalog row's flushes) waits on the
        commit threads, not on a worker: with one worker and the log stalled, 8 PUTs all reach
        their commit and a HEAD is still served; once the log is writable they all succeed. A
        commit that held the only worker would stop the others before they wrapped a data key, and
        fail after the 2 s lock wait."""
        load = os.path.join(os.path.dirname(coffre_binary()), "bench", "coffre_load")
        self.assertTrue(os.access(load, os.X_OK), f"{load} is not built")
        tmp = tempfile.mkdtemp(prefix="coffre-commit-pool-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        config = write_config(tmp, admin_listen="127.0.0.1:0", worker_threads=1, commit_threads=8)
        with Daemon(extra_args=["--config", config]) as d:
            admin = admin_port(d)
            s3 = d.client()
            bucket = unique_bucket("cp")
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="there", Body=b"x" * 100)

            def wraps():
                status, _, text = admin_get(admin, "/metrics")
                self.assertEqual(status, 200)
                return metric_value(text.decode(), 'coffre_key_operations_total{operation="wrap",outcome="ok"}')

            wraps_before = wraps()
            other = sqlite3.connect(os.path.join(d.data_dir, "audit.db"), isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            locked_at = time.monotonic()
            try:
                puts = subprocess.Popen(
                    [load, "--endpoint", d.endpoint.split("://")[-1], "--target", "s3", "--credentials",
                     os.path.join(d.data_dir, "dev-credentials.json"), "--bucket", bucket, "--size", "4096",
                     "--op", "put", "--concurrency", "8", "--count", "8"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                wrapped = 0
                while wrapped < 8 and time.monotonic() - locked_at < 1.5:
                    time.sleep(0.02)
                    wrapped = wraps() - wraps_before
                self.assertEqual(s3.head_object(Bucket=bucket, Key="there")["ContentLength"], 100)
            finally:
                other.execute("ROLLBACK")
                other.close()
            self.assertGreaterEqual(wrapped, 8, "the PUTs did not all reach their commit while the log was stalled")
            out, err = puts.communicate(timeout=120)
            self.assertEqual(puts.returncode, 0, out + err)
            result = json.loads(out.strip().splitlines()[-1])
            self.assertEqual((result["ops"], result["errors"]), (8, 0), result)
            for n in range(8):
                self.assertEqual(s3.head_object(Bucket=bucket, Key=f"put-{n}")["ContentLength"], 4096)


class AuditArchiveTest(AuditLogTest):
    """Retention, on a daemon of its own (archiving prunes the live log)."""

    # The inherited tests run on the parent class's daemon only.
    for _name in [n for n in dir(AuditLogTest) if n.startswith("test_")]:
        locals()[_name] = None
    del _name

    def test_archive_verifies_then_prunes_and_the_log_stays_verifiable(self):
        bucket = self.new_bucket()
        for i in range(3):
            self.s3.put_object(Bucket=bucket, Key=f"old{i}", Body=b"d")
        tomorrow = (_dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        out = os.path.join(self.tmp, "archive-1.jsonl")
        p = self.cli("audit", "archive", *self.data_args(), "--before", tomorrow, "--out", out)
        # The dev tenant's creation (tenant key and access key, section 1.1) and the three PUTs.
        self.assertIn(b"archived 5 record(s)", p.stdout)
        p = self.verify(out)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(b"OK: archive of 5 record(s)", p.stdout)
        # The live log verifies from the boundary and its chains continue.
        self.s3.put_object(Bucket=bucket, Key="new", Body=b"d")
        p = self.cli("audit", "check", *self.data_args())
        self.assertIn(b"OK: 1 record(s)", p.stdout)
        path = self.export()
        self.assertEqual(self.verify(path).returncode, 0)
        _, recs = self.records(path)
        self.assertEqual([(r["object_key"], r["seq"]) for r in recs], [("new", 6)])
        # An archive is never replaced, and a tampered one fails verification.
        p = self.cli("audit", "archive", *self.data_args(), "--before", tomorrow, "--out", out, check=False)
        self.assertNotEqual(p.returncode, 0)
        text = self.read(out)
        tampered = os.path.join(self.tmp, "tampered.jsonl")
        with open(tampered, "w") as f:
            f.write(text.replace('"old1"', '"oldX"'))
        p = self.verify(tampered)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn(b"altered", p.stdout)
        p = self.cli("audit", "archive", *self.data_args(), "--before", "yesterday", "--out",
                     os.path.join(self.tmp, "x.jsonl"), check=False)
        self.assertEqual(p.returncode, 1)


if __name__ == "__main__":
    unittest.main()
