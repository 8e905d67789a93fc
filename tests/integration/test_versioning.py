"""Bucket versioning as the AWS S3 API reference describes it: Get/PutBucketVersioning, version ids
on PUT, GET/HEAD/DELETE with versionId, delete markers, the "null" version of objects written while
versioning was off or suspended, ListObjectVersions (order, fields, pagination, prefix, delimiter,
encoding-type=url), CopyObject from a version, CompleteMultipartUpload, DeleteObjects with
versions, GetObjectAttributes of a version, DeleteBucket with versions left and conditional writes;
with boto3, the aws CLI and signed raw requests.

Where the expected answer is not spelled out by AWS's reference (and so rests on how S3 is known to
behave), the assertion carries a comment saying so."""

import datetime as _dt
import json
import unittest
import urllib.parse

from botocore.exceptions import ClientError

from harness import S3_NS, CoffreTestCase, MiB, gen_bytes, md5_b64, md5_hex, multipart_etag, child_text

VERSIONING_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def versioning_xml(status: str) -> bytes:
    return (f'<VersioningConfiguration xmlns="{VERSIONING_NS}"><Status>{status}</Status>'
            f'</VersioningConfiguration>').encode()


def quoted_md5(b: bytes) -> str:
    return '"%s"' % md5_hex(b)


def entries_of(root) -> list:
    """The Version and DeleteMarker elements of a ListVersionsResult, in document order."""
    out = []
    for el in root:
        tag = el.tag.replace(S3_NS, "")
        if tag not in ("Version", "DeleteMarker"):
            continue
        e = {"kind": tag, "Key": child_text(el, "Key"), "VersionId": child_text(el, "VersionId"),
             "IsLatest": child_text(el, "IsLatest"), "LastModified": child_text(el, "LastModified")}
        if tag == "Version":
            e["ETag"] = child_text(el, "ETag")
            e["Size"] = child_text(el, "Size")
        out.append(e)
    return out


def boto_entries(resp) -> list:
    """(kind, Key, VersionId, IsLatest) of a boto3 ListObjectVersions page. boto3 splits the
    document's single sequence into Versions and DeleteMarkers, so the order across the two is
    lost: callers compare these as sets, and check the order on the raw listing."""
    out = [("Version", v["Key"], v["VersionId"], v["IsLatest"]) for v in resp.get("Versions", [])]
    out += [("DeleteMarker", d["Key"], d["VersionId"], d["IsLatest"]) for d in resp.get("DeleteMarkers", [])]
    return out


