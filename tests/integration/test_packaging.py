"""Packaging: the CMake install rules, `make install`, and the Debian package
built with CPack, each installed into a scratch root and run there.

Uses the build directory of the binary under test ($COFFRE_BINARY's directory, else build/):
`cmake --install` stages what is already built; nothing is compiled here. Parts whose tools are
missing (groff, cpack, dpkg-deb) are skipped, never failed."""

import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.path.abspath(os.environ.get("COFFRE_BINARY") or os.path.join(REPO_ROOT, "build", "coffre"))
BUILD_DIR = os.path.dirname(BINARY)
COMPONENT = "coffre"


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, **kw)


def have_install_rules() -> bool:
    """A build tree configured since the install rules landed (an older one has no coffre.service
    in its cmake_install.cmake until cmake runs again)."""
    path = os.path.join(BUILD_DIR, "cmake_install.cmake")
    if not (os.path.exists(path) and os.path.exists(BINARY)):
        return False
    with open(path) as f:
        return "coffre.service" in f.read()


def top_level_commands(binary: str) -> list:
    """The subcommands `coffre --help` lists."""
    out = run([binary, "--help"], timeout=30).stdout
    commands, in_section = [], False
    for line in out.splitlines():
        if line.startswith("Subcommands:"):
            in_section = True
        elif in_section and line.startswith("  "):
            commands.append(line.split()[0])
        elif in_section and line.strip():
            break
    return commands


def check_installed_tree(test: unittest.TestCase, root: str, prefix: str = "usr") -> None:
    """The files every installation must hold, under ROOT/PREFIX."""
    base = os.path.join(root, prefix)
    binary = os.path.join(base, "bin", "coffre")
    test.assertTrue(os.path.isfile(binary), binary)
    test.assertTrue(os.stat(binary).st_mode & stat.S_IXUSR, "binary not executable")
    for rel in ("lib/systemd/system/coffre.service", "share/doc/coffre/coffre.example.json",
                "share/doc/coffre/OPERATIONS.md", "share/man/man1/coffre.1"):
        path = os.path.join(base, rel)
        test.assertTrue(os.path.isfile(path), path)
        test.assertGreater(os.path.getsize(path), 0, path)
    # The installed binary runs and accepts the installed example configuration.
    example = os.path.join(base, "share/doc/coffre/coffre.example.json")
    r = run([binary, "config", "check", example], timeout=30)
    test.assertEqual(r.returncode, 0, r.stdout + r.stderr)
    test.assertIn("valid", r.stdout + r.stderr)


@unittest.skipUnless(have_install_rules(), f"no build tree configured with the install rules in {BUILD_DIR} (re-run cmake)")
class CmakeInstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="coffre-install-")
        cls.destdir = os.path.join(cls.tmp, "root")
        env = dict(os.environ, DESTDIR=cls.destdir)
        cls.result = run(["cmake", "--install", BUILD_DIR, "--prefix", "/usr", "--component", COMPONENT],
                         env=env)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_install_succeeds_into_destdir(self):
        self.assertEqual(self.result.returncode, 0, self.result.stdout + self.result.stderr)
        check_installed_tree(self, self.destdir)
        # DESTDIR is honoured: nothing outside it, only usr/ inside it.
        self.assertEqual(sorted(os.listdir(self.destdir)), ["usr"])

    def test_unit_runs_the_installed_binary(self):
        unit = os.path.join(self.destdir, "usr/lib/systemd/system/coffre.service")
        with open(unit) as f:
            execstart = re.search(r"^ExecStart=(\S+)", f.read(), re.M).group(1)
        self.assertEqual(execstart, "/usr/bin/coffre")

    def test_man_page_renders_and_names_every_command(self):
        page = os.path.join(self.destdir, "usr/share/man/man1/coffre.1")
        groff = shutil.which("groff")
        if groff is None:
            self.skipTest("groff not installed")
        r = run([groff, "-man", "-Tutf8", page], timeout=30, env=dict(os.environ, LC_ALL="C.UTF-8"))
        self.assertEqual(r.returncode, 0, r.stderr)
        text = re.sub(r".\x08", "", r.stdout).replace("\u2010", "-")
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "FILES", "SEE ALSO"):
            self.assertRegex(text, rf"(?m)^{section}$")
        commands = top_level_commands(BINARY)
        self.assertIn("serve", commands)
        for command in commands:
            self.assertRegex(text, rf"(?m)^\s+{re.escape(command)}\b", f"man page lacks `{command}`")


