"""Buckets (create/head/delete/location/ACL/versioning) and listings (v1, v2, versions)."""

import concurrent.futures
import os
import unittest
import urllib.parse

from harness import CoffreTestCase, gen_bytes, sha256_file, write_file, xml_find_all_text


class BucketTest(CoffreTestCase):

    def test_create_list_head_delete(self):
        names = sorted(["alpha-bucket", "beta.bucket", "gamma-123"])
        for n in names:
            r = self.s3.create_bucket(Bucket=n)
            self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
            self.assertEqual(r.get("Location"), f"/{n}")
        lb = self.s3.list_buckets()
        listed = [b["Name"] for b in lb["Buckets"]]
        for n in names:
            self.assertIn(n, listed)
        self.assertEqual(listed, sorted(listed), "ListBuckets is sorted by name")
        self.assertTrue(lb["Owner"].get("ID"), "ListBuckets has an Owner ID")
        for b in lb["Buckets"]:
            self.assertIsNotNone(b.get("CreationDate"))
        for n in names:
            r = self.s3.head_bucket(Bucket=n)
            self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertClientError(None, 404, self.s3.head_bucket, Bucket="no-such-bucket-here")
        for n in names:
            r = self.s3.delete_bucket(Bucket=n)
            self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        listed = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        for n in names:
            self.assertNotIn(n, listed)
            self.assertClientError(None, 404, self.s3.head_bucket, Bucket=n)
        self.assertClientError("NoSuchBucket", 404, self.s3.delete_bucket, Bucket="alpha-bucket")

    def test_invalid_bucket_names(self):
        # sent by hand: botocore checks some names itself before sending
        bad = ["ab", "a" * 64, "UpperCase", "under_score", "-leading-dash", "trailing-dash-",
               "192.168.5.4", "two..dots", ".leading-dot", "trailing-dot.", "xn--punycode",
               "sthree-prefix", "name-s3alias", "name--ol-s3", "bad!char"]
        for name in bad:
            with self.subTest(bucket=name):
                r = self.daemon.request("PUT", f"/{name}")
                self.assertS3Error(r, "InvalidBucketName", 400)
        listed = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        for name in bad:
            self.assertNotIn(name, listed)
        # the limits themselves are fine
        for name in ("abc", "a" * 63, "a.b-c.d1"):
            with self.subTest(bucket=name):
                self.s3.create_bucket(Bucket=name)
                self.s3.delete_bucket(Bucket=name)

    def test_already_owned_by_you(self):
        self.s3.create_bucket(Bucket="mine-twice")
        self.assertClientError("BucketAlreadyOwnedByYou", 409, self.s3.create_bucket,
                               Bucket="mine-twice")
        self.s3.delete_bucket(Bucket="mine-twice")

    def test_already_exists_for_other_tenant(self):
        other = self.daemon.create_tenant("bucket-rival")
        c2 = self.daemon.client_for(other)
        self.s3.create_bucket(Bucket="taken-name")
        self.s3.put_object(Bucket="taken-name", Key="k", Body=b"dev's")
        self.assertClientError("BucketAlreadyExists", 409, c2.create_bucket, Bucket="taken-name")
        self.assertObjectEquals("taken-name", "k", b"dev's")

    def test_delete_non_empty(self):
        self.s3.create_bucket(Bucket="not-empty")
        self.s3.put_object(Bucket="not-empty", Key="x", Body=b"x")
        self.assertClientError("BucketNotEmpty", 409, self.s3.delete_bucket, Bucket="not-empty")
        self.assertObjectEquals("not-empty", "x", b"x")
        self.s3.delete_object(Bucket="not-empty", Key="x")
        self.s3.delete_bucket(Bucket="not-empty")
        self.assertClientError(None, 404, self.s3.head_bucket, Bucket="not-empty")

    def test_location(self):
        self.s3.create_bucket(Bucket="where")
        r = self.s3.get_bucket_location(Bucket="where")
        # us-east-1 buckets answer an empty LocationConstraint
        self.assertIn(r.get("LocationConstraint"), (None, ""))
        self.assertClientError("NoSuchBucket", 404, self.s3.get_bucket_location,
                               Bucket="no-such-bucket-loc")

    def test_acls(self):
        self.s3.create_bucket(Bucket="acl-bucket")
        self.s3.put_object(Bucket="acl-bucket", Key="obj", Body=b"x")
        owner = self.s3.list_buckets()["Owner"]["ID"]
        for label, r in (("bucket", self.s3.get_bucket_acl(Bucket="acl-bucket")),
                         ("object", self.s3.get_object_acl(Bucket="acl-bucket", Key="obj"))):
            with self.subTest(acl=label):
                self.assertEqual(r["Owner"]["ID"], owner)
                self.assertEqual(len(r["Grants"]), 1, r["Grants"])
                g = r["Grants"][0]
                self.assertEqual(g["Permission"], "FULL_CONTROL")
                self.assertEqual(g["Grantee"]["Type"], "CanonicalUser")
                self.assertEqual(g["Grantee"]["ID"], owner)
        self.assertClientError("NoSuchKey", 404, self.s3.get_object_acl, Bucket="acl-bucket",
                               Key="missing")
        self.assertClientError("NotImplemented", 501, self.s3.put_bucket_acl,
                               Bucket="acl-bucket", ACL="public-read")
        self.assertClientError("NotImplemented", 501, self.s3.put_object_acl,
                               Bucket="acl-bucket", Key="obj", ACL="public-read")

    def test_put_object_public_acl_not_silently_accepted(self):
        # "Unsupported operations answer NotImplemented, never a silent success": a public-read
        # canned ACL on PutObject is refused (S3 with ACLs disabled answers 400
        # AccessControlListNotSupported; Coffre's contract says 501 NotImplemented)
        self.s3.create_bucket(Bucket="acl-put")
        self.assertClientErrorIn([("NotImplemented", 501), ("AccessControlListNotSupported", 400)],
                                 self.s3.put_object, Bucket="acl-put", Key="public", Body=b"x",
                                 ACL="public-read")
        self.assertKeyAbsent("acl-put", "public")

    def test_versioning_and_list_versions(self):
        self.s3.create_bucket(Bucket="versions")
        r = self.s3.get_bucket_versioning(Bucket="versions")
        self.assertNotIn("Status", r)
        self.assertNotIn("MFADelete", r)
        keys = ["a", "b/c", "b/d"]
        for k in keys:
            self.s3.put_object(Bucket="versions", Key=k, Body=k.encode())
        self.s3.put_object(Bucket="versions", Key="a", Body=b"overwritten")
        r = self.s3.list_object_versions(Bucket="versions")
        vs = r.get("Versions", [])
        self.assertEqual([v["Key"] for v in vs], keys, "each object once")
        for v in vs:
            self.assertEqual(v["VersionId"], "null")
            self.assertTrue(v["IsLatest"])
        self.assertEqual(vs[0]["Size"], len(b"overwritten"))
        self.assertEqual(r.get("DeleteMarkers", []), [])
        r = self.s3.list_object_versions(Bucket="versions", Prefix="b/", Delimiter="/")
        self.assertEqual([v["Key"] for v in r.get("Versions", [])], ["b/c", "b/d"])
        r = self.s3.list_object_versions(Bucket="versions", Delimiter="/")
        self.assertEqual([p["Prefix"] for p in r.get("CommonPrefixes", [])], ["b/"])
        self.assertEqual([v["Key"] for v in r.get("Versions", [])], ["a"])