class VersioningTest(CoffreTestCase):

    # ---------------------------------------------------------------------------------------
    # helpers
    # ---------------------------------------------------------------------------------------

    def set_versioning(self, bucket, status):
        r = self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)

    def versioned_bucket(self, status="Enabled") -> str:
        bucket = self.new_bucket(prefix="ver")
        self.set_versioning(bucket, status)
        return bucket

    def put(self, bucket, key, body, **kw) -> str:
        r = self.s3.put_object(Bucket=bucket, Key=key, Body=body, **kw)
        self.assertEqual(r["ETag"], quoted_md5(body))
        return r.get("VersionId")

    def raw_listing(self, bucket, query=()):
        r = self.daemon.request("GET", f"/{bucket}", query=[("versions", "")] + list(query))
        self.assertEqual(r.status, 200, r)
        root = r.xml()
        self.assertEqual(root.tag, S3_NS + "ListVersionsResult", r.body[:300])
        return root, entries_of(root)

    def version_ids(self, bucket, key):
        """[(kind, VersionId, IsLatest)] of one key, in listing order (newest first)."""
        _, entries = self.raw_listing(bucket, [("prefix", key)])
        return [(e["kind"], e["VersionId"], e["IsLatest"] == "true") for e in entries if e["Key"] == key]

    def status_of(self, bucket):
        return self.s3.get_bucket_versioning(Bucket=bucket).get("Status")

    # ---------------------------------------------------------------------------------------
    # 1. Get/PutBucketVersioning
    # ---------------------------------------------------------------------------------------

    def test_bucket_versioning_configuration(self):
        bucket = self.new_bucket(prefix="ver")
        r = self.s3.get_bucket_versioning(Bucket=bucket)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertNotIn("Status", r)
        self.assertNotIn("MFADelete", r)
        raw = self.daemon.request("GET", f"/{bucket}", query=[("versioning", "")])
        self.assertEqual(raw.status, 200, raw)
        root = raw.xml()
        self.assertEqual(root.tag, S3_NS + "VersioningConfiguration")
        self.assertIsNone(child_text(root, "Status"), raw.body)

        self.set_versioning(bucket, "Enabled")
        self.assertEqual(self.status_of(bucket), "Enabled")
        raw = self.daemon.request("GET", f"/{bucket}", query=[("versioning", "")])
        self.assertEqual(child_text(raw.xml(), "Status"), "Enabled")

        # Rejected configurations change nothing (Content-MD5 sent, as AWS requires it here).
        bad_bodies = [
            b"not xml",
            b"<VersioningConfiguration><Status>Enabled</Status>",
            versioning_xml("Disabled"),
            versioning_xml("Bogus"),
            versioning_xml(""),
        ]
        for body in bad_bodies:
            with self.subTest(body=body):
                r = self.daemon.request("PUT", f"/{bucket}", query=[("versioning", "")], body=body,
                                        headers={"Content-MD5": md5_b64(body)})
                self.assertS3Error(r, "MalformedXML", 400)
                self.assertEqual(self.status_of(bucket), "Enabled")

        self.set_versioning(bucket, "Suspended")
        self.assertEqual(self.status_of(bucket), "Suspended")
        for body in (versioning_xml("Off"), b"<VersioningConfiguration><Status>Enabled"):
            with self.subTest(body=body):
                r = self.daemon.request("PUT", f"/{bucket}", query=[("versioning", "")], body=body,
                                        headers={"Content-MD5": md5_b64(body)})
                self.assertS3Error(r, "MalformedXML", 400)
                self.assertEqual(self.status_of(bucket), "Suspended")

        # A well-formed raw request works (and back to Enabled from Suspended).
        body = versioning_xml("Enabled")
        r = self.daemon.request("PUT", f"/{bucket}", query=[("versioning", "")], body=body,
                                headers={"Content-MD5": md5_b64(body)})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.status_of(bucket), "Enabled")

        # Missing bucket.
        self.assertClientError("NoSuchBucket", 404, self.s3.get_bucket_versioning, Bucket="no-such-bucket-ver")
        self.assertClientError("NoSuchBucket", 404, self.s3.put_bucket_versioning, Bucket="no-such-bucket-ver",
                               VersioningConfiguration={"Status": "Enabled"})

    def test_bucket_versioning_aws_cli(self):
        bucket = self.new_bucket(prefix="ver")
        out = self.daemon.aws("s3api", "get-bucket-versioning", "--bucket", bucket).stdout.strip()
        # An empty configuration: the CLI prints nothing (or an empty object).
        self.assertNotIn(b"Status", out)
        self.daemon.aws("s3api", "put-bucket-versioning", "--bucket", bucket,
                        "--versioning-configuration", "Status=Enabled")
        got = json.loads(self.daemon.aws("s3api", "get-bucket-versioning", "--bucket", bucket).stdout)
        self.assertEqual(got.get("Status"), "Enabled")
        self.daemon.aws("s3api", "put-bucket-versioning", "--bucket", bucket,
                        "--versioning-configuration", "Status=Suspended")
        got = json.loads(self.daemon.aws("s3api", "get-bucket-versioning", "--bucket", bucket).stdout)
        self.assertEqual(got.get("Status"), "Suspended")

    # ---------------------------------------------------------------------------------------
    # 2. versions of one key
    # ---------------------------------------------------------------------------------------

    def test_each_put_makes_a_version(self):
        bucket = self.versioned_bucket()
        bodies = [gen_bytes(70000 + 1111 * i, seed=20 + i) for i in range(3)]
        types = ["text/plain", "application/json", "image/png"]
        vids = []
        for i, body in enumerate(bodies):
            vids.append(self.put(bucket, "doc", body, ContentType=types[i],
                                 Metadata={"rev": str(i), "note": f"version {i}"}))
        self.assertTrue(all(v for v in vids), vids)
        self.assertNotIn("null", vids)
        self.assertEqual(len(set(vids)), 3, vids)

        # Without versionId: the newest.
        got = self.s3.get_object(Bucket=bucket, Key="doc")
        self.assertEqual(got["Body"].read(), bodies[2])
        self.assertEqual(got["VersionId"], vids[2])
        self.assertEqual(got["ContentType"], types[2])
        self.assertEqual(got["Metadata"], {"rev": "2", "note": "version 2"})
        head = self.s3.head_object(Bucket=bucket, Key="doc")
        self.assertEqual(head["VersionId"], vids[2])
        self.assertEqual(head["ContentLength"], len(bodies[2]))
        self.assertEqual(head["ETag"], quoted_md5(bodies[2]))

        # Each version by its id: its own bytes and metadata.
        for i, vid in enumerate(vids):
            with self.subTest(version=i):
                got = self.s3.get_object(Bucket=bucket, Key="doc", VersionId=vid)
                self.assertEqual(got["Body"].read(), bodies[i])
                self.assertEqual(got["VersionId"], vid)
                self.assertEqual(got["ETag"], quoted_md5(bodies[i]))
                self.assertEqual(got["ContentLength"], len(bodies[i]))
                self.assertEqual(got["ContentType"], types[i])
                self.assertEqual(got["Metadata"], {"rev": str(i), "note": f"version {i}"})
                head = self.s3.head_object(Bucket=bucket, Key="doc", VersionId=vid)
                self.assertEqual(head["VersionId"], vid)
                self.assertEqual(head["ContentLength"], len(bodies[i]))
                self.assertEqual(head["ContentType"], types[i])
                self.assertEqual(head["Metadata"], {"rev": str(i), "note": f"version {i}"})
                # a range of an older version
                part = self.s3.get_object(Bucket=bucket, Key="doc", VersionId=vid, Range="bytes=65530-65545")
                self.assertEqual(part["ResponseMetadata"]["HTTPStatusCode"], 206)
                self.assertEqual(part["Body"].read(), bodies[i][65530:65546])
                self.assertEqual(part["VersionId"], vid)

        # The raw response carries the header itself.
        r = self.daemon.request("GET", f"/{bucket}/doc", query=[("versionId", vids[0])])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, bodies[0])
        self.assertEqual(r.headers.get("x-amz-version-id"), vids[0])
        self.assertEqual(r.headers.get("content-type"), types[0])
        self.assertEqual(r.headers.get("x-amz-meta-rev"), "0")

    # ---------------------------------------------------------------------------------------
    # 3. bad and unknown version ids
    # ---------------------------------------------------------------------------------------

    def test_malformed_and_unknown_version_ids(self):
        bucket = self.versioned_bucket()
        self.put(bucket, "a", b"alpha")
        other_vid = self.put(bucket, "b", b"beta")

        # Not a version id at all → 400 InvalidArgument ("Invalid version id specified" on AWS).
        for bad in ("abc", "bad version/id"):
            with self.subTest(bad=bad):
                r = self.daemon.request("GET", f"/{bucket}/a", query=[("versionId", bad)])
                self.assertS3Error(r, "InvalidArgument", 400)
                r = self.daemon.request("HEAD", f"/{bucket}/a", query=[("versionId", bad)])
                self.assertEqual(r.status, 400, r)
                # DeleteObject validates the id the same way (as the other object actions that take
                # one; from S3's observed behaviour rather than a sentence of the reference).
                r = self.daemon.request("DELETE", f"/{bucket}/a", query=[("versionId", bad)])
                self.assertS3Error(r, "InvalidArgument", 400)
        # An empty versionId → 400 InvalidArgument ("Version id cannot be the empty string").
        r = self.daemon.request("GET", f"/{bucket}/a", query=[("versionId", "")])
        self.assertS3Error(r, "InvalidArgument", 400)

        # A real version id, but another key's → 404 NoSuchVersion.
        r = self.daemon.request("GET", f"/{bucket}/a", query=[("versionId", other_vid)])
        self.assertS3Error(r, "NoSuchVersion", 404)
        r = self.daemon.request("HEAD", f"/{bucket}/a", query=[("versionId", other_vid)])
        self.assertEqual(r.status, 404, r)
        self.assertClientError("NoSuchVersion", 404, self.s3.get_object, Bucket=bucket, Key="a",
                               VersionId=other_vid)
        self.assertClientError(None, 404, self.s3.head_object, Bucket=bucket, Key="a", VersionId=other_vid)
        # "null" is well formed; this key has no null version → NoSuchVersion (S3's behaviour for a
        # key written only while versioning was Enabled).
        r = self.daemon.request("GET", f"/{bucket}/a", query=[("versionId", "null")])
        self.assertS3Error(r, "NoSuchVersion", 404)
        # DELETE of a well-formed version this key does not have: S3 answers 204 (a delete is
        # idempotent; observed S3 behaviour, the reference does not spell it out), and must not
        # touch the other key's version of that id.
        r = self.daemon.request("DELETE", f"/{bucket}/a", query=[("versionId", other_vid)])
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.get_bytes(bucket, "b", VersionId=other_vid), b"beta")
        # Nothing was deleted by the refused DELETEs.
        self.assertEqual(self.get_bytes(bucket, "a"), b"alpha")
        self.assertEqual(len(self.version_ids(bucket, "a")), 1)

    # ---------------------------------------------------------------------------------------
    # 4. delete markers
    # ---------------------------------------------------------------------------------------

    def test_delete_marker_lifecycle(self):
        bucket = self.versioned_bucket()
        v1 = self.put(bucket, "k", b"first")
        v2 = self.put(bucket, "k", b"second")

        r = self.daemon.request("DELETE", f"/{bucket}/k")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.headers.get("x-amz-delete-marker"), "true")
        marker = r.headers.get("x-amz-version-id")
        self.assertTrue(marker, r.header_list)
        self.assertNotIn(marker, (v1, v2, "null"))
        self.assertEqual(self.version_ids(bucket, "k"),
                         [("DeleteMarker", marker, True), ("Version", v2, False), ("Version", v1, False)])

        # GET/HEAD without a version: as if deleted, with x-amz-delete-marker: true.
        r = self.daemon.request("GET", f"/{bucket}/k")
        self.assertS3Error(r, "NoSuchKey", 404)
        self.assertEqual(r.headers.get("x-amz-delete-marker"), "true")
        self.assertEqual(r.headers.get("x-amz-version-id"), marker)  # the marker, as S3 names it
        r = self.daemon.request("HEAD", f"/{bucket}/k")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.headers.get("x-amz-delete-marker"), "true")
        self.assertClientError("NoSuchKey", 404, self.s3.get_object, Bucket=bucket, Key="k")

        # Listings of current objects no longer show it.
        self.assertNotIn("k", [o["Key"] for o in self.s3.list_objects_v2(Bucket=bucket).get("Contents", [])])
        self.assertNotIn("k", [o["Key"] for o in self.s3.list_objects(Bucket=bucket).get("Contents", [])])

        # The older versions are still there.
        self.assertEqual(self.get_bytes(bucket, "k", VersionId=v1), b"first")
        self.assertEqual(self.get_bytes(bucket, "k", VersionId=v2), b"second")

        # The marker by its id: 405 MethodNotAllowed, x-amz-delete-marker: true and Last-Modified.
        r = self.daemon.request("GET", f"/{bucket}/k", query=[("versionId", marker)])
        self.assertS3Error(r, "MethodNotAllowed", 405)
        self.assertEqual(r.headers.get("x-amz-delete-marker"), "true")
        self.assertIn("last-modified", r.headers)
        r = self.daemon.request("HEAD", f"/{bucket}/k", query=[("versionId", marker)])
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.headers.get("x-amz-delete-marker"), "true")
        self.assertIn("last-modified", r.headers)

        # Deleting the marker (by version) brings the previous version back.
        r = self.daemon.request("DELETE", f"/{bucket}/k", query=[("versionId", marker)])
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.headers.get("x-amz-delete-marker"), "true")
        self.assertEqual(r.headers.get("x-amz-version-id"), marker)
        got = self.s3.get_object(Bucket=bucket, Key="k")
        self.assertEqual(got["Body"].read(), b"second")
        self.assertEqual(got["VersionId"], v2)
        self.assertIn("k", [o["Key"] for o in self.s3.list_objects_v2(Bucket=bucket).get("Contents", [])])
        self.assertEqual(self.version_ids(bucket, "k"), [("Version", v2, True), ("Version", v1, False)])

        # boto3 sees the same.
        d = self.s3.delete_object(Bucket=bucket, Key="k")
        self.assertEqual(d["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertTrue(d["DeleteMarker"])
        m2 = d["VersionId"]
        # A DELETE while the current version is already a delete marker adds another marker (S3's
        # behaviour: every simple DELETE on an Enabled bucket inserts one).
        d = self.s3.delete_object(Bucket=bucket, Key="k")
        self.assertTrue(d["DeleteMarker"])
        m3 = d["VersionId"]
        self.assertNotEqual(m2, m3)
        self.assertEqual(self.version_ids(bucket, "k"),
                         [("DeleteMarker", m3, True), ("DeleteMarker", m2, False),
                          ("Version", v2, False), ("Version", v1, False)])
        # A simple DELETE of a key that never existed on an Enabled bucket also inserts a marker.
        d = self.s3.delete_object(Bucket=bucket, Key="never-written")
        self.assertEqual(d["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertTrue(d["DeleteMarker"])
        self.assertEqual(self.version_ids(bucket, "never-written"), [("DeleteMarker", d["VersionId"], True)])

    # ---------------------------------------------------------------------------------------
    # 5. permanent deletion of one version
    # ---------------------------------------------------------------------------------------

    def test_delete_a_version_permanently(self):
        bucket = self.versioned_bucket()
        bodies = [b"one", b"two", b"three"]
        v = [self.put(bucket, "p", b) for b in bodies]

        # A noncurrent version: gone, and only it.
        r = self.daemon.request("DELETE", f"/{bucket}/p", query=[("versionId", v[1])])
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.headers.get("x-amz-version-id"), v[1])
        self.assertNotEqual(r.headers.get("x-amz-delete-marker"), "true")  # it was no marker
        self.assertClientError("NoSuchVersion", 404, self.s3.get_object, Bucket=bucket, Key="p", VersionId=v[1])
        self.assertClientError(None, 404, self.s3.head_object, Bucket=bucket, Key="p", VersionId=v[1])
        self.assertEqual(self.version_ids(bucket, "p"), [("Version", v[2], True), ("Version", v[0], False)])
        self.assertEqual(self.get_bytes(bucket, "p"), b"three")
        self.assertEqual(self.get_bytes(bucket, "p", VersionId=v[0]), b"one")

        # The current version: the previous one becomes current (no delete marker is made).
        d = self.s3.delete_object(Bucket=bucket, Key="p", VersionId=v[2])
        self.assertEqual(d["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertEqual(d["VersionId"], v[2])
        self.assertFalse(d.get("DeleteMarker", False))
        got = self.s3.get_object(Bucket=bucket, Key="p")
        self.assertEqual(got["Body"].read(), b"one")
        self.assertEqual(got["VersionId"], v[0])
        self.assertEqual(self.version_ids(bucket, "p"), [("Version", v[0], True)])
        self.assertClientError("NoSuchVersion", 404, self.s3.get_object, Bucket=bucket, Key="p", VersionId=v[2])

        # The last one: the key is gone altogether, with no marker.
        self.s3.delete_object(Bucket=bucket, Key="p", VersionId=v[0])
        self.assertEqual(self.version_ids(bucket, "p"), [])
        r = self.daemon.request("GET", f"/{bucket}/p")
        self.assertS3Error(r, "NoSuchKey", 404)
        self.assertNotIn("x-amz-delete-marker", r.headers)

    # ---------------------------------------------------------------------------------------
    # 6. ListObjectVersions
    # ---------------------------------------------------------------------------------------

    def listing_fixture(self):
        """A bucket whose every version is known: {"bucket", "expected": [(kind, key, vid)] in
        listing order, "bodies": {vid: bytes}}."""
        if getattr(type(self), "_listing", None):
            return type(self)._listing
        bucket = self.versioned_bucket()
        history = {}   # key -> [(kind, vid)] oldest first
        bodies = {}

        def put(key, n):
            body = gen_bytes(n, seed=n)
            vid = self.put(bucket, key, body)
            bodies[vid] = body
            history.setdefault(key, []).append(("Version", vid))

        def delete(key):
            d = self.s3.delete_object(Bucket=bucket, Key=key)
            self.assertTrue(d["DeleteMarker"])
            history.setdefault(key, []).append(("DeleteMarker", d["VersionId"]))

        put("a", 10), put("a", 11), put("a", 12)
        put("c/d", 20), put("c/d", 21)
        put("b", 30), delete("b")
        put("c/e", 40), delete("c/e"), put("c/e", 41)
        put("f", 50)
        expected = []
        for key in sorted(history, key=lambda k: k.encode()):
            expected += [(kind, key, vid) for kind, vid in reversed(history[key])]
        type(self)._listing = {"bucket": bucket, "expected": expected, "bodies": bodies}
        return type(self)._listing

    def test_list_versions_fields_and_order(self):
        fx = self.listing_fixture()
        bucket, expected, bodies = fx["bucket"], fx["expected"], fx["bodies"]
        root, entries = self.raw_listing(bucket)
        self.assertEqual(child_text(root, "Name"), bucket)
        self.assertEqual(child_text(root, "IsTruncated"), "false")
        # One sequence, keys ascending, newest version (or marker) first within a key.
        self.assertEqual([(e["kind"], e["Key"], e["VersionId"]) for e in entries], expected)
        latest_seen = set()
        for e in entries:
            with self.subTest(entry=e):
                first_of_key = e["Key"] not in latest_seen
                latest_seen.add(e["Key"])
                self.assertEqual(e["IsLatest"], "true" if first_of_key else "false")
                self.assertTrue(e["LastModified"], e)
                if e["kind"] == "Version":
                    body = bodies[e["VersionId"]]
                    self.assertEqual(e["ETag"], quoted_md5(body))
                    self.assertEqual(e["Size"], str(len(body)))

        r = self.s3.list_object_versions(Bucket=bucket)
        self.assertFalse(r["IsTruncated"])
        now = _dt.datetime.now(_dt.timezone.utc)
        exp_versions = [(k, vid) for kind, k, vid in expected if kind == "Version"]
        exp_markers = [(k, vid) for kind, k, vid in expected if kind == "DeleteMarker"]
        self.assertEqual([(v["Key"], v["VersionId"]) for v in r.get("Versions", [])], exp_versions)
        self.assertEqual([(d["Key"], d["VersionId"]) for d in r.get("DeleteMarkers", [])], exp_markers)
        latest = {}
        for kind, k, vid in expected:
            latest.setdefault(k, vid)
        for v in r["Versions"]:
            self.assertEqual(v["IsLatest"], latest[v["Key"]] == v["VersionId"], v)
            self.assertEqual(v["ETag"], quoted_md5(bodies[v["VersionId"]]))
            self.assertEqual(v["Size"], len(bodies[v["VersionId"]]))
            self.assertLess(abs((now - v["LastModified"]).total_seconds()), 3600, v)
        for d in r["DeleteMarkers"]:
            self.assertEqual(d["IsLatest"], latest[d["Key"]] == d["VersionId"], d)
            self.assertNotIn("ETag", d)
            self.assertNotIn("Size", d)
            self.assertLess(abs((now - d["LastModified"]).total_seconds()), 3600, d)
        # Newest first within a key: LastModified never increases down the list.
        by_id = {v["VersionId"]: v["LastModified"] for v in r["Versions"] + r["DeleteMarkers"]}
        for (_, k1, a), (_, k2, b) in zip(expected, expected[1:]):
            if k1 == k2:
                self.assertGreaterEqual(by_id[a], by_id[b], (k1, a, b))

    def test_list_versions_pagination(self):
        fx = self.listing_fixture()
        bucket, expected = fx["bucket"], fx["expected"]
        for max_keys in (1, 2, 3):
            with self.subTest(max_keys=max_keys):
                got, pages, kw = [], 0, {}
                while True:
                    pages += 1
                    self.assertLess(pages, 50, "pagination does not end")
                    root, entries = self.raw_listing(bucket, [("max-keys", str(max_keys))] + [
                        (name, value) for name, value in kw.items()])
                    self.assertEqual(child_text(root, "MaxKeys"), str(max_keys))
                    self.assertLessEqual(len(entries), max_keys)
                    got += [(e["kind"], e["Key"], e["VersionId"]) for e in entries]
                    if child_text(root, "IsTruncated") != "true":
                        self.assertIsNone(child_text(root, "NextKeyMarker"), "NextKeyMarker on the last page")
                        break
                    self.assertEqual(len(entries), max_keys, "a truncated page is full")
                    nk = child_text(root, "NextKeyMarker")
                    nv = child_text(root, "NextVersionIdMarker")
                    self.assertTrue(nk, "a truncated page names NextKeyMarker")
                    self.assertTrue(nv, "a truncated page of versions names NextVersionIdMarker")
                    kw = {"key-marker": nk, "version-id-marker": nv}
                self.assertEqual(len(set(got)), len(got), "duplicates across pages")
                self.assertEqual(got, expected)

        # The same walk through boto3 (which asks for encoding-type=url and decodes the markers).
        got, kw = [], {}
        for _ in range(50):
            page = self.s3.list_object_versions(Bucket=bucket, MaxKeys=2, **kw)
            got += boto_entries(page)
            if not page["IsTruncated"]:
                break
            kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
        self.assertEqual(len(set(got)), len(got), "duplicates across pages")
        self.assertEqual(sorted(got), sorted((kind, k, vid, lat) for (kind, k, vid), lat
                                             in zip(expected, self._latest_flags(expected))))

        # A key-marker alone starts after that key, all of its versions skipped (the reference
        # calls it "the key to start with"; S3 lists keys after it).
        root, entries = self.raw_listing(bucket, [("key-marker", "b")])
        self.assertEqual([(e["kind"], e["Key"], e["VersionId"]) for e in entries],
                         [x for x in expected if x[1] > "b"])

    @staticmethod
    def _latest_flags(expected):
        seen, out = set(), []
        for _, k, _ in expected:
            out.append(k not in seen)
            seen.add(k)
        return out

    def test_list_versions_prefix_and_delimiter(self):
        fx = self.listing_fixture()
        bucket, expected = fx["bucket"], fx["expected"]
        root, entries = self.raw_listing(bucket, [("prefix", "c/")])
        self.assertEqual(child_text(root, "Prefix"), "c/")
        self.assertEqual([(e["kind"], e["Key"], e["VersionId"]) for e in entries],
                         [x for x in expected if x[1].startswith("c/")])
        root, entries = self.raw_listing(bucket, [("prefix", "c/e")])
        self.assertEqual([(e["kind"], e["Key"], e["VersionId"]) for e in entries],
                         [x for x in expected if x[1] == "c/e"])

        r = self.s3.list_object_versions(Bucket=bucket, Delimiter="/")
        self.assertEqual([p["Prefix"] for p in r.get("CommonPrefixes", [])], ["c/"])
        self.assertEqual(r.get("Delimiter"), "/")
        self.assertEqual([(v["Key"], v["VersionId"]) for v in r.get("Versions", [])],
                         [(k, vid) for kind, k, vid in expected if kind == "Version" and "/" not in k])
        self.assertEqual([(d["Key"], d["VersionId"]) for d in r.get("DeleteMarkers", [])],
                         [(k, vid) for kind, k, vid in expected if kind == "DeleteMarker" and "/" not in k])
        r = self.s3.list_object_versions(Bucket=bucket, Prefix="c/", Delimiter="/")
        self.assertEqual(r.get("CommonPrefixes", []), [])
        self.assertEqual(len(r.get("Versions", [])) + len(r.get("DeleteMarkers", [])),
                         len([x for x in expected if x[1].startswith("c/")]))

        # A common prefix counts as one entry against max-keys: walk a/, b, c/, f one at a time.
        seen, kw = [], []
        for _ in range(30):
            root, entries = self.raw_listing(bucket, [("delimiter", "/"), ("max-keys", "1")] + kw)
            prefixes = [child_text(p, "Prefix") for p in root.findall(S3_NS + "CommonPrefixes")]
            self.assertLessEqual(len(entries) + len(prefixes), 1)
            seen += [(e["Key"], e["VersionId"]) for e in entries] + [("prefix", p) for p in prefixes]
            if child_text(root, "IsTruncated") != "true":
                break
            kw = [("key-marker", child_text(root, "NextKeyMarker"))]
            if child_text(root, "NextVersionIdMarker"):
                kw.append(("version-id-marker", child_text(root, "NextVersionIdMarker")))
        want = [(k, vid) for _, k, vid in expected if "/" not in k]
        want.insert([i for i, (k, _) in enumerate(want) if k > "c/"][0], ("prefix", "c/"))
        self.assertEqual(seen, want)

    def test_list_versions_encoding_type_url(self):
        bucket = self.versioned_bucket()
        odd = "enc dir/sp ace+100%\u00e9&<x>"
        v1 = self.put(bucket, odd, b"1")
        v2 = self.put(bucket, odd, b"2")
        self.put(bucket, "plain", b"p")
        r = self.daemon.request("GET", f"/{bucket}", query=[("versions", ""), ("encoding-type", "url")])
        self.assertEqual(r.status, 200, r)
        root = r.xml()
        self.assertEqual(child_text(root, "EncodingType"), "url")
        entries = entries_of(root)
        raw_keys = [e["Key"] for e in entries]
        for rk in raw_keys:
            self.assertTrue(all(ord(c) < 128 for c in rk), f"non-ASCII in a url-encoded key {rk!r}")
            self.assertNotIn(" ", rk)
            self.assertNotIn("<", rk)
        self.assertEqual([(urllib.parse.unquote_plus(e["Key"]), e["VersionId"]) for e in entries],
                         [(odd, v2), (odd, v1), ("plain", entries[2]["VersionId"])])
        # prefix and delimiter are encoded too, and so are the markers
        r = self.daemon.request("GET", f"/{bucket}", query=[("versions", ""), ("encoding-type", "url"),
                                                            ("prefix", "enc dir/"), ("max-keys", "1")])
        self.assertEqual(r.status, 200, r)
        root = r.xml()
        self.assertEqual(urllib.parse.unquote_plus(child_text(root, "Prefix")), "enc dir/")
        self.assertNotIn(" ", child_text(root, "Prefix"))
        self.assertEqual(child_text(root, "IsTruncated"), "true")
        nk = child_text(root, "NextKeyMarker")
        self.assertNotIn(" ", nk)
        self.assertEqual(urllib.parse.unquote_plus(nk), odd)
        r = self.daemon.request("GET", f"/{bucket}", query=[("versions", ""), ("encoding-type", "url"),
                                                            ("delimiter", " ")])
        root = r.xml()
        self.assertEqual(urllib.parse.unquote_plus(child_text(root, "Delimiter")), " ")
        self.assertEqual([urllib.parse.unquote_plus(child_text(p, "Prefix"))
                          for p in root.findall(S3_NS + "CommonPrefixes")], ["enc "])
        # boto3 decodes all of it, markers included, page by page.
        got, kw = [], {}
        for _ in range(10):
            page = self.s3.list_object_versions(Bucket=bucket, MaxKeys=1, **kw)
            got += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
            if not page["IsTruncated"]:
                break
            kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
        self.assertEqual(got[:2], [(odd, v2), (odd, v1)])
        self.assertEqual([k for k, _ in got], [odd, odd, "plain"])
        # Without encoding-type the key is XML-escaped, not percent-encoded.
        _, entries = self.raw_listing(bucket, [("prefix", "enc")])
        self.assertEqual({e["Key"] for e in entries}, {odd})

    def test_list_versions_aws_cli(self):
        fx = self.listing_fixture()
        bucket, expected = fx["bucket"], fx["expected"]
        latest = self._latest_flags(expected)
        for extra in ((), ("--page-size", "2")):
            with self.subTest(extra=extra):
                out = json.loads(self.daemon.aws("s3api", "list-object-versions", "--bucket", bucket, *extra).stdout)
                got = [("Version", v["Key"], v["VersionId"], v["IsLatest"]) for v in out.get("Versions", [])]
                got += [("DeleteMarker", d["Key"], d["VersionId"], d["IsLatest"]) for d in out.get("DeleteMarkers", [])]
                want = [(kind, k, vid, lat) for (kind, k, vid), lat in zip(expected, latest)]
                self.assertEqual(sorted(got), sorted(want))
                self.assertEqual(len(got), len(want))
                for v in out.get("Versions", []):
                    self.assertEqual(v["ETag"], quoted_md5(fx["bodies"][v["VersionId"]]))
                    self.assertEqual(v["Size"], len(fx["bodies"][v["VersionId"]]))
        out = json.loads(self.daemon.aws("s3api", "list-object-versions", "--bucket", bucket,
                                         "--prefix", "c/e").stdout)
        self.assertEqual([v["VersionId"] for v in out.get("Versions", [])],
                         [vid for kind, k, vid in expected if k == "c/e" and kind == "Version"])
        self.assertEqual([d["VersionId"] for d in out.get("DeleteMarkers", [])],
                         [vid for kind, k, vid in expected if k == "c/e" and kind == "DeleteMarker"])

    # ---------------------------------------------------------------------------------------
    # 7. the null version
    # ---------------------------------------------------------------------------------------

    def test_unversioned_bucket_lists_null_versions(self):
        bucket = self.new_bucket(prefix="ver")
        for k in ("x", "y/z"):
            r = self.s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
            # A bucket that never had versioning answers no x-amz-version-id.
            self.assertNotIn("x-amz-version-id", r["ResponseMetadata"]["HTTPHeaders"])
        self.s3.put_object(Bucket=bucket, Key="x", Body=b"x again")
        r = self.s3.list_object_versions(Bucket=bucket)
        self.assertEqual([(v["Key"], v["VersionId"], v["IsLatest"]) for v in r.get("Versions", [])],
                         [("x", "null", True), ("y/z", "null", True)])
        self.assertEqual(r.get("DeleteMarkers", []), [])
        self.assertEqual(r["Versions"][0]["Size"], len(b"x again"))
        self.assertEqual(self.get_bytes(bucket, "x", VersionId="null"), b"x again")
        # A simple DELETE on an unversioned bucket removes the object, no marker.
        d = self.daemon.request("DELETE", f"/{bucket}/x")
        self.assertEqual(d.status, 204, d)
        self.assertNotIn("x-amz-delete-marker", d.headers)
        self.assertEqual([v["Key"] for v in self.s3.list_object_versions(Bucket=bucket).get("Versions", [])], ["y/z"])

    def test_objects_from_before_versioning_are_the_null_version(self):
        bucket = self.new_bucket(prefix="ver")
        self.s3.put_object(Bucket=bucket, Key="old", Body=b"written before versioning")
        self.s3.put_object(Bucket=bucket, Key="untouched", Body=b"never rewritten")
        self.set_versioning(bucket, "Enabled")
        vid = self.put(bucket, "old", b"written after")
        self.assertTrue(vid)
        self.assertNotEqual(vid, "null")
        self.assertEqual(self.version_ids(bucket, "old"), [("Version", vid, True), ("Version", "null", False)])
        self.assertEqual(self.version_ids(bucket, "untouched"), [("Version", "null", True)])

        got = self.s3.get_object(Bucket=bucket, Key="old", VersionId="null")
        self.assertEqual(got["Body"].read(), b"written before versioning")
        # On a bucket with versioning configured S3 answers the null version with
        # x-amz-version-id: null (observed S3 behaviour; the reference only says "null" names it).
        self.assertEqual(got.get("VersionId"), "null")
        head = self.s3.head_object(Bucket=bucket, Key="old", VersionId="null")
        self.assertEqual(head["ContentLength"], len(b"written before versioning"))
        got = self.s3.get_object(Bucket=bucket, Key="old")
        self.assertEqual(got["Body"].read(), b"written after")
        self.assertEqual(got["VersionId"], vid)
        self.assertEqual(self.get_bytes(bucket, "untouched"), b"never rewritten")

        # Pagination passes through the null version.
        got, kw = [], {}
        for _ in range(10):
            page = self.s3.list_object_versions(Bucket=bucket, MaxKeys=1, **kw)
            got += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
            if not page["IsTruncated"]:
                break
            kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
        self.assertEqual(got, [("old", vid), ("old", "null"), ("untouched", "null")])

        # The null version can be deleted by its id like any other.
        r = self.daemon.request("DELETE", f"/{bucket}/old", query=[("versionId", "null")])
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.version_ids(bucket, "old"), [("Version", vid, True)])
        self.assertClientError("NoSuchVersion", 404, self.s3.get_object, Bucket=bucket, Key="old", VersionId="null")

    # ---------------------------------------------------------------------------------------
    # 8. Suspended
    # ---------------------------------------------------------------------------------------

    def test_suspended_bucket_writes_the_null_version(self):
        bucket = self.versioned_bucket()
        v1 = self.put(bucket, "s", b"enabled-1")
        self.set_versioning(bucket, "Suspended")
        self.put(bucket, "s", b"suspended-1")
        self.assertEqual(self.version_ids(bucket, "s"), [("Version", "null", True), ("Version", v1, False)])
        self.put(bucket, "s", b"suspended-2")
        # The second PUT replaced the null version; the Enabled-era version stays.
        self.assertEqual(self.version_ids(bucket, "s"), [("Version", "null", True), ("Version", v1, False)])
        self.assertEqual(self.get_bytes(bucket, "s"), b"suspended-2")
        self.assertEqual(self.get_bytes(bucket, "s", VersionId="null"), b"suspended-2")
        self.assertEqual(self.get_bytes(bucket, "s", VersionId=v1), b"enabled-1")
        _, entries = self.raw_listing(bucket, [("prefix", "s")])
        self.assertEqual(entries[0]["ETag"], quoted_md5(b"suspended-2"))
        self.assertEqual(entries[0]["Size"], str(len(b"suspended-2")))

        # A simple DELETE: a delete marker with version id null, which replaces the null version.
        r = self.daemon.request("DELETE", f"/{bucket}/s")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.headers.get("x-amz-delete-marker"), "true")
        self.assertEqual(r.headers.get("x-amz-version-id"), "null")
        self.assertEqual(self.version_ids(bucket, "s"), [("DeleteMarker", "null", True), ("Version", v1, False)])
        self.assertClientError("NoSuchKey", 404, self.s3.get_object, Bucket=bucket, Key="s")
        self.assertEqual(self.get_bytes(bucket, "s", VersionId=v1), b"enabled-1")

        # A key with only Enabled-era versions: the marker is null too, and they all stay.
        self.set_versioning(bucket, "Enabled")
        w1 = self.put(bucket, "t", b"t-1")
        w2 = self.put(bucket, "t", b"t-2")
        self.set_versioning(bucket, "Suspended")
        d = self.s3.delete_object(Bucket=bucket, Key="t")
        self.assertTrue(d["DeleteMarker"])
        self.assertEqual(self.version_ids(bucket, "t"),
                         [("DeleteMarker", "null", True), ("Version", w2, False), ("Version", w1, False)])

        # Back to Enabled: new versions get ids again, the null marker becomes noncurrent.
        self.set_versioning(bucket, "Enabled")
        w3 = self.put(bucket, "t", b"t-3")
        self.assertNotIn(w3, ("null", w1, w2, None))
        self.assertEqual(self.version_ids(bucket, "t"),
                         [("Version", w3, True), ("DeleteMarker", "null", False),
                          ("Version", w2, False), ("Version", w1, False)])

    # ---------------------------------------------------------------------------------------
    # 9. CopyObject from a version
    # ---------------------------------------------------------------------------------------

    def test_copy_from_a_version(self):
        bucket = self.versioned_bucket()
        old, new = gen_bytes(90000, seed=91), gen_bytes(1000, seed=92)
        v1 = self.put(bucket, "src", old, ContentType="text/old", Metadata={"gen": "1"})
        v2 = self.put(bucket, "src", new, ContentType="text/new", Metadata={"gen": "2"})

        r = self.s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
        self.assertEqual(r["CopySourceVersionId"], v1)
        self.assertTrue(r["VersionId"])
        self.assertNotIn(r["VersionId"], (v1, v2, "null"))
        self.assertEqual(r["CopyObjectResult"]["ETag"], quoted_md5(old))
        got = self.s3.get_object(Bucket=bucket, Key="dst")
        self.assertEqual(got["Body"].read(), old)
        self.assertEqual(got["VersionId"], r["VersionId"])
        self.assertEqual(got["ContentType"], "text/old")
        self.assertEqual(got["Metadata"], {"gen": "1"})

        # Raw: x-amz-copy-source with ?versionId=, both headers in the answer.
        r = self.daemon.request("PUT", f"/{bucket}/dst2",
                                headers={"x-amz-copy-source": f"/{bucket}/src?versionId={v1}"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-amz-copy-source-version-id"), v1)
        new_vid = r.headers.get("x-amz-version-id")
        self.assertTrue(new_vid, r.header_list)
        self.assertEqual(self.get_bytes(bucket, "dst2", VersionId=new_vid), old)

        # Without a versionId the current version is copied, and S3 still names it.
        r = self.s3.copy_object(Bucket=bucket, Key="dst3", CopySource={"Bucket": bucket, "Key": "src"})
        self.assertEqual(r["CopySourceVersionId"], v2)
        self.assertEqual(self.get_bytes(bucket, "dst3"), new)

        # Copying an old version onto its own key restores it as a new current version.
        r = self.s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
        v3 = r["VersionId"]
        self.assertEqual(self.get_bytes(bucket, "src"), old)
        self.assertEqual(self.version_ids(bucket, "src"),
                         [("Version", v3, True), ("Version", v2, False), ("Version", v1, False)])

        # An unknown source version → 404 NoSuchVersion; a malformed one → 400 InvalidArgument.
        other = self.put(bucket, "other", b"o")
        self.assertClientError("NoSuchVersion", 404, self.s3.copy_object, Bucket=bucket, Key="dst4",
                               CopySource={"Bucket": bucket, "Key": "src", "VersionId": other})
        r = self.daemon.request("PUT", f"/{bucket}/dst4", headers={"x-amz-copy-source": f"/{bucket}/src?versionId=abc"})
        self.assertS3Error(r, "InvalidArgument", 400)
        # A delete marker named by version id cannot be a copy source: S3 answers 400 InvalidRequest
        # ("The source of a copy request may not specifically refer to a delete marker by version
        # id"); from S3's known answers, the reference does not list this case.
        marker = self.s3.delete_object(Bucket=bucket, Key="other")["VersionId"]
        self.assertClientError("InvalidRequest", 400, self.s3.copy_object, Bucket=bucket, Key="dst4",
                               CopySource={"Bucket": bucket, "Key": "other", "VersionId": marker})
        # and with the marker current, a copy without version finds no object
        self.assertClientError("NoSuchKey", 404, self.s3.copy_object, Bucket=bucket, Key="dst4",
                               CopySource={"Bucket": bucket, "Key": "other"})
        self.assertEqual(self.version_ids(bucket, "dst4"), [])

    # ---------------------------------------------------------------------------------------
    # 10. multipart
    # ---------------------------------------------------------------------------------------

    def test_multipart_upload_gets_a_version(self):
        bucket = self.versioned_bucket()
        v1 = self.put(bucket, "mp", b"before the upload")
        parts = [gen_bytes(5 * MiB, seed=101), gen_bytes(12345, seed=102)]
        uid = self.s3_req.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
        done = []
        for n, p in enumerate(parts, start=1):
            r = self.s3_req.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n, Body=p)
            done.append({"PartNumber": n, "ETag": r["ETag"]})
        c = self.s3_req.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid,
                                                  MultipartUpload={"Parts": done})
        vid = c.get("VersionId")
        self.assertTrue(vid, c)
        self.assertNotIn(vid, (v1, "null"))
        self.assertEqual(c["ETag"], multipart_etag(parts))
        got = self.s3.get_object(Bucket=bucket, Key="mp", VersionId=vid)
        self.assertEqual(got["Body"].read(), b"".join(parts))
        self.assertEqual(got["VersionId"], vid)
        self.assertEqual(self.s3.head_object(Bucket=bucket, Key="mp")["VersionId"], vid)
        self.assertEqual(self.get_bytes(bucket, "mp", VersionId=v1), b"before the upload")
        _, entries = self.raw_listing(bucket, [("prefix", "mp")])
        self.assertEqual([(e["VersionId"], e["IsLatest"], e["ETag"], e["Size"]) for e in entries],
                         [(vid, "true", multipart_etag(parts), str(sum(map(len, parts)))),
                          (v1, "false", quoted_md5(b"before the upload"), str(len(b"before the upload")))])
        # a part of that version, by partNumber
        got = self.s3.get_object(Bucket=bucket, Key="mp", VersionId=vid, PartNumber=2)
        self.assertEqual(got["Body"].read(), parts[1])

    def test_upload_part_copy_from_a_version(self):
        bucket = self.versioned_bucket()
        old = gen_bytes(5 * MiB + 10, seed=103)
        v1 = self.put(bucket, "src", old)
        self.put(bucket, "src", b"the current one")
        uid = self.s3_req.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
        r = self.s3_req.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                                         CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
        self.assertEqual(r["CopySourceVersionId"], v1)
        c = self.s3_req.complete_multipart_upload(
            Bucket=bucket, Key="dst", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]})
        self.assertEqual(self.get_bytes(bucket, "dst", VersionId=c["VersionId"]), old)

    # ---------------------------------------------------------------------------------------
    # 11. DeleteObjects
    # ---------------------------------------------------------------------------------------

    def test_delete_objects_with_versions(self):
        bucket = self.versioned_bucket()
        d1a = self.put(bucket, "d1", b"d1-a")
        d1b = self.put(bucket, "d1", b"d1-b")
        d2 = self.put(bucket, "d2", b"d2")
        r = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": "d1", "VersionId": d1a},
            {"Key": "d2"},
        ]})
        self.assertEqual(r.get("Errors", []), [])
        deleted = {d["Key"]: d for d in r["Deleted"]}
        self.assertEqual(set(deleted), {"d1", "d2"})
        self.assertEqual(deleted["d1"]["VersionId"], d1a)
        self.assertFalse(deleted["d1"].get("DeleteMarker", False))
        self.assertTrue(deleted["d2"]["DeleteMarker"])
        marker = deleted["d2"]["DeleteMarkerVersionId"]
        self.assertTrue(marker)
        self.assertNotIn(marker, (d2, "null"))

        self.assertClientError("NoSuchVersion", 404, self.s3.get_object, Bucket=bucket, Key="d1", VersionId=d1a)
        self.assertEqual(self.version_ids(bucket, "d1"), [("Version", d1b, True)])
        self.assertEqual(self.version_ids(bucket, "d2"), [("DeleteMarker", marker, True), ("Version", d2, False)])
        self.assertClientError("NoSuchKey", 404, self.s3.get_object, Bucket=bucket, Key="d2")

        # Removing the marker by its version: reported as a delete marker, d2 is back.
        r = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d2", "VersionId": marker}]})
        self.assertEqual(r.get("Errors", []), [])
        self.assertEqual(len(r["Deleted"]), 1)
        entry = r["Deleted"][0]
        self.assertEqual(entry["Key"], "d2")
        self.assertEqual(entry["VersionId"], marker)
        self.assertTrue(entry["DeleteMarker"])
        self.assertEqual(entry["DeleteMarkerVersionId"], marker)
        self.assertEqual(self.get_bytes(bucket, "d2"), b"d2")

        # A malformed version id is a per-key error, the others are still deleted.
        body = (f'<Delete xmlns="{VERSIONING_NS}"><Object><Key>d1</Key><VersionId>{d1b}</VersionId></Object>'
                f'<Object><Key>d2</Key><VersionId>abc</VersionId></Object></Delete>').encode()
        r = self.daemon.request("POST", f"/{bucket}", query=[("delete", "")], body=body,
                                headers={"Content-MD5": md5_b64(body)})
        self.assertEqual(r.status, 200, r)
        root = r.xml()
        dels = root.findall(S3_NS + "Deleted")
        errs = root.findall(S3_NS + "Error")
        self.assertEqual([(child_text(d, "Key"), child_text(d, "VersionId")) for d in dels], [("d1", d1b)])
        # S3 reports a bad id in DeleteObjects as NoSuchVersion for that key (observed behaviour;
        # the reference lists no per-key code for it).
        self.assertEqual([(child_text(e, "Key"), child_text(e, "VersionId"), child_text(e, "Code")) for e in errs],
                         [("d2", "abc", "NoSuchVersion")])
        self.assertEqual(self.version_ids(bucket, "d1"), [])
        self.assertEqual(self.get_bytes(bucket, "d2"), b"d2")

    # ---------------------------------------------------------------------------------------
    # 12. GetObjectAttributes
    # ---------------------------------------------------------------------------------------

    def test_object_attributes_of_a_version(self):
        bucket = self.versioned_bucket()
        a, b = gen_bytes(3000, seed=121), gen_bytes(17, seed=122)
        va = self.put(bucket, "attr", a)
        vb = self.put(bucket, "attr", b)
        for vid, body in ((va, a), (vb, b)):
            with self.subTest(vid=vid):
                r = self.s3.get_object_attributes(Bucket=bucket, Key="attr", VersionId=vid,
                                                  ObjectAttributes=["ETag", "ObjectSize"])
                self.assertEqual(r["ETag"], md5_hex(body))   # bare, as AWS writes it here
                self.assertEqual(r["ObjectSize"], len(body))
                self.assertEqual(r["VersionId"], vid)
        r = self.s3.get_object_attributes(Bucket=bucket, Key="attr", ObjectAttributes=["ObjectSize"])
        self.assertEqual(r["ObjectSize"], len(b))
        self.assertEqual(r["VersionId"], vb)
        other = self.put(bucket, "other", b"x")
        self.assertClientError("NoSuchVersion", 404, self.s3.get_object_attributes, Bucket=bucket, Key="attr",
                               VersionId=other, ObjectAttributes=["ObjectSize"])
        r = self.daemon.request("GET", f"/{bucket}/attr", query=[("attributes", ""), ("versionId", "abc")],
                                headers={"x-amz-object-attributes": "ObjectSize"})
        self.assertS3Error(r, "InvalidArgument", 400)

    # ---------------------------------------------------------------------------------------
    # 13. DeleteBucket
    # ---------------------------------------------------------------------------------------

    def test_delete_bucket_with_versions_left(self):
        bucket = self.versioned_bucket()
        v1 = self.put(bucket, "gone", b"data")
        marker = self.s3.delete_object(Bucket=bucket, Key="gone")["VersionId"]
        # No current object, but a noncurrent version and a marker.
        self.assertEqual(self.s3.list_objects_v2(Bucket=bucket).get("KeyCount"), 0)
        self.assertClientError("BucketNotEmpty", 409, self.s3.delete_bucket, Bucket=bucket)
        self.s3.delete_object(Bucket=bucket, Key="gone", VersionId=v1)
        # Only a delete marker left: still not empty.
        self.assertEqual(self.version_ids(bucket, "gone"), [("DeleteMarker", marker, True)])
        self.assertClientError("BucketNotEmpty", 409, self.s3.delete_bucket, Bucket=bucket)
        self.s3.delete_object(Bucket=bucket, Key="gone", VersionId=marker)
        r = self.s3.delete_bucket(Bucket=bucket)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertClientError(None, 404, self.s3.head_bucket, Bucket=bucket)

        # The same with only a noncurrent version (its marker removed first).
        bucket = self.versioned_bucket()
        w1 = self.put(bucket, "k", b"1")
        m = self.s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
        self.put(bucket, "k", b"2")
        self.s3.delete_object(Bucket=bucket, Key="k", VersionId=m)
        current = self.s3.head_object(Bucket=bucket, Key="k")["VersionId"]
        self.s3.delete_object(Bucket=bucket, Key="k", VersionId=current)
        self.assertEqual(self.version_ids(bucket, "k"), [("Version", w1, True)])
        self.assertClientError("BucketNotEmpty", 409, self.s3.delete_bucket, Bucket=bucket)
        self.s3.delete_object(Bucket=bucket, Key="k", VersionId=w1)
        self.assertEqual(self.s3.delete_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"], 204)

    # ---------------------------------------------------------------------------------------
    # 14. conditional writes
    # ---------------------------------------------------------------------------------------

    def test_if_none_match_on_a_versioned_bucket(self):
        bucket = self.versioned_bucket()
        v1 = self.put(bucket, "c", b"exists")
        self.assertClientError("PreconditionFailed", 412, self.s3.put_object, Bucket=bucket, Key="c",
                               Body=b"refused", IfNoneMatch="*")
        self.assertEqual(self.version_ids(bucket, "c"), [("Version", v1, True)])
        marker = self.s3.delete_object(Bucket=bucket, Key="c")["VersionId"]
        # If-None-Match applies to the current version only; a delete marker is "no object".
        r = self.s3.put_object(Bucket=bucket, Key="c", Body=b"accepted", IfNoneMatch="*")
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        v2 = r["VersionId"]
        self.assertNotIn(v2, (v1, marker, "null", None))
        self.assertEqual(self.get_bytes(bucket, "c"), b"accepted")
        self.assertEqual(self.version_ids(bucket, "c"),
                         [("Version", v2, True), ("DeleteMarker", marker, False), ("Version", v1, False)])
        # And now it exists again.
        self.assertClientError("PreconditionFailed", 412, self.s3.put_object, Bucket=bucket, Key="c",
                               Body=b"refused again", IfNoneMatch="*")
        # The same on CompleteMultipartUpload.
        uid = self.s3_req.create_multipart_upload(Bucket=bucket, Key="c")["UploadId"]
        part = self.s3_req.upload_part(Bucket=bucket, Key="c", UploadId=uid, PartNumber=1, Body=b"mp")
        self.assertClientError("PreconditionFailed", 412, self.s3_req.complete_multipart_upload, Bucket=bucket,
                               Key="c", UploadId=uid, IfNoneMatch="*",
                               MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        try:  # whether a refused Complete keeps the upload is not what this test is about
            self.s3_req.abort_multipart_upload(Bucket=bucket, Key="c", UploadId=uid)
        except ClientError:
            pass
        self.assertEqual(len(self.version_ids(bucket, "c")), 3)


if __name__ == "__main__":
    unittest.main()
