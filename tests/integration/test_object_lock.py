"""S3 Object Lock as the AWS S3 API reference describes it: Object Lock on CreateBucket
(x-amz-bucket-object-lock-enabled) and on an existing bucket whose versioning is Enabled,
Get/PutObjectLockConfiguration with a default retention in days or years, versioning that can no
longer be suspended, the x-amz-object-lock-* headers of PutObject, CopyObject and
CreateMultipartUpload and their answers on HEAD and GET, Get/PutObjectRetention and
Get/PutObjectLegalHold with and without versionId, DeleteObject and DeleteObjects refused on a
protected version (x-amz-bypass-governance-retention opening governance mode only), expiry of a
retention period, `coffre tenant shred` refusing to destroy protected data, and the lock state after
a restart; with boto3, signed raw requests and the coffre CLI.

Where the expected answer is not spelled out by AWS's reference (and so rests on how S3 is known to
behave, or on Coffre's own documented choice), the assertion carries a comment saying so."""

import datetime as _dt
import json
import re
import time
import unittest

from harness import S3_NS, CoffreTestCase, Daemon, gen_bytes, md5_b64, unique_bucket, child_text

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
UTC = _dt.timezone.utc
DAY = _dt.timedelta(days=1)

MODE = "x-amz-object-lock-mode"
UNTIL = "x-amz-object-lock-retain-until-date"
HOLD = "x-amz-object-lock-legal-hold"
LOCK_HEADERS = (MODE, UNTIL, HOLD)
BYPASS = {"x-amz-bypass-governance-retention": "true"}

# Far-future retain-until dates (whole seconds), NEARER < FAR < FARTHER.
NEARER = _dt.datetime(2098, 5, 6, 7, 8, 9, tzinfo=UTC)
FAR = _dt.datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
FARTHER = _dt.datetime(2100, 6, 7, 8, 9, 10, tzinfo=UTC)
PAST = _dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# The daemon polls the keystore for changes made by other processes this often (keystore.h).
REVALIDATE_SECONDS = 1.0


def iso(t: _dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(t: _dt.datetime) -> str:
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def now() -> _dt.datetime:
    return _dt.datetime.now(UTC)


def seconds_ahead(n: int) -> _dt.datetime:
    """A whole second at least `n` seconds from now."""
    return (now() + _dt.timedelta(seconds=n + 1)).replace(microsecond=0)


def config_xml(inner: str) -> bytes:
    return f'<ObjectLockConfiguration xmlns="{NS}">{inner}</ObjectLockConfiguration>'.encode()


def rule_xml(retention_inner: str) -> str:
    return f"<Rule><DefaultRetention>{retention_inner}</DefaultRetention></Rule>"


def retention_xml(mode: str | None = None, until=None) -> bytes:
    inner = ""
    if mode is not None:
        inner += f"<Mode>{mode}</Mode>"
    if until is not None:
        inner += f"<RetainUntilDate>{until if isinstance(until, str) else iso(until)}</RetainUntilDate>"
    return f'<Retention xmlns="{NS}">{inner}</Retention>'.encode()


def legal_hold_xml(status: str) -> bytes:
    return f'<LegalHold xmlns="{NS}"><Status>{status}</Status></LegalHold>'.encode()


def versioning_xml(status: str) -> bytes:
    return (f'<VersioningConfiguration xmlns="{NS}"><Status>{status}</Status>'
            f'</VersioningConfiguration>').encode()


def lock_headers_of(resp) -> dict:
    """The x-amz-object-lock-* headers of a RawResponse."""
    return {h: resp.headers[h] for h in LOCK_HEADERS if h in resp.headers}


class LockHelpers:
    """Helpers shared by the test classes (mixed into CoffreTestCase subclasses)."""

    def lock_bucket(self, mode=None, days=None, years=None, client=None) -> str:
        """A new bucket made with Object Lock (and, with `mode`, a default retention)."""
        bucket = unique_bucket("lock")
        r = (client or self.s3).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        if mode is not None:
            self.set_default(bucket, mode, days=days, years=years)
        return bucket

    def set_default(self, bucket, mode=None, days=None, years=None):
        """PutObjectLockConfiguration: Enabled, with a DefaultRetention when `mode` is given."""
        config = {"ObjectLockEnabled": "Enabled"}
        if mode is not None:
            retention = {"Mode": mode}
            if days is not None:
                retention["Days"] = days
            if years is not None:
                retention["Years"] = years
            config["Rule"] = {"DefaultRetention": retention}
        r = self.s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=config)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)

    def lock_config(self, bucket) -> dict:
        return self.s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]

    def versioning_status(self, bucket):
        return self.s3.get_bucket_versioning(Bucket=bucket).get("Status")

    def put(self, bucket, key, body, **kw) -> str:
        r = self.s3.put_object(Bucket=bucket, Key=key, Body=body, **kw)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        vid = r.get("VersionId")
        self.assertTrue(vid, r)
        self.assertNotEqual(vid, "null")
        return vid

    def put_locked(self, bucket, key, body, mode, until, **kw) -> str:
        return self.put(bucket, key, body, ObjectLockMode=mode, ObjectLockRetainUntilDate=until, **kw)

    def retention(self, bucket, key, vid=None):
        kw = {"VersionId": vid} if vid else {}
        r = self.s3.get_object_retention(Bucket=bucket, Key=key, **kw)
        return r["Retention"]["Mode"], r["Retention"]["RetainUntilDate"]

    def legal_hold(self, bucket, key, vid=None) -> str:
        kw = {"VersionId": vid} if vid else {}
        return self.s3.get_object_legal_hold(Bucket=bucket, Key=key, **kw)["LegalHold"]["Status"]

    def assertNoRetention(self, bucket, key, vid=None):
        kw = {"VersionId": vid} if vid else {}
        self.assertClientError("NoSuchObjectLockConfiguration", 404, self.s3.get_object_retention,
                               Bucket=bucket, Key=key, **kw)

    def assertNoLegalHold(self, bucket, key, vid=None):
        kw = {"VersionId": vid} if vid else {}
        self.assertClientError("NoSuchObjectLockConfiguration", 404, self.s3.get_object_legal_hold,
                               Bucket=bucket, Key=key, **kw)

    def raw_lock_headers(self, bucket, key, vid=None, method="HEAD") -> dict:
        r = self.daemon.request(method, f"/{bucket}/{key}", query=[("versionId", vid)] if vid else [])
        self.assertEqual(r.status, 200, r)
        return lock_headers_of(r)

    def put_config_raw(self, bucket, body: bytes):
        return self.daemon.request("PUT", f"/{bucket}", query=[("object-lock", "")], body=body,
                                   headers={"Content-MD5": md5_b64(body)})

    def put_retention_raw(self, bucket, key, body: bytes, vid=None, bypass=False):
        headers = {"Content-MD5": md5_b64(body), **(BYPASS if bypass else {})}
        query = [("retention", "")] + ([("versionId", vid)] if vid else [])
        return self.daemon.request("PUT", f"/{bucket}/{key}", query=query, body=body, headers=headers)

    def delete_version(self, bucket, key, vid, bypass=False):
        return self.daemon.request("DELETE", f"/{bucket}/{key}", query=[("versionId", vid)],
                                   headers=dict(BYPASS) if bypass else None)

    def version_ids(self, bucket, key) -> list:
        """Every version and delete marker of exactly this key (ids, any order)."""
        r = self.s3.list_object_versions(Bucket=bucket, Prefix=key)
        return sorted(e["VersionId"] for e in r.get("Versions", []) + r.get("DeleteMarkers", [])
                      if e["Key"] == key)

    def assertReadable(self, bucket, key, body, vid=None, client=None):
        kw = {"VersionId": vid} if vid else {}
        got = (client or self.s3).get_object(Bucket=bucket, Key=key, **kw)["Body"].read()
        self.assertEqual(got, body, f"{bucket}/{key} {vid or ''}")

    def assertAround(self, got: _dt.datetime, low: _dt.datetime, high: _dt.datetime, slack: float = 60):
        """low - slack <= got <= high + slack."""
        s = _dt.timedelta(seconds=slack)
        self.assertTrue(low - s <= got <= high + s, f"{got} not within [{low}, {high}] (+/- {slack}s)")