class ListingTest(CoffreTestCase):
    N = 1500

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "listing"
        cls.s3.create_bucket(Bucket=cls.bucket)
        keys = []
        for i in range(cls.N):
            if i % 10 == 0:
                keys.append(f"root-{i:05d}")
            else:
                keys.append(f"dir{i % 3}/sub{i % 5}/key-{i:05d}")
        cls.keys = sorted(keys)
        client = cls.daemon.client(checksum="when_required", max_pool_connections=16)

        def put(k):
            client.put_object(Bucket=cls.bucket, Key=k, Body=k.encode())
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(put, cls.keys))

    def test_list_v2_paginator(self):
        for page_size in (None, 250, 1000, 333):
            with self.subTest(page_size=page_size):
                pag = self.s3.get_paginator("list_objects_v2")
                cfg = {"PageSize": page_size} if page_size else {}
                got, pages = [], 0
                for page in pag.paginate(Bucket=self.bucket, PaginationConfig=cfg):
                    pages += 1
                    contents = page.get("Contents", [])
                    self.assertEqual(page["KeyCount"], len(contents))
                    self.assertLessEqual(len(contents), page_size or 1000)
                    got.extend(o["Key"] for o in contents)
                    for o in contents[:3]:
                        self.assertEqual(o["Size"], len(o["Key"]))
                        self.assertTrue(o["ETag"].startswith('"'))
                self.assertEqual(got, self.keys)
                per = page_size or 1000
                self.assertEqual(pages, -(-self.N // per))

    def test_list_v1_marker(self):
        got, marker, pages = [], None, 0
        while True:
            kw = {"Marker": marker} if marker else {}
            r = self.s3.list_objects(Bucket=self.bucket, MaxKeys=400, **kw)
            pages += 1
            contents = r.get("Contents", [])
            got.extend(o["Key"] for o in contents)
            if not r["IsTruncated"]:
                break
            self.assertEqual(len(contents), 400)
            marker = r.get("NextMarker") or contents[-1]["Key"]
        self.assertEqual(got, self.keys)
        self.assertEqual(pages, 4)
        # the paginator too (default 1000 per page)
        got = [o["Key"] for p in self.s3.get_paginator("list_objects").paginate(Bucket=self.bucket)
               for o in p.get("Contents", [])]
        self.assertEqual(got, self.keys)

    def test_delimiter_common_prefixes(self):
        r = self.s3.list_objects_v2(Bucket=self.bucket, Delimiter="/")
        self.assertEqual([p["Prefix"] for p in r["CommonPrefixes"]], ["dir0/", "dir1/", "dir2/"])
        self.assertEqual([o["Key"] for o in r["Contents"]], [k for k in self.keys if "/" not in k])
        self.assertEqual(r["KeyCount"], 3 + len([k for k in self.keys if "/" not in k]))
        r = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="dir1/", Delimiter="/")
        self.assertEqual([p["Prefix"] for p in r["CommonPrefixes"]],
                         [f"dir1/sub{j}/" for j in range(5)])
        self.assertNotIn("Contents", r)
        r = self.s3.list_objects(Bucket=self.bucket, Prefix="dir2/sub3/", Delimiter="/")
        want = [k for k in self.keys if k.startswith("dir2/sub3/")]
        self.assertEqual([o["Key"] for o in r["Contents"]], want)
        self.assertNotIn("CommonPrefixes", r)
        # delimiter other than '/'
        r = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="dir0/sub", Delimiter="/key")
        self.assertEqual([p["Prefix"] for p in r["CommonPrefixes"]],
                         sorted({k[:len("dir0/subN/key")] for k in self.keys
                                 if k.startswith("dir0/")}))

    def test_delimiter_pagination_counts_prefixes(self):
        # CommonPrefixes count toward max-keys; paging through gives each prefix once
        seen_prefixes, seen_keys, token, pages = [], [], None, 0
        while True:
            kw = {"ContinuationToken": token} if token else {}
            r = self.s3.list_objects_v2(Bucket=self.bucket, Delimiter="/", MaxKeys=2, **kw)
            pages += 1
            n = len(r.get("Contents", [])) + len(r.get("CommonPrefixes", []))
            self.assertLessEqual(n, 2)
            self.assertEqual(r["KeyCount"], n)
            seen_prefixes += [p["Prefix"] for p in r.get("CommonPrefixes", [])]
            seen_keys += [o["Key"] for o in r.get("Contents", [])]
            if not r["IsTruncated"]:
                break
            token = r["NextContinuationToken"]
            self.assertLess(pages, 200)
        self.assertEqual(seen_prefixes, ["dir0/", "dir1/", "dir2/"])
        self.assertEqual(seen_keys, [k for k in self.keys if "/" not in k])
        # v1 with delimiter: NextMarker is given when truncated
        r = self.s3.list_objects(Bucket=self.bucket, Delimiter="/", MaxKeys=2)
        self.assertTrue(r["IsTruncated"])
        self.assertEqual([p["Prefix"] for p in r["CommonPrefixes"]], ["dir0/", "dir1/"])
        self.assertEqual(r["NextMarker"], "dir1/")
        r = self.s3.list_objects(Bucket=self.bucket, Delimiter="/", MaxKeys=2, Marker="dir1/")
        self.assertEqual([p["Prefix"] for p in r["CommonPrefixes"]], ["dir2/"])

    def test_start_after_and_max_keys(self):
        r = self.s3.list_objects_v2(Bucket=self.bucket, StartAfter=self.keys[700], MaxKeys=5)
        self.assertEqual([o["Key"] for o in r["Contents"]], self.keys[701:706])
        self.assertTrue(r["IsTruncated"])
        self.assertEqual(r["MaxKeys"], 5)
        self.assertEqual(r["StartAfter"], self.keys[700])
        r = self.s3.list_objects_v2(Bucket=self.bucket, StartAfter="dir1/sub2/key-00000x")
        self.assertEqual(r["Contents"][0]["Key"],
                         [k for k in self.keys if k > "dir1/sub2/key-00000x"][0])
        r = self.s3.list_objects_v2(Bucket=self.bucket, StartAfter="zzzz")
        self.assertEqual(r["KeyCount"], 0)
        self.assertFalse(r["IsTruncated"])
        r = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="dir2/sub4/", MaxKeys=1000)
        self.assertEqual([o["Key"] for o in r["Contents"]],
                         [k for k in self.keys if k.startswith("dir2/sub4/")])
        self.assertFalse(r["IsTruncated"])
        r = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="nothing-here/")
        self.assertEqual(r["KeyCount"], 0)
        self.assertNotIn("Contents", r)

    def test_fetch_owner(self):
        owner = self.s3.list_buckets()["Owner"]["ID"]
        r = self.s3.list_objects_v2(Bucket=self.bucket, MaxKeys=2, FetchOwner=True)
        for o in r["Contents"]:
            self.assertEqual(o["Owner"]["ID"], owner)
        r = self.s3.list_objects_v2(Bucket=self.bucket, MaxKeys=2)
        for o in r["Contents"]:
            self.assertNotIn("Owner", o)

    def test_list_missing_bucket(self):
        self.assertClientError("NoSuchBucket", 404, self.s3.list_objects_v2, Bucket="no-such-list")
        self.assertClientError("NoSuchBucket", 404, self.s3.list_objects, Bucket="no-such-list")


