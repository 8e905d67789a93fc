"""TLS on the S3 and admin listeners: a test CA and server certificate made with openssl, the aws
CLI over HTTPS with --ca-bundle, `openssl s_client` for protocol versions, certificate reload on
SIGHUP without dropping open connections, and the start-up refusals."""

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import Daemon, DaemonError, gen_bytes

from test_operations import admin_port, read_stderr, wait_for, write_config


def openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {p.stderr.decode()}")
    return p


def make_ca(d: str):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Coffre Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            cwd=d)


def make_server_cert(d: str, name: str, cn: str):
    """`name`.pem / `name`.key signed by the CA, valid for 127.0.0.1 and localhost."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


def s_client(port: int, *args, data: bytes = b""):
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                           "-servername", "localhost", *args],
                          input=data, capture_output=True, timeout=30)


def peer_subject(port: int, ca: str) -> str:
    p = s_client(port, "-CAfile", ca, "-verify_return_error")
    return p.stdout.decode(errors="replace")


class TlsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="coffre-tls-")
        cls.pki = os.path.join(cls.tmp, "pki")
        os.makedirs(cls.pki)
        make_ca(cls.pki)
        make_server_cert(cls.pki, "server", "coffre-one")
        cls.ca = os.path.join(cls.pki, "ca.pem")
        cls.cert = os.path.join(cls.tmp, "tls.pem")
        cls.key = os.path.join(cls.tmp, "tls.key")
        shutil.copy(os.path.join(cls.pki, "server.pem"), cls.cert)
        shutil.copy(os.path.join(cls.pki, "server.key"), cls.key)
        cls.cfg = write_config(cls.tmp, tls_cert_file=cls.cert, tls_key_file=cls.key)
        cls.daemon = Daemon(extra_args=["--config", cls.cfg], tmp=cls.tmp)
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.daemon.start()
        cls.addClassCleanup(cls.daemon.stop, True)
        cls.daemon.endpoint = f"https://localhost:{cls.daemon.port}"
        cls.admin = admin_port(cls.daemon)

    def ssl_context(self):
        return ssl.create_default_context(cafile=self.ca)

    def test_aws_cli_over_https_with_ca_bundle(self):
        d = self.daemon
        src = os.path.join(self.tmp, "upload.bin")
        payload = gen_bytes(3 * 1024 * 1024 + 17, seed=3)
        with open(src, "wb") as f:
            f.write(payload)
        d.aws("--ca-bundle", self.ca, "s3", "mb", "s3://tls-bucket")
        d.aws("--ca-bundle", self.ca, "s3", "cp", src, "s3://tls-bucket/obj.bin")
        dst = os.path.join(self.tmp, "download.bin")
        d.aws("--ca-bundle", self.ca, "s3", "cp", "s3://tls-bucket/obj.bin", dst)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), payload)
        ls = d.aws("--ca-bundle", self.ca, "s3", "ls", "s3://tls-bucket")
        self.assertIn(b"obj.bin", ls.stdout)

    def test_aws_cli_refuses_an_unknown_ca(self):
        p = self.daemon.aws("s3", "ls", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"CERTIFICATE_VERIFY_FAILED", p.stderr)

    def test_tls_1_2_and_1_3_accepted(self):
        for version in ("-tls1_2", "-tls1_3"):
            with self.subTest(version=version):
                p = s_client(self.daemon.port, version, "-CAfile", self.ca, "-verify_return_error")
                out = p.stdout.decode(errors="replace")
                self.assertIn("Verify return code: 0 (ok)", out, out + p.stderr.decode())
                self.assertIn("TLSv1.3" if version == "-tls1_3" else "TLSv1.2", out)

    def test_old_protocols_refused(self):
        for version in ("-tls1", "-tls1_1"):
            with self.subTest(version=version):
                # seclevel 0 lets this client offer the old version at all
                p = s_client(self.daemon.port, version, "-cipher", "DEFAULT@SECLEVEL=0")
                out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
                self.assertNotEqual(p.returncode, 0, out)
                self.assertRegex(out, r"(no protocols available|alert protocol version|"
                                      r"unsupported protocol|wrong version number)")

    def test_weak_tls12_cipher_refused(self):
        p = s_client(self.daemon.port, "-tls1_2", "-cipher", "AES128-SHA")
        self.assertNotEqual(p.returncode, 0)

    def test_plain_http_to_the_tls_port_gets_no_answer(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=10)
        with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
            conn.request("GET", "/")
            conn.getresponse().read()
        conn.close()

    def test_admin_api_over_https(self):
        conn = http.client.HTTPSConnection("localhost", self.admin, context=self.ssl_context(), timeout=10)
        conn.request("GET", "/health/ready")
        r = conn.getresponse()
        self.assertEqual(r.status, 200, r.read())
        conn.close()

    def test_sighup_reloads_the_certificate_without_dropping_connections(self):
        d = self.daemon
        # a keep-alive connection opened before the reload
        before = http.client.HTTPSConnection("localhost", self.admin, context=self.ssl_context(), timeout=10)
        before.request("GET", "/health/live")
        self.assertEqual(before.getresponse().read(), b"live\n")
        self.assertIn("CN = coffre-one", peer_subject(d.port, self.ca))

        make_server_cert(self.pki, "renewed", "coffre-two")
        shutil.copy(os.path.join(self.pki, "renewed.pem"), self.cert + ".new")
        shutil.copy(os.path.join(self.pki, "renewed.key"), self.key + ".new")
        os.replace(self.cert + ".new", self.cert)
        os.replace(self.key + ".new", self.key)
        marker = "tls=certificate reloaded"
        n = read_stderr(d).count(marker)
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: read_stderr(d).count(marker) > n), d.diagnostics())

        self.assertIn("CN = coffre-two", peer_subject(d.port, self.ca))
        self.assertIn("CN = coffre-two", peer_subject(self.admin, self.ca))
        # the old connection still works, on its old session
        before.request("GET", "/health/live")
        self.assertEqual(before.getresponse().read(), b"live\n")
        before.close()

    def test_sighup_with_a_broken_certificate_keeps_the_old_one(self):
        d = self.daemon
        with open(self.cert) as f:
            good = f.read()
        subject = "CN = coffre-" + ("two" if "coffre-two" in peer_subject(d.port, self.ca) else "one")
        try:
            with open(self.cert, "w") as f:
                f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
            marker = "configuration rejected"
            n = read_stderr(d).count(marker)
            d.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: read_stderr(d).count(marker) > n), d.diagnostics())
            self.assertIn("tls_cert_file", read_stderr(d))
            self.assertIn(subject, peer_subject(d.port, self.ca))
        finally:
            with open(self.cert, "w") as f:
                f.write(good)


class TlsStartupTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coffre-tls-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        make_ca(self.tmp)
        make_server_cert(self.tmp, "a", "a")
        make_server_cert(self.tmp, "b", "b")

    def start_fails(self, *extra, **fields):
        cfg = write_config(self.tmp, **fields)
        d = Daemon(extra_args=["--config", cfg, *extra], tmp=self.tmp)
        try:
            with self.assertRaises(DaemonError):
                d.start()
            self.assertNotEqual(d.proc.returncode, 0)
            self.assertFalse(any("listening on" in line for line in d.stdout_lines))
            return d.stderr_tail()
        finally:
            d.stop(check=False)

    def test_certificate_and_key_that_do_not_match(self):
        err = self.start_fails(tls_cert_file=os.path.join(self.tmp, "a.pem"),
                               tls_key_file=os.path.join(self.tmp, "b.key"))
        self.assertIn("does not match the certificate", err)
        # the key file's content never reaches the log
        with open(os.path.join(self.tmp, "b.key")) as f:
            body = f.read().splitlines()[1]
        self.assertNotIn(body, err)

    def test_unreadable_certificate(self):
        err = self.start_fails(tls_cert_file=os.path.join(self.tmp, "missing.pem"),
                               tls_key_file=os.path.join(self.tmp, "a.key"))
        self.assertIn("tls_cert_file", err)
        self.assertIn("missing.pem", err)

    def test_plain_http_on_a_public_address_needs_allow_plaintext(self):
        # --listen bypasses the file's validation: the daemon checks again
        p = subprocess.Popen([Daemon().binary, "serve", "--data-dir", os.path.join(self.tmp, "d"),
                              "--listen", "0.0.0.0:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 1)
        self.assertNotIn(b"listening on", out)
        self.assertIn(b"allow_plaintext", err)
        cfg = write_config(self.tmp, listen="0.0.0.0:9000")
        p = subprocess.run([Daemon().binary, "config", "check", cfg], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"'listen' 0.0.0.0:9000 is not a loopback address", p.stderr)
        cfg = write_config(self.tmp, listen="0.0.0.0:9000", allow_plaintext=True)
        p = subprocess.run([Daemon().binary, "config", "check", cfg], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_cert_without_key_is_refused_by_config_check(self):
        cfg = write_config(self.tmp, tls_cert_file=os.path.join(self.tmp, "a.pem"))
        p = subprocess.run([Daemon().binary, "config", "check", cfg], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"'tls_cert_file' and 'tls_key_file' go together", p.stderr)


if __name__ == "__main__":
    unittest.main()
