"""Gateway mode: Coffre keeps its encrypted blobs in an upstream S3 bucket (`"storage": {"backend":
"s3", ...}`), here a second Coffre daemon and Ceph's RADOS Gateway, both started on 127.0.0.1 by
upstreams.py. Clients see plain S3; the upstream sees opaque names and ciphertext only, which the
tests check by listing and reading the upstream bucket directly and searching it for everything
they wrote."""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from botocore.exceptions import BotoCoreError, ClientError

from harness import MiB, Daemon, DaemonError, gen_bytes, multipart_etag, sha256
from test_operations import admin_get, admin_port, metric_value, write_config
from test_tamper import audit_records
from upstreams import CephRgw, CoffreUpstream, DiagnosticsOnFailure, missing_ceph_programs

PREFIX = "coffre-blobs/"
# Other tests' own gateways, in the same upstream bucket.
REBUILD_PREFIX = "rebuilt/"
TAGS_PREFIX = "tagged/"
FSCK_PREFIX = "checked/"
MIGRATE_PREFIX = "migrated/"
# What the upstream may hold: a gateway's prefix, the first four hex digits of the id, the id (32
# random hex digits; blobs migrated from a local pack keep the 16 more that placed them in it).
BLOB_KEY = re.compile(r"^(?:(?:" + "|".join(re.escape(p) for p in (PREFIX, REBUILD_PREFIX, FSCK_PREFIX, TAGS_PREFIX)) +
                      r")([0-9a-f]{4})/([0-9a-f]{32})|" + re.escape(MIGRATE_PREFIX) +
                      r"([0-9a-f]{4})/([0-9a-f]{32}(?:[0-9a-f]{16})?))$")

# Plaintext the tests write, to be searched for upstream: names, metadata and content that no
# ciphertext contains by chance.
BUCKET = "dossiers-pme-gateway"
SECRET_METADATA = "Boulangerie Dupont SARL SIREN 552100554"
CONTENT_TYPE = "application/x-coffre-dossier-de-pret"
# Tags are as confidential as metadata: none of these may reach the upstream readable.
SECRET_TAGS = {"emprunteur-tag": "Patisserie Martin", "notation-risque": "B-moins-surveillance"}
LATER_TAGS = {"decision-comite": "refus-motive-2026", "analyste": "Claire Lefebvre"}
TEXT = ("CONFIDENTIEL - dossier de pret n. 2026-0042 - emprunteur Boulangerie Dupont, "
        "capital restant du 184 500,00 EUR. ").encode()


def text_body(size: int) -> bytes:
    """`size` bytes of recognisable text, numbered so that every window of it is distinct."""
    out = bytearray()
    n = 0
    while len(out) < size:
        out += b"%08d " % n + TEXT
        n += 1
    return bytes(out[:size])


def write_secret(directory: str, secret: str, mode: int = 0o600) -> str:
    path = os.path.join(directory, "upstream.secret")
    with open(path, "w") as f:
        f.write(secret + "\n")  # as `echo SECRET > file` leaves it
    os.chmod(path, mode)
    return path


def storage_config(upstream, secret_file: str, prefix: str = PREFIX, **overrides) -> dict:
    config = {"backend": "s3", "endpoint": upstream.endpoint, "region": upstream.region,
              "bucket": upstream.bucket, "prefix": prefix, "addressing_style": "path",
              "access_key_id": upstream.access_key, "secret_access_key_file": secret_file}
    config.update(overrides)
    return config


def start_gateway(tmp: str, storage: dict) -> Daemon:
    cfg = write_config(tmp, storage=storage)
    return Daemon(extra_args=["--config", cfg], tmp=tmp).start()


class OwnGateway:
    """A gateway a test starts for itself (own_gateway): its directory, its storage config, and
    the daemon currently running on them, which start() replaces after a stop()."""

    def __init__(self, tmp: str, storage: dict):
        self.tmp = tmp
        self.storage = storage
        self.config = os.path.join(tmp, "coffre.json")
        self.daemon = None

    def start(self) -> Daemon:
        self.daemon = Daemon(extra_args=["--config", write_config(self.tmp, storage=self.storage)], tmp=self.tmp)
        self.daemon.start()
        return self.daemon