class OddKeysTest(CoffreTestCase):
    ODD = ["a b", "a+b", "100%", "100%25", "caf\u00e9/cr\u00e8me", "\u65e5\u672c/\u6587\u5b57",
           "emoji-\U0001F600", "\uff21fullwidth", "tab\there", "q?x=1&y=2", "hash#frag",
           "semi;colon", "trailing/", "//double//slash", "quote\"s'", "<lt>&amp;", "~tilde",
           "Z-upper", "a", "plain"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = "oddkeys"
        cls.s3.create_bucket(Bucket=cls.bucket)
        for k in cls.ODD:
            cls.s3.put_object(Bucket=cls.bucket, Key=k, Body=k.encode("utf-8"))

    def test_round_trip_odd_keys(self):
        for k in self.ODD:
            with self.subTest(key=k):
                self.assertEqual(self.get_bytes(self.bucket, k), k.encode("utf-8"))

    def test_utf8_byte_order(self):
        # boto3 asks for encoding-type=url and decodes it
        got = [o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket)["Contents"]]
        self.assertEqual(got, sorted(self.ODD, key=lambda k: k.encode("utf-8")))
        got1 = [o["Key"] for o in self.s3.list_objects(Bucket=self.bucket)["Contents"]]
        self.assertEqual(got1, got)

    def test_encoding_type_url_raw(self):
        r = self.daemon.request("GET", f"/{self.bucket}",
                                query=[("list-type", "2"), ("encoding-type", "url")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(xml_find_all_text(r.body, "EncodingType"), ["url"])
        raw_keys = xml_find_all_text(r.body, "Key")
        for rk in raw_keys:
            self.assertTrue(all(ord(c) < 128 for c in rk), f"non-ASCII in url-encoded key {rk!r}")
            self.assertNotIn(" ", rk)
        decoded = [urllib.parse.unquote_plus(k) for k in raw_keys]
        self.assertEqual(decoded, sorted(self.ODD, key=lambda k: k.encode("utf-8")))
        # ('a+b' and '100%' only decode back right if '+' and '%' were encoded)
        # prefix and delimiter are encoded too
        r = self.daemon.request("GET", f"/{self.bucket}",
                                query=[("list-type", "2"), ("encoding-type", "url"),
                                       ("prefix", "caf\u00e9/"), ("delimiter", "/")])
        self.assertEqual(r.status, 200, r)
        prefixes = xml_find_all_text(r.body, "Prefix")
        self.assertEqual(len(prefixes), 1, r.body)
        self.assertTrue(all(ord(c) < 128 for c in prefixes[0]), prefixes)
        self.assertEqual(urllib.parse.unquote_plus(prefixes[0]), "caf\u00e9/")
        self.assertEqual([urllib.parse.unquote_plus(k) for k in xml_find_all_text(r.body, "Key")],
                         ["caf\u00e9/cr\u00e8me"])

    def test_without_encoding_type_xml_escaped(self):
        r = self.daemon.request("GET", f"/{self.bucket}", query=[("list-type", "2")])
        self.assertEqual(r.status, 200, r)
        keys = xml_find_all_text(r.body, "Key")
        self.assertIn("<lt>&amp;", keys)
        self.assertIn("caf\u00e9/cr\u00e8me", keys)

    def test_delimiter_with_unicode(self):
        r = self.s3.list_objects_v2(Bucket=self.bucket, Delimiter="/")
        prefixes = [p["Prefix"] for p in r["CommonPrefixes"]]
        self.assertEqual(prefixes, sorted(["/", "caf\u00e9/", "trailing/", "\u65e5\u672c/"],
                                          key=lambda k: k.encode()))

    def test_unicode_prefix(self):
        r = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="\u65e5")
        self.assertEqual([o["Key"] for o in r["Contents"]], ["\u65e5\u672c/\u6587\u5b57"])


class AwsCliBucketTest(CoffreTestCase):

    def test_sync_up_down_and_idempotent(self):
        src = os.path.join(self.daemon.tmp, "sync-src")
        files = {"a.txt": 10, "dir/b.bin": 70000, "dir/sub/c.bin": 200000, "empty": 0,
                 "espace dans le nom.pdf": 1234, "caf\u00e9.txt": 5}
        digests = {}
        for i, (rel, size) in enumerate(files.items()):
            p = os.path.join(src, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            digests[rel] = write_file(p, size, seed=500 + i)
        self.s3.create_bucket(Bucket="sync-bucket")
        self.daemon.aws("s3", "sync", src, "s3://sync-bucket/prefix")
        got = sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket="sync-bucket")["Contents"])
        self.assertEqual(got, sorted(f"prefix/{r}" for r in files))
        # a second sync has nothing to do
        p = self.daemon.aws("s3", "sync", src, "s3://sync-bucket/prefix")
        self.assertEqual(p.stdout.strip(), b"", p.stdout)
        # and down again
        dst = os.path.join(self.daemon.tmp, "sync-dst")
        self.daemon.aws("s3", "sync", "s3://sync-bucket/prefix", dst)
        for rel in files:
            self.assertEqual(sha256_file(os.path.join(dst, rel)), digests[rel], rel)
        # a changed local file is uploaded again, a removed one deleted with --delete
        with open(os.path.join(src, "a.txt"), "wb") as f:
            f.write(b"changed content, longer than before")
        os.remove(os.path.join(src, "empty"))
        self.daemon.aws("s3", "sync", src, "s3://sync-bucket/prefix", "--delete")
        self.assertObjectEquals("sync-bucket", "prefix/a.txt", b"changed content, longer than before")
        self.assertKeyAbsent("sync-bucket", "prefix/empty")
        # aws s3 ls
        p = self.daemon.aws("s3", "ls", "s3://sync-bucket/prefix/dir/")
        out = p.stdout.decode()
        self.assertIn("PRE sub/", out)
        self.assertIn("b.bin", out)

    def test_rb_force(self):
        self.s3.create_bucket(Bucket="to-remove")
        for i in range(30):
            self.s3.put_object(Bucket="to-remove", Key=f"k/{i}", Body=gen_bytes(100, seed=i))
        self.daemon.aws("s3", "rb", "s3://to-remove", "--force")
        self.assertClientError(None, 404, self.s3.head_bucket, Bucket="to-remove")
        listed = [b["Name"] for b in self.s3.list_buckets()["Buckets"]]
        self.assertNotIn("to-remove", listed)

    def test_mb_ls_rm(self):
        self.daemon.aws("s3", "mb", "s3://cli-made")
        p = self.daemon.aws("s3", "ls")
        self.assertIn(b"cli-made", p.stdout)
        self.daemon.aws("s3api", "put-object", "--bucket", "cli-made", "--key", "x/y",
                        "--body", os.path.abspath(__file__))
        p = self.daemon.aws("s3", "ls", "--recursive", "s3://cli-made")
        self.assertIn(b"x/y", p.stdout)
        self.daemon.aws("s3", "rm", "s3://cli-made/x/y")
        self.assertKeyAbsent("cli-made", "x/y")
        p = self.daemon.aws("s3", "mb", "s3://cli-made", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"BucketAlreadyOwnedByYou", p.stderr)


if __name__ == "__main__":
    unittest.main()