class MakefileTest(unittest.TestCase):
    def test_make_install_honours_prefix_and_destdir(self):
        if shutil.which("make") is None:
            self.skipTest("make not installed")
        r = run(["make", "-n", "-C", REPO_ROOT, "install", "PREFIX=/opt/coffre", "DESTDIR=/tmp/stage",
                 "BUILD_DIR=build-x"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r'DESTDIR="/tmp/stage" cmake --install build-x --prefix "/opt/coffre"')
        self.assertIn("--target coffre", r.stdout)

    def test_make_deb_runs_cpack(self):
        if shutil.which("make") is None:
            self.skipTest("make not installed")
        r = run(["make", "-n", "-C", REPO_ROOT, "deb", "BUILD_DIR=build-x"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cpack -G DEB", r.stdout)


@unittest.skipUnless(have_install_rules(), f"no build tree configured with the install rules in {BUILD_DIR} (re-run cmake)")
@unittest.skipUnless(os.path.exists(os.path.join(BUILD_DIR, "CPackConfig.cmake")), "no CPackConfig.cmake")
@unittest.skipUnless(shutil.which("cpack") and shutil.which("dpkg-deb"), "cpack or dpkg-deb not installed")
class DebianPackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="coffre-deb-")
        out = os.path.join(cls.tmp, "out")
        cls.result = run(["cpack", "-G", "DEB", "-B", out, "--config",
                          os.path.join(BUILD_DIR, "CPackConfig.cmake")], cwd=BUILD_DIR, timeout=300)
        debs = [os.path.join(out, n) for n in os.listdir(out) if n.endswith(".deb")] \
            if os.path.isdir(out) else []
        cls.deb = debs[0] if len(debs) == 1 else None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.result.returncode, 0, self.result.stdout + self.result.stderr)
        self.assertIsNotNone(self.deb, "cpack made no single .deb\n" + self.result.stdout)

    def test_name_and_control_fields(self):
        self.assertRegex(os.path.basename(self.deb), r"^coffre_\d+\.\d+\.\d+_[a-z0-9]+\.deb$")
        r = run(["dpkg-deb", "-I", self.deb])
        self.assertEqual(r.returncode, 0, r.stderr)
        fields = dict(re.findall(r"(?m)^ ([A-Za-z-]+): (.*)$", r.stdout))
        self.assertEqual(fields.get("Package"), "coffre")
        self.assertTrue(fields.get("Maintainer"))
        depends = fields.get("Depends", "")
        for lib in ("libssl3", "libsodium23", "libsqlite3-0", "libstdc++6"):
            self.assertIn(lib, depends)
        # The maintainer script that creates the service user is valid shell.
        r = run(["dpkg-deb", "-I", self.deb, "postinst"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("adduser --system", r.stdout)
        self.assertEqual(run(["sh", "-n"], input=r.stdout).returncode, 0)

    def test_contents(self):
        r = run(["dpkg-deb", "-c", self.deb])
        self.assertEqual(r.returncode, 0, r.stderr)
        for path in ("./usr/bin/coffre", "./usr/lib/systemd/system/coffre.service",
                     "./usr/share/man/man1/coffre.1", "./usr/share/doc/coffre/coffre.example.json"):
            self.assertRegex(r.stdout, rf"(?m) {re.escape(path)}$")
        self.assertRegex(r.stdout, r"(?m)^-rwxr-xr-x root/root .* \./usr/bin/coffre$")

    def test_extracted_package_runs(self):
        root = os.path.join(self.tmp, "scratch-root")
        r = run(["dpkg-deb", "-x", self.deb, root])
        self.assertEqual(r.returncode, 0, r.stderr)
        check_installed_tree(self, root)


if __name__ == "__main__":
    unittest.main()