@contextlib.contextmanager
def own_gateway(upstream, name: str, prefix: str = PREFIX):
    """A gateway of the test's own on `upstream`, under `prefix`, in a fresh directory: started on
    entry; on exit, the daemon then running is stopped and the directory removed. In a test:
    `own = self.enterContext(own_gateway(...))`."""
    tmp = tempfile.mkdtemp(prefix=f"coffre-gateway-{name}-")
    own = OwnGateway(tmp, storage_config(upstream, write_secret(tmp, upstream.secret_key), prefix=prefix))
    try:
        own.start()
        yield own
    finally:
        if own.daemon is not None:
            own.daemon.stop(check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def refusal(tmp: str, storage: dict) -> str:
    """The daemon's stderr when it refuses to start with this storage config."""
    d = Daemon(extra_args=["--config", write_config(tmp, storage=storage)], tmp=tmp)
    try:
        d.start()
    except DaemonError as e:
        return str(e)
    finally:
        d.stop(check=False)  # also closes its stderr file
    raise AssertionError("the gateway started")


class GatewayContract(DiagnosticsOnFailure):
    """Mixed into one TestCase per upstream; `upstream_class` is the upstream it starts."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.upstream_class()
        cls.addClassCleanup(cls.server.stop)
        cls.server.start()
        sys.stderr.write(f"\n{cls.__name__}: upstream up in {cls.server.start_seconds:.1f}s\n")
        cls.upstream = cls.server.upstream
        cls.up = cls.upstream.client()
        cls.tmp = tempfile.mkdtemp(prefix="coffre-gateway-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.secret_file = write_secret(cls.tmp, cls.upstream.secret_key)
        cls.gateway = start_gateway(cls.tmp, storage_config(cls.upstream, cls.secret_file))
        cls.addClassCleanup(lambda: cls.gateway.stop(check=False))
        cls.s3 = cls.gateway.client()
        cls.s3.create_bucket(Bucket=BUCKET)
        # Deleted now, checked last (test_z_...): the blobs go once the collector's grace is over.
        before = cls.upstream_keys()
        cls.s3.put_object(Bucket=BUCKET, Key="deleted/soon.pdf", Body=text_body(300_000))
        cls.deleted_blobs = cls.upstream_keys() - before
        cls.s3.delete_object(Bucket=BUCKET, Key="deleted/soon.pdf")

    def failure_diagnostics(self) -> str:
        return f"gateway:\n{self.gateway.diagnostics()}\nupstream:\n{self.server.diagnostics()}"

    @classmethod
    def upstream_listing(cls) -> dict:
        """Every object of the upstream bucket: key -> size."""
        found, token = {}, None
        while True:
            kw = {"Bucket": cls.upstream.bucket, "MaxKeys": 1000}
            if token:
                kw["ContinuationToken"] = token
            page = cls.up.list_objects_v2(**kw)
            for o in page.get("Contents", []):
                found[o["Key"]] = o["Size"]
            token = page.get("NextContinuationToken")
            if not token:
                return found

    @classmethod
    def upstream_keys(cls) -> set:
        return set(cls.upstream_listing())

    def test_objects_round_trip_through_the_upstream(self):
        small = text_body(1000)
        streamed = gen_bytes(300 * 1024, seed=1)  # above one in-memory PUT upstream
        large = gen_bytes(9 * MiB + 123, seed=2)  # above one upstream part: a multipart upload there
        self.s3.put_object(Bucket=BUCKET, Key="rt/small.txt", Body=small, ContentType="text/plain",
                           Metadata={"dossier": "42"})
        self.s3.put_object(Bucket=BUCKET, Key="rt/streamed.bin", Body=streamed)
        self.s3.put_object(Bucket=BUCKET, Key="rt/large.bin", Body=large)
        self.s3.put_object(Bucket=BUCKET, Key="rt/empty", Body=b"")
        for key, data in (("rt/small.txt", small), ("rt/streamed.bin", streamed), ("rt/large.bin", large),
                          ("rt/empty", b"")):
            got = self.s3.get_object(Bucket=BUCKET, Key=key)
            self.assertEqual(sha256(got["Body"].read()), sha256(data), key)
            self.assertEqual(got["ContentLength"], len(data), key)
        head = self.s3.head_object(Bucket=BUCKET, Key="rt/small.txt")
        self.assertEqual(head["ContentType"], "text/plain")
        self.assertEqual(head["Metadata"], {"dossier": "42"})
        # Ranges inside one segment, across the upstream's part boundary, and the tail.
        for first, last in ((0, 0), (65530, 65545), (8 * MiB - 10, 8 * MiB + 10), (len(large) - 5, len(large) - 1)):
            got = self.s3.get_object(Bucket=BUCKET, Key="rt/large.bin", Range=f"bytes={first}-{last}")
            self.assertEqual(got["Body"].read(), large[first:last + 1], (first, last))
        # A multipart upload through the gateway.
        parts = [gen_bytes(5 * MiB, seed=3), gen_bytes(5 * MiB, seed=4), gen_bytes(1000, seed=5)]
        upload_id = self.s3.create_multipart_upload(Bucket=BUCKET, Key="rt/multipart.bin")["UploadId"]
        done = []
        for n, payload in enumerate(parts, start=1):
            etag = self.s3.upload_part(Bucket=BUCKET, Key="rt/multipart.bin", UploadId=upload_id, PartNumber=n,
                                       Body=payload)["ETag"]
            done.append({"PartNumber": n, "ETag": etag})
        completed = self.s3.complete_multipart_upload(Bucket=BUCKET, Key="rt/multipart.bin", UploadId=upload_id,
                                                      MultipartUpload={"Parts": done})
        self.assertEqual(completed["ETag"], multipart_etag(parts))
        whole = b"".join(parts)
        self.assertEqual(sha256(self.s3.get_object(Bucket=BUCKET, Key="rt/multipart.bin")["Body"].read()),
                         sha256(whole))
        got = self.s3.get_object(Bucket=BUCKET, Key="rt/multipart.bin", Range=f"bytes={5 * MiB - 3}-{5 * MiB + 2}")
        self.assertEqual(got["Body"].read(), whole[5 * MiB - 3:5 * MiB + 3])
        # Copy, listing, delete.
        self.s3.copy_object(Bucket=BUCKET, Key="rt/copy.bin", CopySource={"Bucket": BUCKET, "Key": "rt/large.bin"})
        self.assertEqual(sha256(self.s3.get_object(Bucket=BUCKET, Key="rt/copy.bin")["Body"].read()), sha256(large))
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="rt/")
        self.assertEqual({o["Key"]: o["Size"] for o in listed["Contents"]},
                         {"rt/small.txt": 1000, "rt/streamed.bin": len(streamed), "rt/large.bin": len(large),
                          "rt/empty": 0, "rt/multipart.bin": len(whole), "rt/copy.bin": len(large)})
        self.s3.delete_object(Bucket=BUCKET, Key="rt/copy.bin")
        with self.assertRaises(ClientError) as cm:
            self.s3.get_object(Bucket=BUCKET, Key="rt/copy.bin")
        self.assertEqual(cm.exception.response["Error"]["Code"], "NoSuchKey")

    def test_the_upstream_sees_only_ciphertext_under_opaque_names(self):
        key = "prets/2026/SIREN 552 100 554/bilan-confidentiel.pdf"
        body = text_body(200_000)
        big = text_body(9 * MiB)
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=CONTENT_TYPE,
                           ContentDisposition='attachment; filename="bilan-confidentiel.pdf"',
                           Metadata={"emprunteur": SECRET_METADATA},
                           Tagging="&".join(f"{k}={v.replace(' ', '%20')}" for k, v in SECRET_TAGS.items()))
        self.s3.put_object(Bucket=BUCKET, Key=key + ".retague", Body=b"x", ContentType=CONTENT_TYPE)
        self.s3.put_object_tagging(Bucket=BUCKET, Key=key + ".retague",
                                   Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in LATER_TAGS.items()]})
        self.s3.put_object(Bucket=BUCKET, Key=key + ".gros", Body=big, ContentType=CONTENT_TYPE)
        upload_id = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key + ".parts", ContentType=CONTENT_TYPE,
                                                    Metadata={"emprunteur": SECRET_METADATA},
                                                    Tagging="notation-risque=B-moins-surveillance")["UploadId"]
        etag = self.s3.upload_part(Bucket=BUCKET, Key=key + ".parts", UploadId=upload_id, PartNumber=1,
                                   Body=body)["ETag"]
        self.s3.complete_multipart_upload(Bucket=BUCKET, Key=key + ".parts", UploadId=upload_id,
                                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})

        needles = [BUCKET, key, "SIREN", "bilan-confidentiel", SECRET_METADATA, "Dupont", CONTENT_TYPE,
                   "x-coffre-dossier", TEXT[:24].decode(), "CONFIDENTIEL", "184 500,00"]
        needles += [*SECRET_TAGS, *SECRET_TAGS.values(), *LATER_TAGS, *LATER_TAGS.values()]
        needles += [body[i:i + 32].decode() for i in range(0, len(body), 50_000)]
        listing = self.upstream_listing()
        self.assertTrue(listing)
        for upstream_key, size in listing.items():
            m = BLOB_KEY.match(upstream_key)
            self.assertIsNotNone(m, f"upstream key {upstream_key!r} is not an opaque blob name")
            spread, blob_id = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            self.assertEqual(spread, blob_id[:4])
            head = self.up.head_object(Bucket=self.upstream.bucket, Key=upstream_key)
            self.assertEqual(head.get("Metadata", {}), {}, upstream_key)
            for header in ("ContentDisposition", "ContentEncoding", "ContentLanguage", "CacheControl", "Expires"):
                self.assertNotIn(header, head, upstream_key)
            self.assertIn(head.get("ContentType", "binary/octet-stream"),
                          ("binary/octet-stream", "application/octet-stream"), upstream_key)
            stored = self.up.get_object(Bucket=self.upstream.bucket, Key=upstream_key)["Body"].read()
            self.assertEqual(len(stored), size)
            seen = stored + upstream_key.encode() + repr(head.get("ResponseMetadata", {}).get("HTTPHeaders")).encode()
            for needle in needles:
                self.assertNotIn(needle.encode(), seen, f"{needle!r} readable in upstream {upstream_key}")
        # Two names that share no random part do not share a partition: ids spread over prefixes.
        self.assertGreater(len({k.rsplit("/", 2)[1] for k in listing}), 1)

    def test_the_gateway_comes_back_with_its_objects_after_a_restart(self):
        data = gen_bytes(400_000, seed=7)
        self.s3.put_object(Bucket=BUCKET, Key="restart/doc", Body=data)
        self.gateway.stop()
        cls = type(self)
        cls.gateway = start_gateway(self.tmp, storage_config(self.upstream, self.secret_file))
        cls.s3 = self.gateway.client()
        self.assertEqual(sha256(self.s3.get_object(Bucket=BUCKET, Key="restart/doc")["Body"].read()), sha256(data))

    def test_a_lost_catalog_is_rebuilt_from_the_upstream_and_the_keystore(self):
        # A gateway of its own, under its own prefix: what it stores is all the rebuild finds.
        own = self.enterContext(own_gateway(self.upstream, "rebuild", REBUILD_PREFIX))
        gateway = own.daemon
        s3 = gateway.client()
        s3.create_bucket(Bucket="rebuild-a")
        s3.create_bucket(Bucket="rebuild-b")
        s3.put_object(Bucket="rebuild-a", Key="prêts/2026/bilan.pdf", Body=text_body(70_000), ContentType=CONTENT_TYPE,
                      ContentDisposition="inline", Metadata={"emprunteur": "Dupont"}, ChecksumAlgorithm="SHA256")
        s3.put_object(Bucket="rebuild-a", Key="empty", Body=b"")
        s3.put_object(Bucket="rebuild-a", Key="overwritten", Body=b"first version")
        s3.put_object(Bucket="rebuild-a", Key="overwritten", Body=b"second version, the one that stays")
        s3.put_object(Bucket="rebuild-b", Key="streamed.bin", Body=gen_bytes(600_000, seed=11))
        parts = [gen_bytes(5 * MiB, seed=12), gen_bytes(1000, seed=13)]
        upload_id = s3.create_multipart_upload(Bucket="rebuild-b", Key="multipart.bin", Metadata={"n": "2"})["UploadId"]
        done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket="rebuild-b", Key="multipart.bin", UploadId=upload_id,
                                                          PartNumber=n, Body=body)["ETag"]}
                for n, body in enumerate(parts, start=1)]
        s3.complete_multipart_upload(Bucket="rebuild-b", Key="multipart.bin", UploadId=upload_id,
                                     MultipartUpload={"Parts": done})
        unfinished = s3.create_multipart_upload(Bucket="rebuild-b", Key="unfinished")["UploadId"]
        s3.upload_part(Bucket="rebuild-b", Key="unfinished", UploadId=unfinished, PartNumber=1, Body=b"x" * 1000)

        def snapshot(client) -> dict:
            seen = {}
            for bucket in ("rebuild-a", "rebuild-b"):
                for o in client.list_objects_v2(Bucket=bucket).get("Contents", []):
                    got = client.get_object(Bucket=bucket, Key=o["Key"], ChecksumMode="ENABLED")
                    seen[(bucket, o["Key"])] = (o["Size"], o["ETag"], o["LastModified"], got["ContentType"],
                                                got.get("ContentDisposition"), got["Metadata"],
                                                got.get("ChecksumSHA256"), sha256(got["Body"].read()))
            return seen

        before = snapshot(s3)
        self.assertEqual(len(before), 5)

        # A rebuild is refused beside a running daemon, and over an existing catalog.
        rebuild = ["catalog", "rebuild", "--config", own.config, "--data-dir", gateway.data_dir, "--json"]
        p = gateway.run_cli(*rebuild, check=False)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(b"stop the daemon first", p.stderr)
        gateway.stop()
        p = gateway.run_cli(*rebuild, check=False)
        self.assertNotEqual(p.returncode, 0, p)
        self.assertIn(b"never replaces a catalog", p.stderr)

        # The tenant's key is rotated, every data key moved to version 2 and version 1 destroyed: no
        # blob's own header opens any more, the copies the rewrap wrote under version 2 do.
        where = ["--config", own.config, "--data-dir", gateway.data_dir]
        gateway.run_cli("key", "rotate", "dev", *where)
        gateway.run_cli("key", "rewrap", "dev", *where)
        gateway.run_cli("key", "destroy", "dev", "1", *where)

        # Something else under the gateway's prefix: reported, never taken for a blob nor removed.
        foreign = REBUILD_PREFIX + "README-storage-team.txt"
        self.up.put_object(Bucket=self.upstream.bucket, Key=foreign, Body=b"do not delete")
        self.addCleanup(lambda: self.up.delete_object(Bucket=self.upstream.bucket, Key=foreign))

        # The gateway's disk loses its catalog; the keystore, the audit log and the upstream remain.
        for suffix in ("", "-wal", "-shm"):
            path = os.path.join(gateway.data_dir, "catalog.db" + suffix)
            if os.path.exists(path):
                os.remove(path)
        p = gateway.run_cli(*rebuild, check=False, timeout=300)
        self.assertEqual(p.returncode, 0, p)
        report = json.loads(p.stdout)
        self.assertEqual((report["buckets"], report["objects"], report["multipart_objects"]), (2, 5, 1), report)
        # Every blob but "first version" (garbage when the rewrap ran, not yet collected) opened by
        # its copy: the objects' 7 blobs and the unfinished upload's part.
        self.assertEqual(report["opened_by_key_copy"], 8, report)
        self.assertEqual(len(report["without_key"]), 1, report)
        self.assertGreaterEqual(report["key_copy_blobs"], 1, report)
        self.assertEqual(report["superseded"], 0, report)
        self.assertEqual(report["unfinished_parts"], 1, report)
        self.assertEqual((report["unreadable"], report["incomplete"]), ([], []), report)
        self.assertEqual(report["strays"], [f"s3://{self.upstream.bucket}/{foreign}"], report)
        self.assertIn(foreign, self.upstream_keys())

        gateway = own.start()
        s3 = gateway.client()
        self.assertEqual(snapshot(s3), before)
        self.assertEqual(sorted(b["Name"] for b in s3.list_buckets()["Buckets"]), ["rebuild-a", "rebuild-b"])
        # The blobs the rebuild left out are orphans for fsck (the key copies are not: the new catalog
        # names them); none that the catalog names is missing.
        p = gateway.run_cli("fsck", "--data-dir", gateway.data_dir, "--config", own.config, "--min-age", "0", "--json",
                            check=False)
        fsck = json.loads(p.stdout)
        self.assertEqual(fsck["missing"], [], fsck)
        self.assertEqual(len(fsck["orphans"]), 2, fsck)
        # Every key use of the rebuild is in the audit log, which still verifies: the unwrap of the
        # key-copies blob's key and of each key copy used (none for the blob without one), and the
        # rewrap of each object's key into its new row, under version 2.
        gateway.run_cli("audit", "check", "--data-dir", gateway.data_dir)
        records = [r for r in audit_records(gateway, own.tmp) if r["action"] == "cli:catalog rebuild"]
        unwraps = 8 + report["key_copy_blobs"]
        self.assertEqual(sorted(r["operation"] for r in records),
                         ["data_key.rewrap"] * 5 + ["data_key.unwrap"] * unwraps, records)
        self.assertEqual({r["key_version"] for r in records}, {2}, records)
        rewrapped = {(r["bucket"], r["object_key"]) for r in records if r["operation"] == "data_key.rewrap"}
        self.assertEqual(rewrapped, set(before))

    def test_tags_survive_a_catalog_rebuild(self):
        # A gateway of its own, under its own prefix: what it stores is all the rebuild finds.
        tmp = tempfile.mkdtemp(prefix="coffre-gateway-tags-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        storage = storage_config(self.upstream, write_secret(tmp, self.upstream.secret_key), prefix=TAGS_PREFIX)
        gateway = start_gateway(tmp, storage)
        self.addCleanup(lambda: gateway.stop(check=False))
        s3 = gateway.client()
        s3.create_bucket(Bucket="tags-a")

        def tag_set(**tags):
            return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}

        s3.put_object(Bucket="tags-a", Key="at-write", Body=b"tagged when written",
                      Tagging="dossier=pret-2026&classe=confidentiel")
        s3.put_object(Bucket="tags-a", Key="changed", Body=b"tagged, then tagged again", Tagging="etat=brouillon")
        s3.put_object_tagging(Bucket="tags-a", Key="changed", Tagging=tag_set(etat="valide"))
        s3.put_object_tagging(Bucket="tags-a", Key="changed", Tagging=tag_set(etat="archive", revue="2026"))
        s3.put_object(Bucket="tags-a", Key="removed", Body=b"tags removed", Tagging="temporaire=oui")
        s3.delete_object_tagging(Bucket="tags-a", Key="removed")
        s3.put_object(Bucket="tags-a", Key="untagged", Body=b"never tagged")
        upload_id = s3.create_multipart_upload(Bucket="tags-a", Key="multipart", Tagging="multipart=oui")["UploadId"]
        etag = s3.upload_part(Bucket="tags-a", Key="multipart", UploadId=upload_id, PartNumber=1,
                              Body=b"one part")["ETag"]
        s3.complete_multipart_upload(Bucket="tags-a", Key="multipart", UploadId=upload_id,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
        s3.copy_object(Bucket="tags-a", Key="copied", CopySource={"Bucket": "tags-a", "Key": "changed"})
        s3.put_bucket_tagging(Bucket="tags-a", Tagging=tag_set(centre="42"))

        def tags(client) -> dict:
            return {o["Key"]: {t["Key"]: t["Value"]
                               for t in client.get_object_tagging(Bucket="tags-a", Key=o["Key"])["TagSet"]}
                    for o in client.list_objects_v2(Bucket="tags-a").get("Contents", [])}

        before = tags(s3)
        self.assertEqual(before, {"at-write": {"dossier": "pret-2026", "classe": "confidentiel"},
                                  "changed": {"etat": "archive", "revue": "2026"}, "removed": {}, "untagged": {},
                                  "multipart": {"multipart": "oui"}, "copied": {"etat": "archive", "revue": "2026"}})

        # The gateway's disk loses its catalog; the keystore, the audit log and the upstream remain.
        gateway.stop()
        for suffix in ("", "-wal", "-shm"):
            path = os.path.join(gateway.data_dir, "catalog.db" + suffix)
            if os.path.exists(path):
                os.remove(path)
        where = ["--config", os.path.join(tmp, "coffre.json"), "--data-dir", gateway.data_dir]
        p = gateway.run_cli("catalog", "rebuild", *where, "--json", check=False, timeout=300)
        self.assertEqual(p.returncode, 0, p)
        report = json.loads(p.stdout)
        self.assertEqual((report["objects"], report["object_updates"]), (6, 2), report)
        # The first update of "changed" (garbage, not yet collected when the catalog was lost).
        self.assertEqual(report["superseded"], 1, report)

        gateway = start_gateway(tmp, storage)
        s3 = gateway.client()
        self.assertEqual(tags(s3), before)
        self.assertEqual(s3.head_object(Bucket="tags-a", Key="changed")["ResponseMetadata"]["HTTPHeaders"]
                         ["x-amz-tagging-count"], "2")
        # Bucket tags live in the catalog alone: lost with it (docs/OPERATIONS.md).
        with self.assertRaises(ClientError) as lost:
            s3.get_bucket_tagging(Bucket="tags-a")
        self.assertEqual(lost.exception.response["Error"]["Code"], "NoSuchTagSet")
        # The rebuilt catalog names the newest update blobs: none is missing, and the older update is
        # the one orphan.
        p = gateway.run_cli("fsck", *where, "--min-age", "0", "--json", check=False)
        fsck = json.loads(p.stdout)
        self.assertEqual(fsck["missing"], [], fsck)
        self.assertEqual(len(fsck["orphans"]), 1, fsck)
        # Tags keep changing after the rebuild, and the update they replace becomes garbage.
        s3.put_object_tagging(Bucket="tags-a", Key="changed", Tagging=tag_set(etat="rouvert"))
        self.assertEqual(tags(s3)["changed"], {"etat": "rouvert"})

    def test_blobs_altered_upstream_are_refused_never_served(self):
        """An upstream that returns altered, truncated, swapped or older bytes for a blob: every
        read is refused (an error, or a connection cut once the first intact bytes went out), no
        wrong byte is served, and each damaged object leaves an integrity_failure audit record."""
        bodies = {key: text_body(size)[::-1] + key.encode() for key, size in
                  (("tamper/flipped", 200_000), ("tamper/truncated", 200_000), ("tamper/swapped-a", 50_000),
                   ("tamper/swapped-b", 60_000), ("tamper/older", 40_000))}
        blob = {}
        for key, body in bodies.items():
            before = self.upstream_keys()
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
            (blob[key],) = self.upstream_keys() - before
        before = self.upstream_keys()
        self.s3.put_object(Bucket=BUCKET, Key="tamper/older", Body=bodies["tamper/older"][::-1])
        (newer,) = self.upstream_keys() - before

        def stored(name: str) -> bytes:
            return self.up.get_object(Bucket=self.upstream.bucket, Key=name)["Body"].read()

        def store(name: str, data: bytes):
            self.up.put_object(Bucket=self.upstream.bucket, Key=name, Body=data)

        flipped = bytearray(stored(blob["tamper/flipped"]))
        flipped[len(flipped) // 2] ^= 0x01
        store(blob["tamper/flipped"], bytes(flipped))
        store(blob["tamper/truncated"], stored(blob["tamper/truncated"])[:100_000])
        a, b = stored(blob["tamper/swapped-a"]), stored(blob["tamper/swapped-b"])
        store(blob["tamper/swapped-a"], b)
        store(blob["tamper/swapped-b"], a)
        store(newer, stored(blob["tamper/older"]))  # the object's previous bytes under its new blob

        for key in ("tamper/flipped", "tamper/truncated", "tamper/swapped-a", "tamper/swapped-b", "tamper/older"):
            try:
                got = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            except (ClientError, BotoCoreError, ConnectionError):
                continue
            self.fail(f"{key}: {len(got)} bytes served from a damaged blob")
        failures = {r["object_key"] for r in audit_records(self.gateway, self.tmp)
                    if r["outcome"] == "integrity_failure"}
        self.assertLessEqual(set(bodies), failures)

    def test_fsck_checks_the_upstream_and_repairs_only_what_is_safe(self):
        own = self.enterContext(own_gateway(self.upstream, "fsck", FSCK_PREFIX))
        gateway = own.daemon
        s3 = gateway.client()
        s3.create_bucket(Bucket="checked")

        def blobs() -> set:
            return {k for k in self.upstream_keys() if k.startswith(FSCK_PREFIX)}

        s3.put_object(Bucket="checked", Key="kept", Body=text_body(20_000))
        (kept_blob,) = blobs()
        s3.put_object(Bucket="checked", Key="lost", Body=text_body(30_000))
        (lost_blob,) = blobs() - {kept_blob}
        # Outside Coffre, in the upstream bucket: a copy under a blob's name that no object names
        # (what a crash between an upload and its catalog row leaves), a file that is not a blob,
        # and a blob deleted (what only a backup brings back).
        orphan_id = "0a1b" + "c" * 28
        orphan = f"{FSCK_PREFIX}{orphan_id[:4]}/{orphan_id}"
        self.up.copy_object(Bucket=self.upstream.bucket, Key=orphan,
                            CopySource={"Bucket": self.upstream.bucket, "Key": kept_blob})
        stray = FSCK_PREFIX + "notes-of-the-storage-team.txt"
        self.up.put_object(Bucket=self.upstream.bucket, Key=stray, Body=b"not a blob")
        self.addCleanup(lambda: self.up.delete_object(Bucket=self.upstream.bucket, Key=stray))
        self.up.delete_object(Bucket=self.upstream.bucket, Key=lost_blob)

        def fsck(*flags) -> tuple:
            p = gateway.run_cli("fsck", "--data-dir", gateway.data_dir, "--config", own.config, "--min-age", "0",
                                "--json", *flags, check=False, timeout=120)
            return p.returncode, json.loads(p.stdout)

        code, report = fsck()  # beside the running gateway: a check changes nothing
        self.assertEqual(code, 3, report)
        self.assertEqual(report["missing"], [lost_blob.rsplit("/", 1)[1]], report)
        self.assertEqual(report["orphans"], [orphan_id], report)
        self.assertEqual(report["strays"], [f"s3://{self.upstream.bucket}/{stray}"], report)
        self.assertIn(orphan, self.upstream_keys())

        gateway.stop()
        code, report = fsck("--repair")
        self.assertEqual(code, 3, report)  # the missing blob and the stray remain to be seen to
        self.assertEqual(report["orphans_removed"], 1, report)
        self.assertNotIn(orphan, self.upstream_keys())
        self.assertIn(stray, self.upstream_keys())
        self.assertIn(kept_blob, self.upstream_keys())

        gateway = own.start()
        s3 = gateway.client()
        self.assertEqual(s3.get_object(Bucket="checked", Key="kept")["Body"].read(), text_body(20_000))
        with self.assertRaises(ClientError) as caught:
            s3.get_object(Bucket="checked", Key="lost")["Body"].read()
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)

    def test_a_local_store_migrates_to_the_upstream(self):
        """coffre storage migrate: a daemon's local blobs copied upstream while it runs, the rest
        once it is stopped, then the same data directory served in gateway mode."""
        tmp = tempfile.mkdtemp(prefix="coffre-gateway-migrate-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        local = Daemon(extra_args=["--config", write_config(tmp)], tmp=tmp).start()
        self.addCleanup(lambda: local.stop(check=False))
        s3 = local.client()
        s3.create_bucket(Bucket="migrated")
        bodies = {"small": text_body(3000), "medium": gen_bytes(700_000, seed=21), "empty": b""}
        for key, body in bodies.items():
            s3.put_object(Bucket="migrated", Key=key, Body=body, Metadata={"k": key})
        parts = [gen_bytes(5 * MiB, seed=22), gen_bytes(1234, seed=23)]
        upload = s3.create_multipart_upload(Bucket="migrated", Key="multipart")["UploadId"]
        done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket="migrated", Key="multipart", UploadId=upload,
                                                          PartNumber=n, Body=body)["ETag"]}
                for n, body in enumerate(parts, start=1)]
        s3.complete_multipart_upload(Bucket="migrated", Key="multipart", UploadId=upload,
                                     MultipartUpload={"Parts": done})
        bodies["multipart"] = b"".join(parts)

        new_dir = os.path.join(tmp, "gateway")
        os.makedirs(new_dir)
        new_config = write_config(new_dir, storage=storage_config(
            self.upstream, write_secret(new_dir, self.upstream.secret_key), prefix=MIGRATE_PREFIX))
        migrate = ["storage", "migrate", "--config", new_config, "--data-dir", local.data_dir, "--json"]
        # A configuration without an upstream is refused: it must name where the blobs go.
        p = local.run_cli("storage", "migrate", "--config", write_config(tmp), "--data-dir", local.data_dir,
                          check=False)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn(b"backend", p.stderr)

        def upstream_blobs() -> set:
            return {k for k in self.upstream_keys() if k.startswith(MIGRATE_PREFIX)}

        p = local.run_cli(*migrate, check=False, timeout=300)  # beside the running daemon
        self.assertEqual(p.returncode, 0, p)
        first = json.loads(p.stdout)
        self.assertTrue(first["daemon_running"], first)
        self.assertTrue(first["verified"], first)
        self.assertEqual(first["failed"], [], first)
        self.assertGreaterEqual(first["copied"], 6, first)  # 3 objects, 2 parts, 1 manifest at least
        self.assertEqual(len(upstream_blobs()), first["copied"])

        s3.put_object(Bucket="migrated", Key="late", Body=text_body(9000))
        bodies["late"] = text_body(9000)
        local.stop()
        p = local.run_cli(*migrate, check=False, timeout=300)
        self.assertEqual(p.returncode, 0, p)
        second = json.loads(p.stdout)
        self.assertFalse(second["daemon_running"], second)
        self.assertEqual(second["copied"], 1, second)  # only what was written meanwhile
        self.assertEqual(second["already_there"], first["copied"], second)

        gateway = Daemon(extra_args=["--config", new_config], tmp=tmp).start()
        self.addCleanup(lambda: gateway.stop(check=False))
        s3 = gateway.client()
        for key, body in bodies.items():
            got = s3.get_object(Bucket="migrated", Key=key)
            self.assertEqual(got["Body"].read(), body, key)
        p = gateway.run_cli("fsck", "--config", new_config, "--data-dir", gateway.data_dir, "--min-age", "0",
                            "--json", check=False)
        self.assertEqual(json.loads(p.stdout)["missing"], [], p)

    def test_z_a_deleted_object_leaves_the_upstream(self):
        self.assertTrue(self.deleted_blobs)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.deleted_blobs & self.upstream_keys():
            time.sleep(1)
        self.assertFalse(self.deleted_blobs & self.upstream_keys(), "the blobs of a deleted object stay upstream")


class OverCoffre(GatewayContract, unittest.TestCase):
    upstream_class = CoffreUpstream

    def test_the_gateway_refuses_to_start_on_an_upstream_it_cannot_use(self):
        tmp = tempfile.mkdtemp(prefix="coffre-gateway-refused-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        good = write_secret(tmp, self.upstream.secret_key)
        # A secret file others can read.
        loose_dir = os.path.join(tmp, "loose")
        os.makedirs(loose_dir)
        loose = write_secret(loose_dir, self.upstream.secret_key, mode=0o644)
        message = refusal(tmp, storage_config(self.upstream, loose))
        self.assertIn("upstream", message)
        self.assertIn("0644", message)
        # A wrong secret: the upstream refuses the bucket's HEAD (403, no body to say why); the
        # secret is never printed.
        wrong_dir = os.path.join(tmp, "wrong")
        os.makedirs(wrong_dir)
        wrong = write_secret(wrong_dir, "not-the-secret-" + "x" * 24)
        message = refusal(tmp, storage_config(self.upstream, wrong))
        self.assertIn(self.upstream.bucket, message)
        self.assertIn("403", message)
        self.assertIn("refused these credentials", message)
        self.assertNotIn("not-the-secret", message)
        self.assertNotIn(self.upstream.secret_key, message)
        # No bucket of that name upstream.
        message = refusal(tmp, storage_config(self.upstream, good, bucket="no-such-bucket-here"))
        self.assertIn("no-such-bucket-here", message)
        self.assertIn("no such bucket upstream", message)
        # Nothing listening there.
        closed = self.upstream.endpoint.rsplit(":", 1)[0] + ":1"
        message = refusal(tmp, storage_config(self.upstream, good, endpoint=closed))
        self.assertIn("127.0.0.1:1", message)


    def test_config_check_connect_says_what_works(self):
        tmp = tempfile.mkdtemp(prefix="coffre-gateway-check-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)

        def check(secret: str, subdir: str) -> subprocess.CompletedProcess:
            directory = os.path.join(tmp, subdir)
            os.makedirs(directory)
            cfg = write_config(directory, storage=storage_config(self.upstream, write_secret(directory, secret)))
            return subprocess.run([self.gateway.binary, "config", "check", "--connect", cfg], capture_output=True,
                                  timeout=120, stdin=subprocess.DEVNULL)

        p = check(self.upstream.secret_key, "good")
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        for step in ("bucket (HEAD): ok", "write an object: ok", "read it back: ok", "list it: ok", "delete it: ok"):
            self.assertIn(step, out)
        self.assertFalse([k for k in self.upstream_keys() if "coffre-connect-check" in k], "the probe stayed")
        p = check("not-the-secret-" + "y" * 24, "wrong")
        out = p.stdout.decode() + p.stderr.decode()
        self.assertEqual(p.returncode, 1, out)
        self.assertIn("FAILED", out)
        self.assertIn("refused these credentials", out)
        self.assertNotIn("not-the-secret", out)

    def test_readiness_and_metrics_follow_the_upstream(self):
        """/health/ready checks the upstream bucket and names it when it stops answering; /metrics
        carries the upstream client's counters."""
        server = CoffreUpstream(tenant="probed")
        self.addCleanup(server.stop)
        server.start()
        own = self.enterContext(own_gateway(server.upstream, "ready"))
        gateway = own.daemon
        admin = admin_port(gateway)
        status, _, body = admin_get(admin, "/health/ready")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["checks"]["upstream"], "ok")

        s3 = gateway.client()
        s3.create_bucket(Bucket="probed")
        s3.put_object(Bucket="probed", Key="a", Body=text_body(5000))
        self.assertEqual(s3.get_object(Bucket="probed", Key="a")["Body"].read(), text_body(5000))
        text = admin_get(admin, "/metrics")[2].decode()
        operations = metric_value(text, "coffre_upstream_operations_total")
        attempts = metric_value(text, "coffre_upstream_attempt_duration_seconds_count")
        self.assertGreaterEqual(operations, 3, text)  # the start's HEAD, the PUT, the GET at least
        self.assertGreaterEqual(attempts, operations)
        self.assertEqual(metric_value(text, 'coffre_upstream_attempt_duration_seconds_bucket{le="+Inf"}'), attempts)
        self.assertEqual(metric_value(text, 'coffre_upstream_errors_total{code="Unavailable"}'), 0)

        server.daemon.stop(check=False)  # the upstream goes away; the gateway stays up
        status, _, body = admin_get(admin, "/health/ready")
        self.assertEqual(status, 503, body)
        report = json.loads(body)
        self.assertEqual(report["status"], "not ready")
        self.assertIn(server.upstream.bucket, report["checks"]["upstream"])
        for check in ("keystore", "catalog", "data_dir", "audit"):
            self.assertEqual(report["checks"][check], "ok", report)
        text = admin_get(admin, "/metrics")[2].decode()
        errors = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("coffre_upstream_errors_total{"))
        self.assertGreater(errors, 0, text)
        self.assertGreater(metric_value(text, "coffre_upstream_retries_total"), 0, text)

        # Key commands do not read blobs: an unreachable upstream does not stop them (a key can be
        # rotated, or a tenant shredded, while it is down). fsck reads blobs and says why it cannot.
        where = ["--config", own.config, "--data-dir", gateway.data_dir]
        p = gateway.run_cli("key", "list", "dev", "--json", *where, check=False)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(json.loads(p.stdout)["tenant"], "dev")
        gateway.run_cli("key", "rotate", "dev", *where)
        p = gateway.run_cli("fsck", *where, check=False)
        self.assertNotEqual(p.returncode, 0, p)
        self.assertIn(server.upstream.bucket.encode(), p.stderr)


@unittest.skipIf(missing_ceph_programs(), f"Ceph programs missing: {missing_ceph_programs()}")
class OverCephRgw(GatewayContract, unittest.TestCase):
    upstream_class = CephRgw


if __name__ == "__main__":
    unittest.main()
