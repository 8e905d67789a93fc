"""Key lifecycle against the real daemon (docs/KEYS.md): access keys (several per tenant,
disable/enable/delete, last use), key rotation, online rewrap under concurrent load, key
destruction, crypto-shredding, the rotation policy, and the refusals of bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import unittest

from botocore.exceptions import ClientError

import harness
from harness import Daemon, gen_bytes
from keystore_rows import age_tenant_key_rows

# The daemon polls the keystore for changes made by other processes this often (keystore.h).
REVALIDATE_SECONDS = 1.0


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


class KeysTestBase(unittest.TestCase):
    def cli(self, d: Daemon, *args, check=True):
        return d.run_cli(*args, "--data-dir", d.data_dir, check=check)

    def cli_json(self, d: Daemon, *args):
        return json.loads(self.cli(d, *args, "--json").stdout)

    def wait_for(self, predicate, timeout=5.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        self.fail(f"timed out waiting for {what}")

    def s3_error(self, fn) -> str:
        try:
            fn()
        except ClientError as e:
            return error_code(e)
        return ""


class AccessKeyTest(KeysTestBase):
    def test_several_keys_disable_enable_delete_and_last_use(self):
        with Daemon() as d:
            first = d.create_tenant("acme")
            second = self.cli_json(d, "access-key", "create", "acme")
            self.assertNotEqual(first["access_key_id"], second["access_key_id"])
            c1, c2 = d.client_for(first), d.client_for(second)
            c1.create_bucket(Bucket="acme-docs")
            c2.put_object(Bucket="acme-docs", Key="k", Body=b"hello")
            self.assertEqual(c1.get_object(Bucket="acme-docs", Key="k")["Body"].read(), b"hello")

            listed = self.cli_json(d, "access-key", "list", "acme")
            self.assertEqual(sorted(k["access_key_id"] for k in listed),
                             sorted([first["access_key_id"], second["access_key_id"]]))
            self.assertTrue(all(k["enabled"] for k in listed))
            # The secret is shown once, at creation, never by list.
            self.assertNotIn(second["secret_access_key"], json.dumps(listed))

            # Disabled from another process: the daemon refuses it promptly.
            self.cli(d, "access-key", "disable", "acme", second["access_key_id"])
            self.wait_for(lambda: self.s3_error(lambda: c2.list_objects_v2(Bucket="acme-docs")) == "AccessDenied",
                          timeout=REVALIDATE_SECONDS + 3, what="the disabled key to be refused")
            self.assertEqual(self.s3_error(lambda: c1.list_objects_v2(Bucket="acme-docs")), "")
            self.cli(d, "access-key", "enable", "acme", second["access_key_id"])
            self.wait_for(lambda: self.s3_error(lambda: c2.list_objects_v2(Bucket="acme-docs")) == "",
                          timeout=REVALIDATE_SECONDS + 3, what="the enabled key to work again")
            self.cli(d, "access-key", "delete", "acme", second["access_key_id"])
            self.wait_for(
                lambda: self.s3_error(lambda: c2.list_objects_v2(Bucket="acme-docs")) == "InvalidAccessKeyId",
                timeout=REVALIDATE_SECONDS + 3, what="the deleted key to be unknown")

            # Bad input: exit status 1, a message saying what to do.
            p = self.cli(d, "access-key", "disable", "acme", second["access_key_id"], check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"access-key list", p.stderr)
            p = self.cli(d, "access-key", "list", "nobody", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"tenant list", p.stderr)
            # Another tenant's key cannot be managed through this tenant.
            other = d.create_tenant("other")
            p = self.cli(d, "access-key", "disable", "acme", other["access_key_id"], check=False)
            self.assertEqual(p.returncode, 1)
            d.stop()  # flushes the coalesced last-use times

            listed = {k["access_key_id"]: k for k in self.cli_json(d, "access-key", "list", "acme")}
            self.assertIsNotNone(listed[first["access_key_id"]]["last_used"])
            self.assertNotIn(second["access_key_id"], listed)
            text = self.cli(d, "access-key", "list", "acme").stdout.decode()
            self.assertIn("LAST USED", text)


class KeyVersionTest(KeysTestBase):
    def test_rotate_rewrap_destroy_while_serving(self):
        with Daemon() as d:
            creds = d.create_tenant("bank")
            s3 = d.client_for(creds)
            s3.create_bucket(Bucket="dossiers")
            objects = {}
            for i in range(40):
                body = gen_bytes(1000 + 977 * i, seed=i)
                s3.put_object(Bucket="dossiers", Key=f"old/{i}", Body=body)
                objects[f"old/{i}"] = body
            # A multipart upload in progress across the whole rotation.
            up = s3.create_multipart_upload(Bucket="dossiers", Key="big")["UploadId"]
            part1 = gen_bytes(5 * 1024 * 1024, seed=99)
            e1 = s3.upload_part(Bucket="dossiers", Key="big", UploadId=up, PartNumber=1, Body=part1)["ETag"]

            # Destroying version 1 while it is referenced is refused, keystore unchanged.
            p = self.cli(d, "key", "destroy", "bank", "1", check=False)
            self.assertEqual(p.returncode, 1, p.stderr)
            p = self.cli(d, "key", "rotate", "bank")
            self.assertIn(b"key version 2", p.stdout)
            versions = self.cli_json(d, "key", "list", "bank")["versions"]
            self.assertEqual([(v["version"], v["state"], v["objects"]) for v in versions],
                             [(1, "retired", 41), (2, "active", 0)])
            # The runbook: let the daemon see the rotation before rewrapping (PUTs that began
            # earlier would otherwise commit under version 1; rewrap then makes extra passes).
            time.sleep(REVALIDATE_SECONDS + 0.5)

            # Foreground load during the rewrap: PUTs (new and overwrites) and GETs.
            failures, stop = [], threading.Event()
            written = {}
            lock = threading.Lock()

            def load(n):
                c = d.client_for(creds)
                i = 0
                while not stop.is_set():
                    try:
                        key = f"old/{(n * 7 + i) % 40}"
                        if i % 3 == 0:
                            body = gen_bytes(500 + i, seed=1000 * n + i)
                            # Noted before the PUT: another thread's GET may see it as soon as it
                            # commits, before this thread has its answer.
                            with lock:
                                written.setdefault(key, []).append(body)
                            c.put_object(Bucket="dossiers", Key=key, Body=body)
                        else:
                            got = c.get_object(Bucket="dossiers", Key=key)["Body"].read()
                            with lock:
                                # Threads overwrite the same keys: any body written counts.
                                expected = [objects[key], *written.get(key, [])]
                            if got not in expected:
                                failures.append(f"{key}: wrong bytes ({len(got)} bytes, none of the "
                                                f"{len(expected)} bodies written to it)")
                    except Exception as e:  # noqa: BLE001 - every failure counts
                        failures.append(repr(e))
                    i += 1

            threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
            for t in threads:
                t.start()
            try:
                p = self.cli(d, "key", "rewrap", "bank", "--rate", "40")
            finally:
                stop.set()
                for t in threads:
                    t.join(60)
            self.assertEqual(failures, [])
            self.assertIn(b"done", p.stdout)
            self.assertIn(b"rewrap:", p.stderr)  # progress
            versions = self.cli_json(d, "key", "list", "bank")["versions"]
            self.assertEqual(versions[0]["objects"], 0, versions)

            self.cli(d, "key", "destroy", "bank", "1")
            p = self.cli(d, "key", "destroy", "bank", "2", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"active", p.stderr)
            # Every object still reads (with the newest bytes), and the upload completes.
            time.sleep(REVALIDATE_SECONDS + 0.2)
            for key, body in objects.items():
                got = s3.get_object(Bucket="dossiers", Key=key)["Body"].read()
                self.assertIn(got, [body, *written.get(key, [])], key)
            part2 = gen_bytes(1000, seed=98)
            e2 = s3.upload_part(Bucket="dossiers", Key="big", UploadId=up, PartNumber=2, Body=part2)["ETag"]
            s3.complete_multipart_upload(Bucket="dossiers", Key="big", UploadId=up, MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
            self.assertEqual(s3.get_object(Bucket="dossiers", Key="big")["Body"].read(), part1 + part2)

    def test_rewrap_bad_input(self):
        with Daemon() as d:
            d.create_tenant("bank")
            for args, needle in [(("key", "rewrap", "nobody"), b"tenant list"),
                                 (("key", "rewrap", "bank", "--from", "1"), b"active"),
                                 (("key", "rotate", "nobody"), b"tenant list"),
                                 (("key", "destroy", "bank", "1"), b"active"),
                                 (("key", "destroy", "bank", "9"), b"no key version")]:
                p = self.cli(d, *args, check=False)
                self.assertEqual(p.returncode, 1, (args, p.stderr))
                self.assertIn(needle, p.stderr, args)
            versions = self.cli_json(d, "key", "list", "bank")["versions"]
            self.assertEqual([(v["version"], v["state"]) for v in versions], [(1, "active")])

    def test_rotation_policy_rotates_old_keys_at_start(self):
        d = Daemon()
        d.start()
        try:
            d.create_tenant("aged")
            d.create_tenant("fresh")
        finally:
            d.stop()
        # Age tenant "aged"'s key by ten days, as if time had passed. The row is authenticated
        # (docs/KEYS.md "Authenticated rows"): the test holds the root key, so it re-MACs it.
        ten_days_ms = 10 * 24 * 3600 * 1000
        age_tenant_key_rows(d.data_dir, "aged", ten_days_ms)
        config = os.path.join(d.tmp, "config.json")
        with open(config, "w") as f:
            json.dump({"development": True, "create_root_key": True, "create_dev_tenant": True, "admin_listen": "",
                       "rotate_after_days": 7}, f)
        d2 = Daemon(tmp=d.tmp, extra_args=["--config", config])
        with d2:
            self.wait_for(lambda: len(self.cli_json(d2, "key", "list", "aged")["versions"]) == 2,
                          what="the policy to rotate the aged key")
            self.assertEqual(len(self.cli_json(d2, "key", "list", "fresh")["versions"]), 1)


class ShredTest(KeysTestBase):
    def test_shred_one_tenant_leaves_the_other_intact(self):
        with Daemon() as d:
            victim = d.create_tenant("victim")
            keeper = d.create_tenant("keeper")
            v, k = d.client_for(victim), d.client_for(keeper)
            v.create_bucket(Bucket="victim-docs")
            k.create_bucket(Bucket="keeper-docs")
            for i in range(5):
                v.put_object(Bucket="victim-docs", Key=f"d{i}", Body=gen_bytes(70000, seed=i))
                k.put_object(Bucket="keeper-docs", Key=f"d{i}", Body=gen_bytes(70000, seed=100 + i))

            p = self.cli(d, "tenant", "shred", "victim", "--confirm", "keeper", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertEqual(v.get_object(Bucket="victim-docs", Key="d0")["Body"].read(), gen_bytes(70000, seed=0))

            p = self.cli(d, "tenant", "shred", "victim", "--confirm", "victim")
            self.assertIn(b"destroyed", p.stdout)
            # From then on: a clear 403, never data.
            self.wait_for(lambda: self.s3_error(lambda: v.get_object(Bucket="victim-docs", Key="d0")) ==
                          "AccessDenied", timeout=REVALIDATE_SECONDS + 3, what="the shredded tenant to be refused")
            for i in range(5):
                self.assertEqual(k.get_object(Bucket="keeper-docs", Key=f"d{i}")["Body"].read(),
                                 gen_bytes(70000, seed=100 + i))
            # Its buckets are gone from the catalog (the name is free again).
            k.create_bucket(Bucket="victim-docs")
            # A shredded tenant cannot be rotated nor get keys back; shred again finishes cleanup.
            for args in (("key", "rotate", "victim"),
                         ("access-key", "enable", "victim", victim["access_key_id"])):
                p = self.cli(d, *args, check=False)
                self.assertEqual(p.returncode, 1, (args, p.stderr))
                self.assertIn(b"shredded", p.stderr)
            p = self.cli(d, "tenant", "shred", "victim", "--confirm", "victim")
            self.assertIn(b"already shredded", p.stdout)
            listed = self.cli_json(d, "key", "list", "victim")
            self.assertTrue(listed["shredded"])
            self.assertEqual(listed["versions"], [])
            # The event is recorded for auditors.
            db = sqlite3.connect(os.path.join(d.data_dir, "keystore.db"))
            events = [r[0] for r in db.execute(
                "SELECT event FROM key_events WHERE tenant_id = (SELECT id FROM tenants WHERE name = 'victim')")]
            db.close()
            self.assertIn("tenant-shredded", events)


class RootKeySourceTest(KeysTestBase):
    """The daemon and the CLI with a passphrase (Argon2id) or a systemd credential as root key."""

    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="coffre-it-keys-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.binary = harness.coffre_binary()
        self.procs = []

    def tearDown(self):
        import shutil
        import signal as _signal
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(_signal.SIGTERM)
                p.wait(20)
            p.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_config(self, **fields):
        path = os.path.join(self.tmp, "config.json")
        with open(path, "w") as f:
            json.dump({"admin_listen": "", **fields}, f)
        return path

    def coffre(self, *args, passphrase: bytes | None = None, env=None, stdin=subprocess.DEVNULL):
        fds = ()
        extra = []
        if passphrase is not None:
            r, w = os.pipe()
            os.write(w, passphrase)
            os.close(w)
            fds = (r,)
            extra = ["--passphrase-fd", str(r)]
        try:
            return subprocess.run([self.binary, *args, *extra], stdin=stdin, capture_output=True, timeout=120,
                                  pass_fds=fds, env=env)
        finally:
            for fd in fds:
                os.close(fd)

    def serve(self, config, passphrase: bytes | None = None, env=None):
        fds, extra = (), []
        if passphrase is not None:
            r, w = os.pipe()
            os.write(w, passphrase)
            os.close(w)
            fds, extra = (r,), ["--passphrase-fd", str(r)]
        # stderr to a file: a pipe nobody reads could fill up and stall the daemon.
        stderr_path = os.path.join(self.tmp, f"serve-{len(self.procs)}.stderr")
        with open(stderr_path, "wb") as err:
            p = subprocess.Popen([self.binary, "serve", "--config", config, "--data-dir", self.data_dir,
                                  "--listen", "127.0.0.1:0", *extra], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=err, pass_fds=fds, env=env)
        for fd in fds:
            os.close(fd)
        p.stderr_path = stderr_path
        self.procs.append(p)
        return p

    def stderr_of(self, p) -> str:
        with open(p.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_listening(self, p) -> int:
        """Waits for `listening on HOST:PORT` and returns the port."""
        line = p.stdout.readline().decode()
        self.assertIn("listening on", line, self.stderr_of(p) if p.poll() is not None else "")
        return int(line.split("listening on ", 1)[1].strip().rsplit(":", 1)[1])

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0, self.stderr_of(p))

    def refused_at_start(self, p) -> str:
        """The daemon must exit non-zero before listening; returns its stderr."""
        rc = p.wait(60)
        out = p.stdout.read().decode()
        self.assertNotEqual(rc, 0)
        self.assertNotIn("listening on", out)
        return self.stderr_of(p)

    def s3(self, port, creds):
        return Daemon().client(creds["access_key_id"], creds["secret_access_key"],
                               endpoint=f"http://127.0.0.1:{port}")

    def daemon_round_trip(self, config, common, start_kw, wrong_kw, wrong_message):
        """Start the daemon, PUT/GET, restart, GET; then a wrong key must stop it before it listens."""
        p = self.serve(config, **start_kw())
        port = self.wait_listening(p)
        made = self.coffre("tenant", "create", "acme", *common, "--json", **start_kw())
        self.assertEqual(made.returncode, 0, made.stderr)
        creds = json.loads(made.stdout)
        body = gen_bytes(200_000, seed=7)
        c = self.s3(port, creds)
        c.create_bucket(Bucket="acme-docs")
        c.put_object(Bucket="acme-docs", Key="k", Body=body)
        self.assertEqual(c.get_object(Bucket="acme-docs", Key="k")["Body"].read(), body)
        self.stop(p)

        p = self.serve(config, **start_kw())
        port = self.wait_listening(p)
        self.assertEqual(self.s3(port, creds).get_object(Bucket="acme-docs", Key="k")["Body"].read(), body)
        self.stop(p)
        # The audit log opened with the same root key: its chains and signatures verify.
        check = self.coffre("audit", "check", *common, **start_kw())
        self.assertEqual(check.returncode, 0, check.stderr)

        err = self.refused_at_start(self.serve(config, **wrong_kw()))
        self.assertIn(wrong_message, err)
        # Nothing was changed: the right key still starts it. (A request before the SIGTERM: the
        # daemon prints "listening on" before it installs its signal handlers.)
        p = self.serve(config, **start_kw())
        port = self.wait_listening(p)
        self.assertEqual(self.s3(port, creds).get_object(Bucket="acme-docs", Key="k")["Body"].read(), body)
        self.stop(p)

    def test_passphrase_init_use_wrong_passphrase_and_closed_stdin(self):
        config = self.write_config(root_key_source="passphrase")
        common = ("--config", config, "--data-dir", self.data_dir)
        init = self.coffre("keystore", "init", *common, passphrase=b"correct horse battery\n")
        self.assertEqual(init.returncode, 0, init.stderr)
        again = self.coffre("keystore", "init", *common, passphrase=b"correct horse battery\n")
        self.assertEqual(again.returncode, 1)
        made = self.coffre("tenant", "create", "acme", *common, passphrase=b"correct horse battery\n")
        self.assertEqual(made.returncode, 0, made.stderr)
        wrong = self.coffre("tenant", "list", *common, passphrase=b"wrong horse\n")
        self.assertEqual(wrong.returncode, 2)
        self.assertIn(b"wrong passphrase", wrong.stderr)
        closed = self.coffre("tenant", "list", *common)
        self.assertNotEqual(closed.returncode, 0)
        self.assertIn(b"--passphrase-fd", closed.stderr)
        # The salt and Argon2id parameters are in the keystore; the passphrase is not.
        with open(os.path.join(self.data_dir, "keystore.db"), "rb") as f:
            self.assertNotIn(b"correct horse", f.read())
        listed = self.coffre("tenant", "list", *common, passphrase=b"correct horse battery")
        self.assertIn(b"acme", listed.stdout)

    def test_daemon_starts_with_a_passphrase(self):
        config = self.write_config(root_key_source="passphrase")
        p = self.serve(config, passphrase=b"correct horse battery\n")
        self.wait_listening(p)

    def test_daemon_with_a_passphrase_on_a_descriptor_serves_restarts_and_refuses_a_wrong_one(self):
        config = self.write_config(root_key_source="passphrase")
        common = ("--config", config, "--data-dir", self.data_dir)
        self.daemon_round_trip(config, common, lambda: {"passphrase": b"correct horse battery\n"},
                               lambda: {"passphrase": b"wrong horse\n"}, "wrong passphrase")
        # No passphrase at all (stdin is not a terminal): refused before listening, saying how.
        err = self.refused_at_start(self.serve(config))
        self.assertIn("--passphrase-fd", err)

    def test_daemon_with_a_systemd_credential_serves_restarts_and_refuses_a_wrong_one(self):
        creds = os.path.join(self.tmp, "creds")
        other = os.path.join(self.tmp, "other-creds")
        for d in (creds, other):
            os.makedirs(d)
            key = os.path.join(d, "coffre-root-key")
            with open(key, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
            os.chmod(key, 0o400)
        env = dict(os.environ, CREDENTIALS_DIRECTORY=creds)
        config = self.write_config(root_key_source="credential")
        common = ("--config", config, "--data-dir", self.data_dir)
        self.daemon_round_trip(config, common, lambda: {"env": env},
                               lambda: {"env": dict(os.environ, CREDENTIALS_DIRECTORY=other)},
                               "wrong root key in credential coffre-root-key")
        # No credentials directory: refused before listening, naming LoadCredential.
        err = self.refused_at_start(self.serve(config))
        self.assertIn("LoadCredential", err)

    def coffre_with_fds(self, *args, fds: dict):
        """Runs coffre with each flag of `fds` (e.g. --passphrase-fd) given a pipe holding its bytes."""
        opened, extra = [], []
        for flag, data in fds.items():
            r, w = os.pipe()
            os.write(w, data)
            os.close(w)
            opened.append(r)
            extra += [flag, str(r)]
        try:
            return subprocess.run([self.binary, *args, *extra], stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=120, pass_fds=tuple(opened))
        finally:
            for fd in opened:
                os.close(fd)

    def test_rotate_root_to_a_new_passphrase(self):
        config = self.write_config(root_key_source="passphrase")
        common = ("--config", config, "--data-dir", self.data_dir)
        old, new = b"correct horse battery\n", b"a brand new passphrase\n"
        self.assertEqual(self.coffre("keystore", "init", *common, passphrase=old).returncode, 0)
        made = self.coffre("tenant", "create", "acme", *common, passphrase=old)
        self.assertEqual(made.returncode, 0, made.stderr)
        # A wrong current passphrase: refused, nothing changed.
        wrong = self.coffre_with_fds("keystore", "rotate-root", *common,
                                     fds={"--passphrase-fd": b"nope\n", "--new-passphrase-fd": new})
        self.assertEqual(wrong.returncode, 2, wrong.stderr)
        self.assertIn(b"wrong passphrase", wrong.stderr)
        rotated = self.coffre_with_fds("keystore", "rotate-root", *common,
                                       fds={"--passphrase-fd": old, "--new-passphrase-fd": new})
        self.assertEqual(rotated.returncode, 0, rotated.stderr)
        self.assertIn(b"new passphrase", rotated.stdout)
        refused = self.coffre("tenant", "list", *common, passphrase=old)
        self.assertEqual(refused.returncode, 2)
        self.assertIn(b"wrong passphrase", refused.stderr)
        listed = self.coffre("tenant", "list", *common, passphrase=new)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(b"acme", listed.stdout)

    def test_systemd_credential_and_refused_key_files(self):
        creds = os.path.join(self.tmp, "creds")
        os.makedirs(creds)
        key = os.path.join(creds, "coffre-root-key")
        with open(key, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(key, 0o400)
        env = dict(os.environ, CREDENTIALS_DIRECTORY=creds)
        config = self.write_config(root_key_source="credential")
        common = ("--config", config, "--data-dir", self.data_dir)
        init = self.coffre("keystore", "init", *common, env=env)
        self.assertEqual(init.returncode, 0, init.stderr)
        made = self.coffre("tenant", "create", "acme", *common, env=env)
        self.assertEqual(made.returncode, 0, made.stderr)
        # Without the credentials directory: a message naming what to do.
        no_creds = self.coffre("tenant", "list", *common)
        self.assertNotEqual(no_creds.returncode, 0)
        self.assertIn(b"LoadCredential", no_creds.stderr)
        # Another key in the credential: caught at open, keystore unchanged.
        other = os.path.join(self.tmp, "other")
        os.makedirs(other)
        with open(os.path.join(other, "coffre-root-key"), "w") as f:
            f.write(os.urandom(32).hex())
        os.chmod(os.path.join(other, "coffre-root-key"), 0o400)
        wrong = self.coffre("tenant", "list", *common, env=dict(os.environ, CREDENTIALS_DIRECTORY=other))
        self.assertEqual(wrong.returncode, 2)
        self.assertIn(b"wrong root key", wrong.stderr)
        # A key file readable by others is refused, with what to do.
        loose = os.path.join(self.tmp, "loose.key")
        with open(loose, "w") as f:
            f.write(os.urandom(32).hex())
        os.chmod(loose, 0o644)
        bad = self.coffre("tenant", "list", "--config", self.write_config(root_key_file=loose),
                          "--data-dir", self.data_dir)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn(b"chmod", bad.stderr)
        self.write_config(root_key_source="credential")  # the same path as `config`
        self.assertEqual(self.coffre("tenant", "list", *common, env=env).returncode, 0)

class RootKeyRotationTest(KeysTestBase):
    """coffre keystore rotate-root (docs/KEYS.md "Root key rotation")."""

    def sealed_state(self, data_dir):
        """Every sealed value of the keystore and the audit signing key's sealed copies."""
        db = sqlite3.connect(os.path.join(data_dir, "keystore.db"))
        rows = sorted(db.execute("SELECT tenant_id || version, wrapped_key FROM tenant_keys")) + \
            sorted(db.execute("SELECT access_key_id, secret FROM access_keys")) + \
            sorted(db.execute("SELECT name, value FROM meta"))
        db.close()
        db = sqlite3.connect(os.path.join(data_dir, "audit.db"))
        rows += sorted(db.execute("SELECT key_id, sealed_secret FROM signing_keys"))
        rows += sorted(db.execute("SELECT key_id, sealed_secret FROM signing_key_seals"))
        db.close()
        return rows

    def new_key_file(self, d, name, mode=0o600):
        path = os.path.join(d.tmp, name)
        self.assertEqual(d.run_cli("keystore", "init", "--root-key-file", path).returncode, 0)
        os.chmod(path, mode)
        return path

    def test_rotate_root_then_serve_with_the_new_key_and_refuse_the_old(self):
        d = Daemon()
        d.start()
        try:
            self._rotate_scenario(d)
        finally:
            d.stop(check=False)
            d.cleanup()

    def _rotate_scenario(self, d):
        bank = d.create_tenant("bank")
        bank2 = self.cli_json(d, "access-key", "create", "bank")
        other = d.create_tenant("other")
        # With the dev tenant: four tenant key versions and four access-key secrets to re-seal.
        self.cli(d, "key", "rotate", "other")
        objects = {}
        for i, creds in enumerate([bank, bank2, other]):
            c = d.client_for(creds)
            bucket = f"b{i}-rot"
            c.create_bucket(Bucket=bucket)
            for j in range(3):
                body = gen_bytes(1000 + 70_000 * j, seed=10 * i + j)
                c.put_object(Bucket=bucket, Key=f"o{j}", Body=body)
                objects[(i, bucket, f"o{j}")] = body
        all_creds = [bank, bank2, other]
        d.stop()
        old_key = os.path.join(d.data_dir, "root.key")
        before = self.sealed_state(d.data_dir)

        def rotate(*args):
            return d.run_cli("keystore", "rotate-root", "--data-dir", d.data_dir, *args, check=False)

        # Bad input: each refused with a message, non-zero exit, nothing changed.
        loose = self.new_key_file(d, "loose.key", 0o644)
        short = os.path.join(d.tmp, "short.key")
        with open(short, "w") as f:
            f.write(os.urandom(16).hex())
        os.chmod(short, 0o600)
        wrong_current = self.new_key_file(d, "wrong-current.key")
        wrong_config = os.path.join(d.tmp, "wrong.json")
        with open(wrong_config, "w") as f:
            json.dump({"admin_listen": "", "root_key_file": wrong_current}, f)
        for args, code, needle in [
                ((), 1, b"--new-key-file"),
                (("--new-key-file", os.path.join(d.tmp, "missing.key")), 2, b"--new-key-file"),
                (("--new-key-file", loose), 2, b"chmod"),
                (("--new-key-file", short), 1, b"64 hex characters"),
                (("--new-key-file", old_key), 1, b"current root key"),
                (("--new-key-file", self.new_key_file(d, "unused.key"), "--config", wrong_config), 2,
                 b"wrong root key")]:
            p = rotate(*args)
            self.assertEqual(p.returncode, code, (args, p.stderr))
            self.assertIn(needle, p.stderr, args)
            self.assertEqual(self.sealed_state(d.data_dir), before, args)

        new_key = self.new_key_file(d, "new-root.key")
        p = rotate("--new-key-file", new_key)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"root key rotated: 4 tenant key version(s) and 4 access-key secret(s)", p.stdout)
        self.assertIn(new_key.encode(), p.stdout)  # what to put in the config
        self.assertIn(b"keep the old root key", p.stdout)

        config = os.path.join(d.tmp, "new.json")
        with open(config, "w") as f:
            json.dump({"admin_listen": "", "create_dev_tenant": True, "root_key_file": new_key}, f)
        d2 = Daemon(tmp=d.tmp, extra_args=["--config", config])
        d2.start()  # not `with`: its cleanup would remove the shared temporary directory
        try:
            clients = [d2.client_for(c) for c in all_creds]
            for (i, bucket, key), body in objects.items():
                self.assertEqual(clients[i].get_object(Bucket=bucket, Key=key)["Body"].read(), body, key)
            clients[0].put_object(Bucket="b0-rot", Key="after", Body=b"written under the new root key")
        finally:
            d2.stop()
        # The audit log opens with the new key, every chain and signature verifies, and the
        # rotation is in it.
        check = d.run_cli("audit", "check", "--data-dir", d.data_dir, "--config", config, check=False)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn(b"OK", check.stdout)
        db = sqlite3.connect(os.path.join(d.data_dir, "audit.db"))
        ops = [r[0] for r in db.execute("SELECT action FROM records WHERE operation = 'root_key.rotate'")]
        copies = db.execute("SELECT count(*) FROM signing_key_seals").fetchone()[0]
        originals = db.execute("SELECT count(*) FROM signing_keys WHERE length(sealed_secret) > 0").fetchone()[0]
        db.close()
        self.assertEqual(ops, ["cli:keystore rotate-root"])
        self.assertEqual((copies, originals), (1, 0))  # only the copy under the new key is left

        # The old key file: refused at start with a clear message (the harness default config
        # uses data_dir/root.key, the old key).
        d3 = Daemon(tmp=d.tmp)
        with self.assertRaises(harness.DaemonError) as refused:
            d3.start()
        d3.stop(check=False)  # closes its files; it has exited already
        self.assertIn("wrong root key in " + old_key, str(refused.exception))
        self.assertNotEqual(d3.proc.returncode, 0)
        p = d.run_cli("tenant", "list", "--data-dir", d.data_dir, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"wrong root key", p.stderr)


if __name__ == "__main__":
    unittest.main()