class ObjectLockTest(LockHelpers, CoffreTestCase):

    # ---------------------------------------------------------------------------------------
    # 1. the bucket: CreateBucket, GetObjectLockConfiguration, versioning
    # ---------------------------------------------------------------------------------------

    def test_create_bucket_with_object_lock(self):
        bucket = self.lock_bucket()
        self.assertEqual(self.versioning_status(bucket), "Enabled")
        self.assertEqual(self.lock_config(bucket), {"ObjectLockEnabled": "Enabled"})
        raw = self.daemon.request("GET", f"/{bucket}", query=[("object-lock", "")])
        self.assertEqual(raw.status, 200, raw)
        root = raw.xml()
        self.assertEqual(root.tag, S3_NS + "ObjectLockConfiguration", raw.body[:300])
        self.assertEqual(child_text(root, "ObjectLockEnabled"), "Enabled")
        self.assertIsNone(root.find(S3_NS + "Rule"), raw.body)
        self.assertIsNone(root.find("Rule"), raw.body)

        # The header itself, on a raw CreateBucket.
        raw_bucket = unique_bucket("lock")
        r = self.daemon.request("PUT", f"/{raw_bucket}", headers={"x-amz-bucket-object-lock-enabled": "true"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.versioning_status(raw_bucket), "Enabled")
        self.assertEqual(self.lock_config(raw_bucket), {"ObjectLockEnabled": "Enabled"})

        # Versioning cannot be suspended any more; it stays Enabled.
        for b in (bucket, raw_bucket):
            with self.subTest(bucket=b):
                self.assertClientError("InvalidBucketState", 409, self.s3.put_bucket_versioning, Bucket=b,
                                       VersioningConfiguration={"Status": "Suspended"})
                self.assertEqual(self.versioning_status(b), "Enabled")
                body = versioning_xml("Suspended")
                r = self.daemon.request("PUT", f"/{b}", query=[("versioning", "")], body=body,
                                        headers={"Content-MD5": md5_b64(body)})
                self.assertS3Error(r, "InvalidBucketState", 409)
                self.assertEqual(self.versioning_status(b), "Enabled")
                self.assertEqual(self.lock_config(b), {"ObjectLockEnabled": "Enabled"})

        # Objects keep getting version ids; with no default retention they carry no lock.
        v1 = self.put(bucket, "k", b"one")
        v2 = self.put(bucket, "k", b"two")
        self.assertNotEqual(v1, v2)
        self.assertEqual(self.raw_lock_headers(bucket, "k"), {})
        self.assertNoRetention(bucket, "k")

    def test_object_lock_configuration_not_found(self):
        plain = self.new_bucket(prefix="lock")
        enabled = self.new_bucket(prefix="lock")
        self.s3.put_bucket_versioning(Bucket=enabled, VersioningConfiguration={"Status": "Enabled"})
        suspended = self.new_bucket(prefix="lock")
        self.s3.put_bucket_versioning(Bucket=suspended, VersioningConfiguration={"Status": "Enabled"})
        self.s3.put_bucket_versioning(Bucket=suspended, VersioningConfiguration={"Status": "Suspended"})
        for b in (plain, enabled, suspended):
            with self.subTest(bucket=b):
                self.assertClientError("ObjectLockConfigurationNotFoundError", 404,
                                       self.s3.get_object_lock_configuration, Bucket=b)
                r = self.daemon.request("GET", f"/{b}", query=[("object-lock", "")])
                self.assertS3Error(r, "ObjectLockConfigurationNotFoundError", 404)

    def test_enable_object_lock_on_an_existing_bucket(self):
        enable = {"ObjectLockEnabled": "Enabled"}

        # Versioning never enabled: refused, nothing changes.
        never = self.new_bucket(prefix="lock")
        self.assertClientError("InvalidBucketState", 409, self.s3.put_object_lock_configuration, Bucket=never,
                               ObjectLockConfiguration=enable)
        self.assertClientError("ObjectLockConfigurationNotFoundError", 404,
                               self.s3.get_object_lock_configuration, Bucket=never)
        self.assertIsNone(self.versioning_status(never))
        r = self.daemon.request("PUT", f"/{never}/k", headers={HOLD: "ON"}, body=b"x")
        self.assertS3Error(r, "InvalidRequest", 400)   # still a bucket without Object Lock

        # Versioning Suspended: refused, nothing changes.
        suspended = self.new_bucket(prefix="lock")
        self.s3.put_bucket_versioning(Bucket=suspended, VersioningConfiguration={"Status": "Enabled"})
        self.s3.put_bucket_versioning(Bucket=suspended, VersioningConfiguration={"Status": "Suspended"})
        body = config_xml("<ObjectLockEnabled>Enabled</ObjectLockEnabled>")
        r = self.put_config_raw(suspended, body)
        self.assertS3Error(r, "InvalidBucketState", 409)
        self.assertClientError("InvalidBucketState", 409, self.s3.put_object_lock_configuration, Bucket=suspended,
                               ObjectLockConfiguration={**enable, "Rule": {"DefaultRetention": {
                                   "Mode": "GOVERNANCE", "Days": 1}}})
        self.assertClientError("ObjectLockConfigurationNotFoundError", 404,
                               self.s3.get_object_lock_configuration, Bucket=suspended)
        self.assertEqual(self.versioning_status(suspended), "Suspended")

        # Versioning Enabled: Object Lock becomes enabled, with the rule given.
        enabled = self.new_bucket(prefix="lock")
        self.s3.put_bucket_versioning(Bucket=enabled, VersioningConfiguration={"Status": "Enabled"})
        self.put(enabled, "before", b"written before the lock")
        self.set_default(enabled, "GOVERNANCE", days=2)
        self.assertEqual(self.lock_config(enabled), {"ObjectLockEnabled": "Enabled", "Rule": {
            "DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}})
        self.assertEqual(self.versioning_status(enabled), "Enabled")
        self.assertClientError("InvalidBucketState", 409, self.s3.put_bucket_versioning, Bucket=enabled,
                               VersioningConfiguration={"Status": "Suspended"})
        self.assertEqual(self.versioning_status(enabled), "Enabled")
        t0 = now()
        vid = self.put(enabled, "after", b"written after")
        t1 = now()
        mode, until = self.retention(enabled, "after", vid)
        self.assertEqual(mode, "GOVERNANCE")
        self.assertAround(until, t0 + 2 * DAY, t1 + 2 * DAY)
        self.assertNoRetention(enabled, "before")       # written before: no default applied
        vid = self.put_locked(enabled, "explicit", b"e", "COMPLIANCE", FAR)
        self.assertEqual(self.retention(enabled, "explicit", vid), ("COMPLIANCE", FAR))

        # The once-suspended bucket, Enabled again, can now take it (raw, no rule).
        self.s3.put_bucket_versioning(Bucket=suspended, VersioningConfiguration={"Status": "Enabled"})
        r = self.put_config_raw(suspended, body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.lock_config(suspended), enable)
        self.assertClientError("InvalidBucketState", 409, self.s3.put_bucket_versioning, Bucket=suspended,
                               VersioningConfiguration={"Status": "Suspended"})

    def test_lock_configuration_validation(self):
        bucket = self.lock_bucket("GOVERNANCE", days=3)
        before = self.lock_config(bucket)
        self.assertEqual(before, {"ObjectLockEnabled": "Enabled", "Rule": {
            "DefaultRetention": {"Mode": "GOVERNANCE", "Days": 3}}})
        enabled = "<ObjectLockEnabled>Enabled</ObjectLockEnabled>"
        malformed = [
            b"not xml",
            config_xml(enabled)[:-10],
            config_xml(""),
            config_xml(rule_xml("<Mode>GOVERNANCE</Mode><Days>1</Days>")),            # ObjectLockEnabled missing
            config_xml("<ObjectLockEnabled>Disabled</ObjectLockEnabled>"),
            config_xml("<ObjectLockEnabled>enabled</ObjectLockEnabled>"),
            config_xml("<ObjectLockEnabled></ObjectLockEnabled>"),
            config_xml(enabled + rule_xml("<Mode>FOO</Mode><Days>1</Days>")),
            config_xml(enabled + rule_xml("<Mode></Mode><Days>1</Days>")),
            config_xml(enabled + rule_xml("<Days>1</Days>")),                          # no Mode
            config_xml(enabled + rule_xml("<Mode>COMPLIANCE</Mode><Days>1</Days><Years>1</Years>")),
            config_xml(enabled + rule_xml("<Mode>COMPLIANCE</Mode>")),                 # neither
            config_xml(enabled + rule_xml("")),
        ]
        invalid = [
            config_xml(enabled + rule_xml("<Mode>GOVERNANCE</Mode><Days>0</Days>")),
            config_xml(enabled + rule_xml("<Mode>GOVERNANCE</Mode><Days>-1</Days>")),
            config_xml(enabled + rule_xml("<Mode>COMPLIANCE</Mode><Years>0</Years>")),
            config_xml(enabled + rule_xml("<Mode>COMPLIANCE</Mode><Years>-3</Years>")),
        ]
        for code, bodies in (("MalformedXML", malformed), ("InvalidArgument", invalid)):
            for body in bodies:
                with self.subTest(body=body):
                    r = self.put_config_raw(bucket, body)
                    self.assertS3Error(r, code, 400)
                    self.assertEqual(self.lock_config(bucket), before)

        # Well-formed raw configurations: years, then no Rule (the default retention goes).
        r = self.put_config_raw(bucket, config_xml(enabled + rule_xml("<Mode>COMPLIANCE</Mode><Years>2</Years>")))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.lock_config(bucket), {"ObjectLockEnabled": "Enabled", "Rule": {
            "DefaultRetention": {"Mode": "COMPLIANCE", "Years": 2}}})
        r = self.put_config_raw(bucket, config_xml(enabled))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.lock_config(bucket), {"ObjectLockEnabled": "Enabled"})
        raw = self.daemon.request("GET", f"/{bucket}", query=[("object-lock", "")])
        self.assertIsNone(raw.xml().find(S3_NS + "Rule"), raw.body)
        # and through boto3
        self.set_default(bucket, "GOVERNANCE", days=7)
        self.assertEqual(self.lock_config(bucket)["Rule"], {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 7}})
        self.set_default(bucket)
        self.assertEqual(self.lock_config(bucket), {"ObjectLockEnabled": "Enabled"})
        # Still lock-enabled after the rule went.
        self.assertEqual(self.versioning_status(bucket), "Enabled")
        self.assertClientError("InvalidBucketState", 409, self.s3.put_bucket_versioning, Bucket=bucket,
                               VersioningConfiguration={"Status": "Suspended"})

    # ---------------------------------------------------------------------------------------
    # 2. default retention
    # ---------------------------------------------------------------------------------------

    def test_default_retention(self):
        bucket = self.lock_bucket("GOVERNANCE", days=1)
        t0 = now()
        v1 = self.put(bucket, "d1", b"under the default")
        t1 = now()
        mode, d1_until = self.retention(bucket, "d1", v1)
        self.assertEqual(mode, "GOVERNANCE")
        self.assertAround(d1_until, t0 + DAY, t1 + DAY)
        head = self.s3.head_object(Bucket=bucket, Key="d1")
        self.assertEqual(head["ObjectLockMode"], "GOVERNANCE")
        self.assertEqual(head["ObjectLockRetainUntilDate"], d1_until)
        self.assertNotIn("ObjectLockLegalHoldStatus", head)
        headers = self.raw_lock_headers(bucket, "d1")
        self.assertEqual(set(headers), {MODE, UNTIL}, headers)
        self.assertEqual(headers[MODE], "GOVERNANCE")
        self.assertRegex(headers[UNTIL], ISO_MS)
        self.assertEqual(headers[UNTIL], iso_ms(d1_until))
        self.assertNoLegalHold(bucket, "d1")

        # Explicit headers win over the default.
        v2 = self.put_locked(bucket, "d2", b"explicit", "COMPLIANCE", FAR)
        self.assertEqual(self.retention(bucket, "d2", v2), ("COMPLIANCE", FAR))

        # Years: N is N*365 days (AWS's reference gives no length for a year; this is Coffre's
        # rule). Four years from now always span a 29 February, so 365*4 != a calendar's 1461.
        self.set_default(bucket, "GOVERNANCE", years=4)
        t0 = now()
        v3 = self.put(bucket, "d3", b"four years")
        t1 = now()
        mode, d3_until = self.retention(bucket, "d3", v3)
        self.assertEqual(mode, "GOVERNANCE")
        self.assertAround(d3_until, t0 + 4 * 365 * DAY, t1 + 4 * 365 * DAY)

        # A changed default applies to new versions only.
        self.set_default(bucket, "COMPLIANCE", days=2)
        t0 = now()
        v4 = self.put(bucket, "d1", b"a newer version of d1")
        t1 = now()
        mode, d4_until = self.retention(bucket, "d1", v4)
        self.assertEqual(mode, "COMPLIANCE")
        self.assertAround(d4_until, t0 + 2 * DAY, t1 + 2 * DAY)
        self.assertEqual(self.retention(bucket, "d1", v1), ("GOVERNANCE", d1_until))
        self.assertEqual(self.retention(bucket, "d3", v3), ("GOVERNANCE", d3_until))
        self.assertEqual(self.retention(bucket, "d2", v2), ("COMPLIANCE", FAR))

        # No Rule: new versions get no retention; the existing ones keep theirs.
        self.set_default(bucket)
        v5 = self.put(bucket, "d5", b"no default any more")
        self.assertNoRetention(bucket, "d5", v5)
        self.assertEqual(self.raw_lock_headers(bucket, "d5"), {})
        self.assertEqual(self.retention(bucket, "d1", v1), ("GOVERNANCE", d1_until))
        self.assertEqual(self.retention(bucket, "d1", v4), ("COMPLIANCE", d4_until))
        self.assertEqual(self.retention(bucket, "d3", v3), ("GOVERNANCE", d3_until))

    # ---------------------------------------------------------------------------------------
    # 3. lock headers on PutObject, HEAD and GET
    # ---------------------------------------------------------------------------------------

    def test_put_object_lock_headers(self):
        bucket = self.lock_bucket()
        body = gen_bytes(70000, seed=1)

        gov = self.put_locked(bucket, "gov", body, "GOVERNANCE", FAR)
        head = self.s3.head_object(Bucket=bucket, Key="gov")
        self.assertEqual(head["ObjectLockMode"], "GOVERNANCE")
        self.assertEqual(head["ObjectLockRetainUntilDate"], FAR)
        self.assertNotIn("ObjectLockLegalHoldStatus", head)
        for method in ("HEAD", "GET"):
            with self.subTest(method=method):
                r = self.daemon.request(method, f"/{bucket}/gov")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(lock_headers_of(r), {MODE: "GOVERNANCE", UNTIL: "2099-01-02T03:04:05.000Z"})
                if method == "GET":
                    self.assertEqual(r.body, body)
        self.assertEqual(self.retention(bucket, "gov"), ("GOVERNANCE", FAR))
        self.assertNoLegalHold(bucket, "gov")

        both = self.put(bucket, "both", b"both", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=FARTHER,
                        ObjectLockLegalHoldStatus="ON")
        got = self.s3.get_object(Bucket=bucket, Key="both")
        self.assertEqual(got["Body"].read(), b"both")
        self.assertEqual(got["ObjectLockMode"], "COMPLIANCE")
        self.assertEqual(got["ObjectLockRetainUntilDate"], FARTHER)
        self.assertEqual(got["ObjectLockLegalHoldStatus"], "ON")
        for method in ("HEAD", "GET"):
            self.assertEqual(self.raw_lock_headers(bucket, "both", both, method=method),
                             {MODE: "COMPLIANCE", UNTIL: "2100-06-07T08:09:10.000Z", HOLD: "ON"})
        self.assertEqual(self.retention(bucket, "both", both), ("COMPLIANCE", FARTHER))
        self.assertEqual(self.legal_hold(bucket, "both", both), "ON")

        # A legal hold alone.
        self.put(bucket, "hold", b"hold", ObjectLockLegalHoldStatus="ON")
        head = self.s3.head_object(Bucket=bucket, Key="hold")
        self.assertEqual(head["ObjectLockLegalHoldStatus"], "ON")
        self.assertNotIn("ObjectLockMode", head)
        self.assertNotIn("ObjectLockRetainUntilDate", head)
        self.assertEqual(self.raw_lock_headers(bucket, "hold"), {HOLD: "ON"})
        self.assertNoRetention(bucket, "hold")
        # A legal hold set to OFF on the PUT is set, so it is shown (S3's answer for a hold that was
        # given; the reference does not spell out this case).
        self.put(bucket, "off", b"off", ObjectLockLegalHoldStatus="OFF")
        self.assertEqual(self.legal_hold(bucket, "off"), "OFF")
        self.assertEqual(self.raw_lock_headers(bucket, "off"), {HOLD: "OFF"})

        # Nothing asked, nothing shown.
        self.put(bucket, "none", b"none")
        self.assertEqual(self.raw_lock_headers(bucket, "none"), {})
        self.assertEqual(self.raw_lock_headers(bucket, "none", method="GET"), {})
        head = self.s3.head_object(Bucket=bucket, Key="none")
        for field in ("ObjectLockMode", "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus"):
            self.assertNotIn(field, head)

        # A raw PUT, milliseconds in the date, no Content-MD5 (Coffre does not require it here).
        r = self.daemon.request("PUT", f"/{bucket}/raw", body=b"raw body",
                                headers={MODE: "COMPLIANCE", UNTIL: "2099-01-02T03:04:05.000Z", HOLD: "ON"})
        self.assertEqual(r.status, 200, r)
        raw_vid = r.headers.get("x-amz-version-id")
        self.assertTrue(raw_vid, r.header_list)
        self.assertEqual(self.raw_lock_headers(bucket, "raw", raw_vid),
                         {MODE: "COMPLIANCE", UNTIL: "2099-01-02T03:04:05.000Z", HOLD: "ON"})
        self.assertReadable(bucket, "raw", b"raw body", raw_vid)

        # A new version on top of a locked one: each version answers with its own lock.
        newer = self.put(bucket, "gov", b"newer, unlocked")
        self.assertEqual(self.raw_lock_headers(bucket, "gov"), {})
        self.assertEqual(self.raw_lock_headers(bucket, "gov", newer), {})
        self.assertEqual(self.raw_lock_headers(bucket, "gov", gov),
                         {MODE: "GOVERNANCE", UNTIL: "2099-01-02T03:04:05.000Z"})
        head = self.s3.head_object(Bucket=bucket, Key="gov", VersionId=gov)
        self.assertEqual((head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]), ("GOVERNANCE", FAR))
        self.assertReadable(bucket, "gov", body, gov)

    def test_put_object_lock_header_errors(self):
        future = iso(FAR)
        plain = self.new_bucket(prefix="lock")
        versioned = self.new_bucket(prefix="lock")
        self.s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
        no_lock_cases = [
            {MODE: "GOVERNANCE", UNTIL: future},
            {MODE: "COMPLIANCE", UNTIL: future, HOLD: "ON"},
            {HOLD: "ON"},
            {HOLD: "OFF"},
        ]
        for bucket in (plain, versioned):
            for headers in no_lock_cases:
                with self.subTest(bucket=bucket, headers=headers):
                    r = self.daemon.request("PUT", f"/{bucket}/k", headers=headers, body=b"refused")
                    self.assertS3Error(r, "InvalidRequest", 400)
                    self.assertKeyAbsent(bucket, "k")
                    self.assertEqual(self.version_ids(bucket, "k"), [])
        self.assertClientError("InvalidRequest", 400, self.s3.put_object, Bucket=plain, Key="k", Body=b"x",
                               ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=FAR)
        self.assertKeyAbsent(plain, "k")

        bucket = self.lock_bucket()
        existing = self.put(bucket, "exists", b"already here")
        invalid_cases = [
            {MODE: "GOVERNANCE"},
            {UNTIL: future},
            {MODE: "FOO", UNTIL: future},
            {MODE: "GOVERNANCE", UNTIL: "not-a-date"},
            {MODE: "GOVERNANCE", UNTIL: "2099-13-45T00:00:00Z"},
            {MODE: "COMPLIANCE", UNTIL: iso(PAST)},
            {MODE: "GOVERNANCE", UNTIL: iso(now() - _dt.timedelta(seconds=120))},
            {HOLD: "MAYBE"},
            {MODE: "GOVERNANCE", UNTIL: future, HOLD: "YES"},
        ]
        for headers in invalid_cases:
            for key in ("new-key", "exists"):
                with self.subTest(headers=headers, key=key):
                    r = self.daemon.request("PUT", f"/{bucket}/{key}", headers=headers, body=b"refused")
                    self.assertS3Error(r, "InvalidArgument", 400)
        self.assertKeyAbsent(bucket, "new-key")
        self.assertEqual(self.version_ids(bucket, "new-key"), [])
        self.assertEqual(self.version_ids(bucket, "exists"), [existing])
        self.assertReadable(bucket, "exists", b"already here")
        self.assertClientError("InvalidArgument", 400, self.s3.put_object, Bucket=bucket, Key="new-key", Body=b"x",
                               ObjectLockMode="GOVERNANCE")
        self.assertClientError("InvalidArgument", 400, self.s3.put_object, Bucket=bucket, Key="new-key", Body=b"x",
                               ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=PAST)
        self.assertEqual(self.version_ids(bucket, "new-key"), [])

    # ---------------------------------------------------------------------------------------
    # 4. CopyObject and multipart uploads
    # ---------------------------------------------------------------------------------------

    def test_copy_object_lock_headers(self):
        bucket = self.lock_bucket()
        data = gen_bytes(50000, seed=2)
        src = self.put(bucket, "src", data, ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=FARTHER,
                       ObjectLockLegalHoldStatus="ON")
        source = {"Bucket": bucket, "Key": "src", "VersionId": src}

        # Without headers: the copy inherits neither the retention nor the legal hold. (AWS's
        # reference says the headers apply to the copy; that nothing comes over from the source
        # version is not spelled out by it.)
        r = self.s3.copy_object(Bucket=bucket, Key="plain-copy", CopySource=source)
        vid = r["VersionId"]
        self.assertReadable(bucket, "plain-copy", data, vid)
        self.assertNoRetention(bucket, "plain-copy", vid)
        self.assertNoLegalHold(bucket, "plain-copy", vid)
        self.assertEqual(self.raw_lock_headers(bucket, "plain-copy"), {})
        # without a version id in the source either
        r = self.s3.copy_object(Bucket=bucket, Key="plain-copy2", CopySource={"Bucket": bucket, "Key": "src"})
        self.assertNoRetention(bucket, "plain-copy2", r["VersionId"])
        self.assertNoLegalHold(bucket, "plain-copy2", r["VersionId"])

        # With headers: those.
        r = self.s3.copy_object(Bucket=bucket, Key="gov-copy", CopySource=source, ObjectLockMode="GOVERNANCE",
                                ObjectLockRetainUntilDate=FAR, ObjectLockLegalHoldStatus="OFF")
        vid = r["VersionId"]
        self.assertEqual(self.retention(bucket, "gov-copy", vid), ("GOVERNANCE", FAR))
        self.assertEqual(self.legal_hold(bucket, "gov-copy", vid), "OFF")
        self.assertEqual(self.raw_lock_headers(bucket, "gov-copy"),
                         {MODE: "GOVERNANCE", UNTIL: "2099-01-02T03:04:05.000Z", HOLD: "OFF"})
        # raw, onto the source's own key (a new version; the source version keeps its lock)
        r = self.daemon.request("PUT", f"/{bucket}/src", headers={
            "x-amz-copy-source": f"/{bucket}/src?versionId={src}", HOLD: "ON"})
        self.assertEqual(r.status, 200, r)
        self_copy = r.headers.get("x-amz-version-id")
        self.assertNotIn(self_copy, (None, src))
        self.assertEqual(self.raw_lock_headers(bucket, "src", self_copy), {HOLD: "ON"})
        self.assertNoRetention(bucket, "src", self_copy)
        self.assertEqual(self.retention(bucket, "src", src), ("COMPLIANCE", FARTHER))
        self.assertEqual(self.legal_hold(bucket, "src", src), "ON")

        # Into a bucket with a default retention: the default, not the source's.
        dflt = self.lock_bucket("GOVERNANCE", days=1)
        t0 = now()
        r = self.s3.copy_object(Bucket=dflt, Key="from-src", CopySource=source)
        t1 = now()
        mode, until = self.retention(dflt, "from-src", r["VersionId"])
        self.assertEqual(mode, "GOVERNANCE")
        self.assertAround(until, t0 + DAY, t1 + DAY)
        self.assertNoLegalHold(dflt, "from-src", r["VersionId"])
        self.assertReadable(dflt, "from-src", data)
        r = self.s3.copy_object(Bucket=dflt, Key="explicit", CopySource=source, ObjectLockMode="COMPLIANCE",
                                ObjectLockRetainUntilDate=FAR)
        self.assertEqual(self.retention(dflt, "explicit", r["VersionId"]), ("COMPLIANCE", FAR))

        # The same checks as on PutObject (spec: the same headers).
        plain = self.new_bucket(prefix="lock")
        self.assertClientError("InvalidRequest", 400, self.s3.copy_object, Bucket=plain, Key="x", CopySource=source,
                               ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=FAR)
        self.assertKeyAbsent(plain, "x")
        self.assertClientError("InvalidArgument", 400, self.s3.copy_object, Bucket=bucket, Key="bad-copy",
                               CopySource=source, ObjectLockMode="GOVERNANCE")
        self.assertClientError("InvalidArgument", 400, self.s3.copy_object, Bucket=bucket, Key="bad-copy",
                               CopySource=source, ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=PAST)
        self.assertEqual(self.version_ids(bucket, "bad-copy"), [])
        # A copy from a bucket without lock into a lock bucket is an ordinary copy.
        self.s3.put_object(Bucket=plain, Key="p", Body=b"plain source")
        r = self.s3.copy_object(Bucket=bucket, Key="from-plain", CopySource={"Bucket": plain, "Key": "p"},
                                ObjectLockLegalHoldStatus="ON")
        self.assertEqual(self.legal_hold(bucket, "from-plain", r["VersionId"]), "ON")
        self.assertReadable(bucket, "from-plain", b"plain source")

    def multipart(self, bucket, key, parts, **kw) -> str:
        uid = self.s3_req.create_multipart_upload(Bucket=bucket, Key=key, **kw)["UploadId"]
        done = []
        for n, p in enumerate(parts, start=1):
            r = self.s3_req.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=p)
            done.append({"PartNumber": n, "ETag": r["ETag"]})
        c = self.s3_req.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                                  MultipartUpload={"Parts": done})
        self.assertTrue(c.get("VersionId"), c)
        return c["VersionId"]

    def test_multipart_upload_lock_headers(self):
        bucket = self.lock_bucket()
        parts = [gen_bytes(5 * 1024 * 1024, seed=3), gen_bytes(1234, seed=4)]
        vid = self.multipart(bucket, "mp", parts, ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=FAR,
                             ObjectLockLegalHoldStatus="ON")
        self.assertReadable(bucket, "mp", b"".join(parts), vid)
        self.assertEqual(self.retention(bucket, "mp", vid), ("GOVERNANCE", FAR))
        self.assertEqual(self.legal_hold(bucket, "mp", vid), "ON")
        self.assertEqual(self.raw_lock_headers(bucket, "mp"),
                         {MODE: "GOVERNANCE", UNTIL: "2099-01-02T03:04:05.000Z", HOLD: "ON"})
        # Protected like any other version.
        r = self.delete_version(bucket, "mp", vid)
        self.assertS3Error(r, "AccessDenied", 403)

        # Without headers: no lock, or the bucket's default.
        vid = self.multipart(bucket, "mp-plain", [b"small"])
        self.assertNoRetention(bucket, "mp-plain", vid)
        self.assertNoLegalHold(bucket, "mp-plain", vid)
        dflt = self.lock_bucket("COMPLIANCE", days=1)
        t0 = now()
        vid = self.multipart(dflt, "mp-default", [b"small"])
        t1 = now()
        mode, until = self.retention(dflt, "mp-default", vid)
        self.assertEqual(mode, "COMPLIANCE")
        self.assertAround(until, t0 + DAY, t1 + DAY)

        # The same checks as on PutObject (spec: the same headers), at CreateMultipartUpload.
        plain = self.new_bucket(prefix="lock")
        self.assertClientError("InvalidRequest", 400, self.s3_req.create_multipart_upload, Bucket=plain, Key="x",
                               ObjectLockLegalHoldStatus="ON")
        self.assertClientError("InvalidArgument", 400, self.s3_req.create_multipart_upload, Bucket=bucket,
                               Key="bad", ObjectLockMode="COMPLIANCE")
        self.assertClientError("InvalidArgument", 400, self.s3_req.create_multipart_upload, Bucket=bucket,
                               Key="bad", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=PAST)
        self.assertEqual(self.s3_req.list_multipart_uploads(Bucket=plain).get("Uploads", []), [])
        self.assertEqual([u["Key"] for u in self.s3_req.list_multipart_uploads(Bucket=bucket).get("Uploads", [])],
                         [])

    # ---------------------------------------------------------------------------------------
    # 5. Get/PutObjectRetention
    # ---------------------------------------------------------------------------------------

    def test_object_retention(self):
        bucket = self.lock_bucket()
        v1 = self.put(bucket, "r", b"one")
        v2 = self.put(bucket, "r", b"two")
        self.assertNoRetention(bucket, "r")
        self.assertNoRetention(bucket, "r", v1)

        # Without VersionId: the current version.
        r = self.s3.put_object_retention(Bucket=bucket, Key="r", Retention={"Mode": "GOVERNANCE",
                                                                           "RetainUntilDate": NEARER})
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertEqual(self.retention(bucket, "r"), ("GOVERNANCE", NEARER))
        self.assertEqual(self.retention(bucket, "r", v2), ("GOVERNANCE", NEARER))
        self.assertNoRetention(bucket, "r", v1)
        self.assertEqual(self.raw_lock_headers(bucket, "r"), {MODE: "GOVERNANCE", UNTIL: "2098-05-06T07:08:09.000Z"})

        # With VersionId: that version.
        self.s3.put_object_retention(Bucket=bucket, Key="r", VersionId=v1,
                                     Retention={"Mode": "COMPLIANCE", "RetainUntilDate": FAR})
        self.assertEqual(self.retention(bucket, "r", v1), ("COMPLIANCE", FAR))
        self.assertEqual(self.retention(bucket, "r", v2), ("GOVERNANCE", NEARER))
        raw = self.daemon.request("GET", f"/{bucket}/r", query=[("retention", ""), ("versionId", v1)])
        self.assertEqual(raw.status, 200, raw)
        root = raw.xml()
        self.assertEqual(root.tag, S3_NS + "Retention", raw.body[:300])
        self.assertEqual(child_text(root, "Mode"), "COMPLIANCE")
        until = _dt.datetime.fromisoformat(child_text(root, "RetainUntilDate").replace("Z", "+00:00"))
        self.assertEqual(until, FAR)

        # GOVERNANCE (v2): extending in the same mode needs no bypass.
        self.s3.put_object_retention(Bucket=bucket, Key="r", VersionId=v2,
                                     Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR})
        self.assertEqual(self.retention(bucket, "r", v2), ("GOVERNANCE", FAR))
        # Shortening, removing or changing the mode needs the bypass header. (AWS's reference says
        # governance settings are overridden or removed only with the bypass; that moving to
        # COMPLIANCE counts as overriding them is S3's behaviour rather than a sentence of it.)
        refused = [
            ("shorten", retention_xml("GOVERNANCE", NEARER)),
            ("to compliance", retention_xml("COMPLIANCE", FAR)),
            ("to compliance, longer", retention_xml("COMPLIANCE", FARTHER)),
            ("remove", retention_xml()),
        ]
        for what, body in refused:
            with self.subTest(governance=what):
                r = self.put_retention_raw(bucket, "r", body, vid=v2)
                self.assertS3Error(r, "AccessDenied", 403)
                self.assertEqual(self.retention(bucket, "r", v2), ("GOVERNANCE", FAR))
        self.assertClientError("AccessDenied", 403, self.s3.put_object_retention, Bucket=bucket, Key="r",
                               VersionId=v2, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": NEARER})
        r = self.s3.put_object_retention(Bucket=bucket, Key="r", VersionId=v2, BypassGovernanceRetention=True,
                                         Retention={"Mode": "GOVERNANCE", "RetainUntilDate": NEARER})
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertEqual(self.retention(bucket, "r", v2), ("GOVERNANCE", NEARER))
        r = self.put_retention_raw(bucket, "r", retention_xml(), vid=v2, bypass=True)
        self.assertEqual(r.status, 200, r)
        self.assertNoRetention(bucket, "r", v2)
        self.assertEqual(self.raw_lock_headers(bucket, "r", v2), {})
        # set again (nothing to override), then to COMPLIANCE with the bypass
        self.s3.put_object_retention(Bucket=bucket, Key="r", VersionId=v2,
                                     Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR})
        r = self.put_retention_raw(bucket, "r", retention_xml("COMPLIANCE", FAR), vid=v2, bypass=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.retention(bucket, "r", v2), ("COMPLIANCE", FAR))

        # COMPLIANCE (v1): extending is allowed; shortening, a mode change or removal never.
        self.s3.put_object_retention(Bucket=bucket, Key="r", VersionId=v1,
                                     Retention={"Mode": "COMPLIANCE", "RetainUntilDate": FARTHER})
        self.assertEqual(self.retention(bucket, "r", v1), ("COMPLIANCE", FARTHER))
        refused = [
            ("shorten", retention_xml("COMPLIANCE", FAR)),
            ("to governance", retention_xml("GOVERNANCE", FARTHER)),
            ("to governance, longer", retention_xml("GOVERNANCE", _dt.datetime(2101, 1, 1, tzinfo=UTC))),
            ("remove", retention_xml()),
        ]
        for bypass in (False, True):
            for what, body in refused:
                with self.subTest(compliance=what, bypass=bypass):
                    r = self.put_retention_raw(bucket, "r", body, vid=v1, bypass=bypass)
                    self.assertS3Error(r, "AccessDenied", 403)
                    self.assertEqual(self.retention(bucket, "r", v1), ("COMPLIANCE", FARTHER))
        self.assertClientError("AccessDenied", 403, self.s3.put_object_retention, Bucket=bucket, Key="r",
                               VersionId=v1, BypassGovernanceRetention=True,
                               Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FARTHER})

        # A date in the past: on a version without retention, and on a governance one with the
        # bypass (where shortening as such would be allowed).
        v3 = self.put(bucket, "r", b"three")
        self.assertClientError("InvalidArgument", 400, self.s3.put_object_retention, Bucket=bucket, Key="r",
                               VersionId=v3, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": PAST})
        self.assertNoRetention(bucket, "r", v3)
        r = self.put_retention_raw(bucket, "r", retention_xml("COMPLIANCE", PAST))
        self.assertS3Error(r, "InvalidArgument", 400)
        self.assertNoRetention(bucket, "r", v3)
        self.s3.put_object_retention(Bucket=bucket, Key="r", VersionId=v3,
                                     Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR})
        self.assertClientError("InvalidArgument", 400, self.s3.put_object_retention, Bucket=bucket, Key="r",
                               VersionId=v3, BypassGovernanceRetention=True,
                               Retention={"Mode": "GOVERNANCE", "RetainUntilDate": PAST})
        self.assertEqual(self.retention(bucket, "r", v3), ("GOVERNANCE", FAR))

        # Unknown version (another key's), missing key.
        other = self.put(bucket, "other", b"o")
        self.assertClientError("NoSuchVersion", 404, self.s3.get_object_retention, Bucket=bucket, Key="r",
                               VersionId=other)
        self.assertClientError("NoSuchVersion", 404, self.s3.put_object_retention, Bucket=bucket, Key="r",
                               VersionId=other, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR})
        self.assertNoRetention(bucket, "other", other)
        self.assertClientError("NoSuchKey", 404, self.s3.get_object_retention, Bucket=bucket, Key="missing")
        self.assertClientError("NoSuchKey", 404, self.s3.put_object_retention, Bucket=bucket, Key="missing",
                               Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR})
        self.assertEqual(self.version_ids(bucket, "missing"), [])

        # A bucket without Object Lock.
        plain = self.new_bucket(prefix="lock")
        self.s3.put_object(Bucket=plain, Key="k", Body=b"k")
        self.assertClientError("InvalidRequest", 400, self.s3.get_object_retention, Bucket=plain, Key="k")
        self.assertClientError("InvalidRequest", 400, self.s3.put_object_retention, Bucket=plain, Key="k",
                               Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FAR})
        self.assertEqual(self.raw_lock_headers(plain, "k"), {})

    # ---------------------------------------------------------------------------------------
    # 6. Get/PutObjectLegalHold
    # ---------------------------------------------------------------------------------------

    def test_object_legal_hold(self):
        bucket = self.lock_bucket()
        v1 = self.put(bucket, "h", b"one")
        v2 = self.put(bucket, "h", b"two")
        # Never set: 404 NoSuchObjectLockConfiguration (S3's answer; the reference lists no error).
        self.assertNoLegalHold(bucket, "h")
        self.assertNoLegalHold(bucket, "h", v1)

        r = self.s3.put_object_legal_hold(Bucket=bucket, Key="h", LegalHold={"Status": "ON"})
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertEqual(self.legal_hold(bucket, "h"), "ON")
        self.assertEqual(self.legal_hold(bucket, "h", v2), "ON")
        self.assertNoLegalHold(bucket, "h", v1)
        self.assertEqual(self.raw_lock_headers(bucket, "h", v2), {HOLD: "ON"})
        self.assertEqual(self.raw_lock_headers(bucket, "h", v1), {})
        self.assertEqual(self.s3.head_object(Bucket=bucket, Key="h")["ObjectLockLegalHoldStatus"], "ON")

        self.s3.put_object_legal_hold(Bucket=bucket, Key="h", VersionId=v1, LegalHold={"Status": "ON"})
        self.assertEqual(self.legal_hold(bucket, "h", v1), "ON")
        self.s3.put_object_legal_hold(Bucket=bucket, Key="h", VersionId=v2, LegalHold={"Status": "OFF"})
        self.assertEqual(self.legal_hold(bucket, "h", v2), "OFF")
        self.assertEqual(self.legal_hold(bucket, "h", v1), "ON")
        raw = self.daemon.request("GET", f"/{bucket}/h", query=[("legal-hold", ""), ("versionId", v2)])
        self.assertEqual(raw.status, 200, raw)
        self.assertEqual(raw.xml().tag, S3_NS + "LegalHold", raw.body[:300])
        self.assertEqual(child_text(raw.xml(), "Status"), "OFF")
        # A legal hold is no retention.
        self.assertNoRetention(bucket, "h", v1)

        # Raw PUTs: a good one, then statuses that are neither ON nor OFF.
        body = legal_hold_xml("OFF")
        r = self.daemon.request("PUT", f"/{bucket}/h", query=[("legal-hold", ""), ("versionId", v1)], body=body,
                                headers={"Content-MD5": md5_b64(body)})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.legal_hold(bucket, "h", v1), "OFF")
        self.s3.put_object_legal_hold(Bucket=bucket, Key="h", VersionId=v1, LegalHold={"Status": "ON"})
        for status in ("MAYBE", "on", ""):
            with self.subTest(status=status):
                body = legal_hold_xml(status)
                r = self.daemon.request("PUT", f"/{bucket}/h", query=[("legal-hold", ""), ("versionId", v1)],
                                        body=body, headers={"Content-MD5": md5_b64(body)})
                self.assertS3Error(r, "MalformedXML", 400)
                self.assertEqual(self.legal_hold(bucket, "h", v1), "ON")

        # A bucket without Object Lock.
        plain = self.new_bucket(prefix="lock")
        self.s3.put_object(Bucket=plain, Key="k", Body=b"k")
        self.assertClientError("InvalidRequest", 400, self.s3.get_object_legal_hold, Bucket=plain, Key="k")
        self.assertClientError("InvalidRequest", 400, self.s3.put_object_legal_hold, Bucket=plain, Key="k",
                               LegalHold={"Status": "ON"})
        self.assertEqual(self.raw_lock_headers(plain, "k"), {})

    # ---------------------------------------------------------------------------------------
    # 7. deletes
    # ---------------------------------------------------------------------------------------

    def test_delete_protected_versions(self):
        bucket = self.lock_bucket()
        bodies = {"gov": b"governed", "comp": b"complied", "hold": b"held", "govhold": b"governed and held"}
        vids = {
            "gov": self.put_locked(bucket, "gov", bodies["gov"], "GOVERNANCE", FAR),
            "comp": self.put_locked(bucket, "comp", bodies["comp"], "COMPLIANCE", FAR),
            "hold": self.put(bucket, "hold", bodies["hold"], ObjectLockLegalHoldStatus="ON"),
            "govhold": self.put_locked(bucket, "govhold", bodies["govhold"], "GOVERNANCE", FAR,
                                       ObjectLockLegalHoldStatus="ON"),
        }

        # A simple DELETE adds a delete marker, locked current version or not.
        markers = {}
        for key in vids:
            with self.subTest(simple_delete=key):
                r = self.daemon.request("DELETE", f"/{bucket}/{key}")
                self.assertEqual(r.status, 204, r)
                self.assertEqual(r.headers.get("x-amz-delete-marker"), "true")
                markers[key] = r.headers.get("x-amz-version-id")
                self.assertNotIn(markers[key], (None, "null", vids[key]))
                self.assertClientError("NoSuchKey", 404, self.s3.get_object, Bucket=bucket, Key=key)
                self.assertReadable(bucket, key, bodies[key], vids[key])

        # Deleting a protected version: 403 AccessDenied, and it stays.
        for key, vid in vids.items():
            with self.subTest(delete_version=key):
                r = self.delete_version(bucket, key, vid)
                self.assertS3Error(r, "AccessDenied", 403)
                self.assertReadable(bucket, key, bodies[key], vid)
        self.assertClientError("AccessDenied", 403, self.s3.delete_object, Bucket=bucket, Key="gov",
                               VersionId=vids["gov"])

        # With the bypass header: governance alone gives way.
        for key in ("comp", "hold", "govhold"):
            with self.subTest(bypass=key):
                r = self.delete_version(bucket, key, vids[key], bypass=True)
                self.assertS3Error(r, "AccessDenied", 403)
                self.assertReadable(bucket, key, bodies[key], vids[key])
        self.assertClientError("AccessDenied", 403, self.s3.delete_object, Bucket=bucket, Key="comp",
                               VersionId=vids["comp"], BypassGovernanceRetention=True)
        r = self.delete_version(bucket, "gov", vids["gov"], bypass=True)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.headers.get("x-amz-version-id"), vids["gov"])
        self.assertClientError("NoSuchVersion", 404, self.s3.get_object, Bucket=bucket, Key="gov",
                               VersionId=vids["gov"])
        self.assertEqual(self.version_ids(bucket, "gov"), [markers["gov"]])

        # A legal hold lifted (and no retention): the version deletes.
        self.s3.put_object_legal_hold(Bucket=bucket, Key="hold", VersionId=vids["hold"], LegalHold={"Status": "OFF"})
        r = self.delete_version(bucket, "hold", vids["hold"])
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.version_ids(bucket, "hold"), [markers["hold"]])
        # Hold lifted but governance left: the bypass is still needed, and enough.
        self.s3.put_object_legal_hold(Bucket=bucket, Key="govhold", VersionId=vids["govhold"],
                                      LegalHold={"Status": "OFF"})
        r = self.delete_version(bucket, "govhold", vids["govhold"])
        self.assertS3Error(r, "AccessDenied", 403)
        d = self.s3.delete_object(Bucket=bucket, Key="govhold", VersionId=vids["govhold"],
                                  BypassGovernanceRetention=True)
        self.assertEqual(d["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertEqual(self.version_ids(bucket, "govhold"), [markers["govhold"]])

        # Delete markers carry no lock: their own ids always delete.
        for key in vids:
            with self.subTest(marker=key):
                r = self.delete_version(bucket, key, markers[key])
                self.assertEqual(r.status, 204, r)
                self.assertEqual(r.headers.get("x-amz-delete-marker"), "true")
        self.assertReadable(bucket, "comp", bodies["comp"])     # current again
        self.assertEqual(self.version_ids(bucket, "comp"), [vids["comp"]])

        # The same on a bucket whose default is COMPLIANCE: the marker does not take it.
        dflt = self.lock_bucket("COMPLIANCE", days=1)
        vid = self.put(dflt, "k", b"k")
        marker = self.s3.delete_object(Bucket=dflt, Key="k")["VersionId"]
        self.assertNotEqual(marker, vid)
        self.assertEqual(self.s3.delete_object(Bucket=dflt, Key="k", VersionId=marker)
                         ["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertS3Error(self.delete_version(dflt, "k", vid, bypass=True), "AccessDenied", 403)
        self.assertReadable(dflt, "k", b"k")

    def test_retention_expires(self):
        bucket = self.lock_bucket()
        until = seconds_ahead(5)
        comp = self.put_locked(bucket, "soon-comp", b"c", "COMPLIANCE", until)
        gov = self.put_locked(bucket, "soon-gov", b"g", "GOVERNANCE", until)
        self.assertS3Error(self.delete_version(bucket, "soon-comp", comp, bypass=True), "AccessDenied", 403)
        self.assertS3Error(self.delete_version(bucket, "soon-gov", gov), "AccessDenied", 403)
        self.assertLess(now(), until, "too slow: the retention ran out before it could be seen in force")
        self.assertEqual(self.retention(bucket, "soon-comp", comp), ("COMPLIANCE", until))
        time.sleep(max(0.0, (until - now()).total_seconds()) + 1.5)
        r = self.delete_version(bucket, "soon-comp", comp)
        self.assertEqual(r.status, 204, r)
        r = self.delete_version(bucket, "soon-gov", gov)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.version_ids(bucket, "soon-comp"), [])
        self.assertEqual(self.version_ids(bucket, "soon-gov"), [])

    def test_delete_objects_with_protected_versions(self):
        bucket = self.lock_bucket()
        g = self.put_locked(bucket, "g", b"g", "GOVERNANCE", FAR)
        c = self.put_locked(bucket, "c", b"c", "COMPLIANCE", FAR)
        h = self.put(bucket, "h", b"h", ObjectLockLegalHoldStatus="ON")
        f = self.put(bucket, "f", b"free")
        p = self.put(bucket, "p", b"plain delete")
        r = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": "g", "VersionId": g}, {"Key": "c", "VersionId": c}, {"Key": "h", "VersionId": h},
            {"Key": "f", "VersionId": f}, {"Key": "p"},
        ]})
        self.assertEqual(sorted((e["Key"], e.get("VersionId"), e["Code"]) for e in r.get("Errors", [])),
                         [("c", c, "AccessDenied"), ("g", g, "AccessDenied"), ("h", h, "AccessDenied")])
        deleted = {d["Key"]: d for d in r.get("Deleted", [])}
        self.assertEqual(set(deleted), {"f", "p"})
        self.assertEqual(deleted["f"]["VersionId"], f)
        self.assertTrue(deleted["p"]["DeleteMarker"])
        self.assertEqual(self.version_ids(bucket, "f"), [])
        self.assertReadable(bucket, "p", b"plain delete", p)
        for key, vid in (("g", g), ("c", c), ("h", h)):
            self.assertReadable(bucket, key, key.encode(), vid)

        # With the bypass header, governance gives way; compliance (and a legal hold, as on
        # DeleteObject) does not.
        r = self.s3.delete_objects(Bucket=bucket, BypassGovernanceRetention=True, Delete={"Objects": [
            {"Key": "g", "VersionId": g}, {"Key": "c", "VersionId": c}, {"Key": "h", "VersionId": h},
        ]})
        self.assertEqual([(d["Key"], d["VersionId"]) for d in r.get("Deleted", [])], [("g", g)])
        self.assertEqual(sorted((e["Key"], e.get("VersionId"), e["Code"]) for e in r.get("Errors", [])),
                         [("c", c, "AccessDenied"), ("h", h, "AccessDenied")])
        self.assertEqual(self.version_ids(bucket, "g"), [])
        self.assertReadable(bucket, "c", b"c", c)
        self.assertReadable(bucket, "h", b"h", h)

        # Raw, with the header: the same per-key answers.
        g2 = self.put_locked(bucket, "g", b"g2", "GOVERNANCE", FAR)
        body = (f'<Delete xmlns="{NS}"><Object><Key>g</Key><VersionId>{g2}</VersionId></Object>'
                f'<Object><Key>c</Key><VersionId>{c}</VersionId></Object></Delete>').encode()
        for bypass, deleted_keys, refused_keys in ((False, [], ["c", "g"]), (True, ["g"], ["c"])):
            with self.subTest(bypass=bypass):
                r = self.daemon.request("POST", f"/{bucket}", query=[("delete", "")], body=body,
                                        headers={"Content-MD5": md5_b64(body), **(BYPASS if bypass else {})})
                self.assertEqual(r.status, 200, r)
                root = r.xml()
                self.assertEqual(sorted(child_text(d, "Key") for d in root.findall(S3_NS + "Deleted")), deleted_keys)
                errs = root.findall(S3_NS + "Error")
                self.assertEqual(sorted(child_text(e, "Key") for e in errs), refused_keys)
                self.assertEqual({child_text(e, "Code") for e in errs}, {"AccessDenied"})
        self.assertEqual(self.version_ids(bucket, "g"), [])
        self.assertReadable(bucket, "c", b"c", c)

    # ---------------------------------------------------------------------------------------
    # 8. coffre tenant shred
    # ---------------------------------------------------------------------------------------

    def cli(self, *args, check=True):
        return self.daemon.run_cli(*args, "--data-dir", self.daemon.data_dir, check=check)

    def tenant_lock_bucket(self, name):
        client = self.daemon.client_for(self.daemon.create_tenant(name))
        bucket = unique_bucket(name)
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        return client, bucket

    def shredded(self, tenant) -> bool:
        return json.loads(self.cli("key", "list", tenant, "--json").stdout)["shredded"]

    def wait_refused(self, client, bucket, key, timeout=REVALIDATE_SECONDS + 4):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client.get_object(Bucket=bucket, Key=key)
            except Exception as e:  # noqa: BLE001 - any refusal; the code is checked below
                code = getattr(e, "response", {}).get("Error", {}).get("Code")
                if code == "AccessDenied":
                    return
            time.sleep(0.1)
        self.fail(f"{bucket}/{key} still answered {timeout}s after the shred")

    def test_shred_refuses_protected_data(self):
        alice = self.daemon.admin_token_file("lock-alice")
        bob = self.daemon.admin_token_file("lock-bob")

        # COMPLIANCE on a noncurrent version.
        comp, comp_bucket = self.tenant_lock_bucket("lockcomp")
        until = _dt.datetime(2099, 3, 4, 5, 6, 7, tzinfo=UTC)
        locked = comp.put_object(Bucket=comp_bucket, Key="ledger/2026", Body=b"the locked ledger",
                                 ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)["VersionId"]
        comp.put_object(Bucket=comp_bucket, Key="ledger/2026", Body=b"a newer, unlocked ledger")
        comp.put_object(Bucket=comp_bucket, Key="notes", Body=b"unprotected notes")
        p = self.cli("tenant", "shred", "lockcomp", "--confirm", "lockcomp", check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        err = p.stderr.decode(errors="replace")
        self.assertIn(comp_bucket, err)
        self.assertIn("ledger/2026", err)
        self.assertIn("2099-03-04", err)
        # An approval does not open compliance mode.
        approval = self.daemon.granted_approval(alice, bob, "tenant.shred", "lockcomp")
        p = self.cli("tenant", "shred", "lockcomp", "--confirm", "lockcomp", "--approval", approval, check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertIn("ledger/2026", p.stderr.decode(errors="replace"))

        # A legal hold alone.
        hold, hold_bucket = self.tenant_lock_bucket("lockhold")
        held = hold.put_object(Bucket=hold_bucket, Key="evidence", Body=b"exhibit A",
                               ObjectLockLegalHoldStatus="ON")["VersionId"]
        p = self.cli("tenant", "shred", "lockhold", "--confirm", "lockhold", check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        err = p.stderr.decode(errors="replace")
        self.assertIn(hold_bucket, err)
        self.assertIn("evidence", err)
        self.assertIn("legal hold", err)

        # GOVERNANCE only: refused without an approval.
        gov, gov_bucket = self.tenant_lock_bucket("lockgov")
        gov.put_object(Bucket=gov_bucket, Key="draft", Body=b"governed draft", ObjectLockMode="GOVERNANCE",
                       ObjectLockRetainUntilDate=FAR)
        p = self.cli("tenant", "shred", "lockgov", "--confirm", "lockgov", check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)

        # None of them lost anything (past the daemon's keystore revalidation, so that a key
        # destroyed behind the refusal would show).
        time.sleep(REVALIDATE_SECONDS + 0.5)
        for tenant in ("lockcomp", "lockhold", "lockgov"):
            self.assertFalse(self.shredded(tenant), tenant)
        self.assertReadable(comp_bucket, "ledger/2026", b"a newer, unlocked ledger", client=comp)
        self.assertReadable(comp_bucket, "ledger/2026", b"the locked ledger", vid=locked, client=comp)
        self.assertReadable(comp_bucket, "notes", b"unprotected notes", client=comp)
        self.assertReadable(hold_bucket, "evidence", b"exhibit A", vid=held, client=hold)
        self.assertReadable(gov_bucket, "draft", b"governed draft", client=gov)

        # GOVERNANCE with a granted approval: shredded.
        approval = self.daemon.granted_approval(alice, bob, "tenant.shred", "lockgov")
        p = self.cli("tenant", "shred", "lockgov", "--confirm", "lockgov", "--approval", approval, check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"destroyed", p.stdout)
        self.assertTrue(self.shredded("lockgov"))
        self.wait_refused(gov, gov_bucket, "draft")

        # The legal hold lifted, nothing is protected: shred works as before.
        hold.put_object_legal_hold(Bucket=hold_bucket, Key="evidence", VersionId=held, LegalHold={"Status": "OFF"})
        p = self.cli("tenant", "shred", "lockhold", "--confirm", "lockhold", check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"destroyed", p.stdout)
        self.assertTrue(self.shredded("lockhold"))
        self.wait_refused(hold, hold_bucket, "evidence")

        # The compliance tenant is untouched by all of this.
        self.assertFalse(self.shredded("lockcomp"))
        self.assertReadable(comp_bucket, "ledger/2026", b"the locked ledger", vid=locked, client=comp)


class ObjectLockRestartTest(LockHelpers, CoffreTestCase):
    """The lock state comes from the catalog: the same after a restart."""

    def test_lock_state_survives_a_restart(self):
        bucket = self.lock_bucket("GOVERNANCE", days=5)
        g = self.put_locked(bucket, "g", b"g", "GOVERNANCE", FAR)
        c = self.put(bucket, "c", b"c", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=FARTHER,
                     ObjectLockLegalHoldStatus="ON")
        d = self.put(bucket, "d", b"d")                      # the default
        x = self.put(bucket, "x", b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=NEARER)
        # state changed by the APIs after the write
        self.s3.put_object_retention(Bucket=bucket, Key="x", VersionId=x, BypassGovernanceRetention=True,
                                     Retention={"Mode": "COMPLIANCE", "RetainUntilDate": FAR})
        self.s3.put_object_legal_hold(Bucket=bucket, Key="x", VersionId=x, LegalHold={"Status": "ON"})
        self.s3.put_object_legal_hold(Bucket=bucket, Key="g", VersionId=g, LegalHold={"Status": "OFF"})
        versions = {"g": g, "c": c, "d": d, "x": x}

        def snapshot():
            out = {"config": self.lock_config(bucket), "versioning": self.versioning_status(bucket)}
            for key, vid in versions.items():
                out[key] = (self.retention(bucket, key, vid), self.legal_hold(bucket, key, vid) if key != "d" else None,
                            self.raw_lock_headers(bucket, key, vid))
            return out

        before = snapshot()
        self.assertEqual(before["x"][0], ("COMPLIANCE", FAR))
        self.assertEqual(before["d"][0][0], "GOVERNANCE")
        self.assertEqual(before["config"]["Rule"], {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 5}})

        first = self.daemon
        exit_code = first.stop(check=False)
        second = Daemon(tmp=first.tmp)
        try:
            second.start()
        finally:
            type(self).daemon = second   # the class cleanup stops it (SIGTERM, exit 0) and cleans up
        self.assertEqual(exit_code, 0, "exit code of the first daemon after SIGTERM")
        type(self).s3 = second.client()
        type(self).s3_req = second.client(checksum="when_required")

        self.assertEqual(snapshot(), before)
        self.assertNoLegalHold(bucket, "d", d)
        for key, vid in versions.items():
            with self.subTest(key=key):
                r = self.delete_version(bucket, key, vid)
                self.assertS3Error(r, "AccessDenied", 403)
        for key in ("c", "x"):
            self.assertS3Error(self.delete_version(bucket, key, versions[key], bypass=True), "AccessDenied", 403)
        self.assertClientError("InvalidBucketState", 409, self.s3.put_bucket_versioning, Bucket=bucket,
                               VersioningConfiguration={"Status": "Suspended"})
        t0 = now()
        d2 = self.put(bucket, "d", b"d after the restart")
        t1 = now()
        mode, until = self.retention(bucket, "d", d2)
        self.assertEqual(mode, "GOVERNANCE")
        self.assertAround(until, t0 + 5 * DAY, t1 + 5 * DAY)
        # the governed one still gives way to the bypass
        r = self.delete_version(bucket, "g", g, bypass=True)
        self.assertEqual(r.status, 204, r)


if __name__ == "__main__":
    unittest.main()
