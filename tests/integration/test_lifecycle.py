"""S3 bucket lifecycle: Put/Get/DeleteBucketLifecycleConfiguration (rule IDs, Status, the filters
Prefix, Tag, ObjectSizeGreaterThan, ObjectSizeLessThan and And, the legacy rule-level Prefix, the
actions Expiration, NoncurrentVersionExpiration and AbortIncompleteMultipartUpload, and the answers
to malformed or refused configurations, which change nothing), and the daemon's background lifecycle
pass (config fields lifecycle_interval_seconds and lifecycle_actions_per_second): objects expired by
a Date in the past as picked by prefix, tags and size, Disabled rules, delete markers added in
versioned buckets and lone ones removed by ExpiredObjectDeleteMarker, versions kept by Object Lock,
the coffre_lifecycle_* metrics of the admin listener, and the end of expirations once the
configuration is deleted or replaced; with boto3, the aws CLI and signed raw requests.

Every daemon here runs a pass each second. Actions that wait for days (Expiration Days,
NoncurrentDays, DaysAfterInitiation) cannot elapse in a test: only their configuration, and that
they do nothing early, is checked.

Where the expected answer is not spelled out by AWS's reference (and so rests on how S3 is known to
behave, or on Coffre's own documented choice), the assertion carries a comment saying so."""

import datetime as _dt
import json
import time
import unittest

from botocore.exceptions import ClientError

from harness import S3_NS, CoffreTestCase, gen_bytes, md5_b64, unique_bucket, child_text
from harness import xml_child as child
from test_operations import admin_get, admin_port, metric_value

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
UTC = _dt.timezone.utc

PAST = "2020-01-01T00:00:00Z"
PAST_MS = "2020-01-01T00:00:00.000Z"
PAST_DT = _dt.datetime(2020, 1, 1, tzinfo=UTC)
FUTURE_DT = _dt.datetime(2099, 1, 1, tzinfo=UTC)
RETAIN_UNTIL = _dt.datetime(2099, 6, 7, 8, 9, 10, tzinfo=UTC)

EXPIRE_PAST = f"<Expiration><Date>{PAST}</Date></Expiration>"
DEADLINE = 30.0

PASSES = "coffre_lifecycle_passes_total"
EXPIRE = 'coffre_lifecycle_actions_total{action="expire"}'
DELETE_MARKER = 'coffre_lifecycle_actions_total{action="delete_marker"}'
NONCURRENT = 'coffre_lifecycle_actions_total{action="noncurrent"}'
ABORT_UPLOAD = 'coffre_lifecycle_actions_total{action="abort_upload"}'
PROTECTED = "coffre_lifecycle_protected_total"
ACTION_SERIES = (EXPIRE, DELETE_MARKER, NONCURRENT, ABORT_UPLOAD, PROTECTED)


def rule_xml(actions: str, *, rule_id: str | None = "r", status: str | None = "Enabled",
             filt: str = "<Filter></Filter>") -> str:
    """One <Rule>; `filt` may be "" (no Filter) or a legacy "<Prefix>...</Prefix>"."""
    parts = "" if rule_id is None else f"<ID>{rule_id}</ID>"
    parts += filt
    parts += "" if status is None else f"<Status>{status}</Status>"
    return f"<Rule>{parts}{actions}</Rule>"


def lifecycle_xml(*rules: str) -> bytes:
    return f'<LifecycleConfiguration xmlns="{NS}">{"".join(rules)}</LifecycleConfiguration>'.encode()


def children(el, name) -> list:
    return el.findall(S3_NS + name) + el.findall(name)


class LifecycleHelpers:
    """Mixed into CoffreTestCase subclasses whose daemon has an admin listener (self.admin)."""

    # -- configuration --
    def put_lifecycle(self, bucket, rules: list):
        r = self.s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.addCleanup(self.forget_lifecycle, bucket)

    def put_raw(self, bucket, body: bytes):
        return self.daemon.request("PUT", f"/{bucket}", query=[("lifecycle", "")], body=body,
                                   headers={"Content-MD5": md5_b64(body)})

    def put_raw_ok(self, bucket, body: bytes):
        r = self.put_raw(bucket, body)
        self.assertEqual(r.status, 200, r)
        self.addCleanup(self.forget_lifecycle, bucket)

    def rules(self, bucket) -> list:
        got = self.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        for r in got:
            if r.get("Filter") == {"Prefix": ""}:      # the same filter of every object as an empty one
                r["Filter"] = {}
        return got

    def raw_rules(self, bucket) -> list:
        r = self.daemon.request("GET", f"/{bucket}", query=[("lifecycle", "")])
        self.assertEqual(r.status, 200, r)
        root = r.xml()
        self.assertEqual(root.tag, S3_NS + "LifecycleConfiguration", r.body[:300])
        return children(root, "Rule")

    def assertNoLifecycle(self, bucket):
        self.assertClientError("NoSuchLifecycleConfiguration", 404, self.s3.get_bucket_lifecycle_configuration,
                               Bucket=bucket)
        r = self.daemon.request("GET", f"/{bucket}", query=[("lifecycle", "")])
        self.assertS3Error(r, "NoSuchLifecycleConfiguration", 404)

    def forget_lifecycle(self, bucket):
        """Cleanup: no rule of a finished test acts during the next one."""
        try:
            self.s3.delete_bucket_lifecycle(Bucket=bucket)
        except ClientError:
            pass

    # -- objects --
    def put(self, bucket, key, body=b"x", **kw):
        r = self.s3.put_object(Bucket=bucket, Key=key, Body=body, **kw)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        return r.get("VersionId")

    def keys(self, bucket, prefix="") -> set:
        out, token = set(), None
        while True:
            kw = {"ContinuationToken": token} if token else {}
            r = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **kw)
            out.update(o["Key"] for o in r.get("Contents", []))
            if not r.get("IsTruncated"):
                return out
            token = r["NextContinuationToken"]

    def history(self, bucket, key) -> list:
        """[(kind, VersionId, IsLatest)] of exactly this key, newest first (raw listing order)."""
        r = self.daemon.request("GET", f"/{bucket}", query=[("versions", ""), ("prefix", key)])
        self.assertEqual(r.status, 200, r)
        out = []
        for el in r.xml():
            kind = el.tag.replace(S3_NS, "")
            if kind in ("Version", "DeleteMarker") and child_text(el, "Key") == key:
                out.append((kind, child_text(el, "VersionId"), child_text(el, "IsLatest") == "true"))
        return out

    def versioned_bucket(self, prefix="lcv") -> str:
        bucket = self.new_bucket(prefix=prefix)
        self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        return bucket

    # -- metrics and waiting --
    def metrics(self) -> str:
        status, _, body = admin_get(self.admin, "/metrics")
        self.assertEqual(status, 200, body[:300])
        return body.decode()

    def counter(self, series, text=None) -> float:
        """A series' value; a labelled series not exported yet counts as 0."""
        return metric_value(self.metrics() if text is None else text, series) or 0.0

    def snapshot(self) -> dict:
        text = self.metrics()
        return {s: self.counter(s, text) for s in (PASSES, *ACTION_SERIES)}

    def deltas(self, before: dict) -> dict:
        now = self.snapshot()
        return {s: now[s] - before[s] for s in ACTION_SERIES}

    def until(self, predicate, what: str, timeout: float = DEADLINE, interval: float = 0.1):
        deadline = time.monotonic() + timeout
        while True:
            got = predicate()
            if got:
                return got
            if time.monotonic() > deadline:
                self.fail(f"{what}: not within {timeout:.0f}s")
            time.sleep(interval)

    def wait_passes(self, n: int):
        """Until `n` more passes have completed: with n >= 2, one started after this call."""
        start = self.counter(PASSES)
        self.until(lambda: self.counter(PASSES) >= start + n, f"{n} lifecycle passes after {start:.0f}")


# ---------------------------------------------------------------------------------------------
# The configuration API
# ---------------------------------------------------------------------------------------------

class LifecycleConfigurationTest(LifecycleHelpers, CoffreTestCase):
    daemon_config = {"lifecycle_interval_seconds": 1}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = admin_port(cls.daemon)

    def test_put_get_replace_delete(self):
        bucket = self.new_bucket(prefix="lc")
        self.assertNoLifecycle(bucket)

        rules = [
            {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}},
            {"Status": "Disabled", "Filter": {"Tag": {"Key": "tmp", "Value": "1"}},
             "Expiration": {"Date": PAST_DT}},
        ]
        r = self.s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.addCleanup(self.forget_lifecycle, bucket)
        got = self.rules(bucket)
        self.assertEqual(len(got), 2, got)
        self.assertEqual(got[0], rules[0])
        generated = got[1].pop("ID", None)
        self.assertTrue(generated, "a rule put without an ID is given one")
        self.assertLessEqual(len(generated), 255)
        self.assertEqual(got[1], rules[1])

        raw = self.raw_rules(bucket)
        self.assertEqual([child_text(e, "ID") for e in raw], ["logs", generated])
        self.assertEqual([child_text(e, "Status") for e in raw], ["Enabled", "Disabled"])
        self.assertEqual(child_text(child(raw[0], "Filter"), "Prefix"), "logs/")
        self.assertEqual(child_text(child(raw[0], "Expiration"), "Days"), "30")
        date = child_text(child(raw[1], "Expiration"), "Date")
        self.assertIn(date, (PAST, PAST_MS), raw)

        # The generated ID stays the same from one Get to the next.
        self.assertEqual(self.rules(bucket)[1]["ID"], generated)

        # A Put replaces the whole configuration.
        replacement = [{"ID": "only", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 2}}]
        self.put_lifecycle(bucket, replacement)
        self.assertEqual(self.rules(bucket), replacement)

        # DeleteBucketLifecycle: 204, then no configuration (raw and boto3).
        r = self.daemon.request("DELETE", f"/{bucket}", query=[("lifecycle", "")])
        self.assertEqual(r.status, 204, r)
        self.assertNoLifecycle(bucket)
        self.put_lifecycle(bucket, replacement)
        d = self.s3.delete_bucket_lifecycle(Bucket=bucket)
        self.assertEqual(d["ResponseMetadata"]["HTTPStatusCode"], 204)
        self.assertNoLifecycle(bucket)

        # A bucket that does not exist (S3's usual answer for any bucket subresource).
        missing = unique_bucket("lc-missing")
        self.assertClientError("NoSuchBucket", 404, self.s3.get_bucket_lifecycle_configuration, Bucket=missing)
        self.assertClientError("NoSuchBucket", 404, self.s3.put_bucket_lifecycle_configuration, Bucket=missing,
                               LifecycleConfiguration={"Rules": replacement})

    def test_every_filter_and_action_round_trips(self):
        bucket = self.new_bucket(prefix="lc")
        rules = [
            {"ID": "prefix", "Status": "Enabled", "Filter": {"Prefix": "a/"}, "Expiration": {"Days": 1}},
            {"ID": "tag", "Status": "Enabled", "Filter": {"Tag": {"Key": "k", "Value": "v"}},
             "Expiration": {"Date": PAST_DT}},
            {"ID": "bigger", "Status": "Enabled", "Filter": {"ObjectSizeGreaterThan": 1000},
             "Expiration": {"Date": FUTURE_DT}},
            {"ID": "smaller", "Status": "Disabled", "Filter": {"ObjectSizeLessThan": 5},
             "NoncurrentVersionExpiration": {"NoncurrentDays": 7}},
            {"ID": "and", "Status": "Enabled",
             "Filter": {"And": {"Prefix": "b/", "Tags": [{"Key": "x", "Value": "1"}, {"Key": "y", "Value": "2"}],
                                "ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 100000}},
             "Expiration": {"Days": 365},
             "NoncurrentVersionExpiration": {"NoncurrentDays": 30, "NewerNoncurrentVersions": 100}},
            {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": "c/"},
             "Expiration": {"ExpiredObjectDeleteMarker": True},
             "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}},
            {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": "d/"},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}},
            {"ID": "i" * 255, "Status": "Enabled", "Filter": {"Prefix": "e/"},
             "Expiration": {"ExpiredObjectDeleteMarker": False},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
        ]
        self.put_lifecycle(bucket, rules)
        self.assertEqual(self.rules(bucket), rules)

        # Read, modify, write back: what Get answers is a configuration Put takes as it is.
        got = self.rules(bucket)
        got[0]["Expiration"] = {"Days": 2}
        self.put_lifecycle(bucket, got)
        self.assertEqual(self.rules(bucket), got)

    def test_raw_forms_that_match_everything_or_use_the_legacy_prefix(self):
        bucket = self.new_bucket(prefix="lc")
        body = lifecycle_xml(
            rule_xml("<Expiration><Days>1</Days></Expiration>", rule_id="empty", filt="<Filter/>"),
            rule_xml("<Expiration><Days>2</Days></Expiration>", rule_id="empty-prefix",
                     filt="<Filter><Prefix></Prefix></Filter>"),
            rule_xml(f"<Expiration><Date>{PAST_MS}</Date></Expiration>", rule_id="legacy",
                     filt="<Prefix>old/</Prefix>"),
            rule_xml("<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
                     "</AbortIncompleteMultipartUpload>", rule_id=None),
        )
        self.put_raw_ok(bucket, body)
        raw = self.raw_rules(bucket)
        self.assertEqual(len(raw), 4, raw)
        ids = [child_text(e, "ID") for e in raw]
        self.assertEqual(ids[:3], ["empty", "empty-prefix", "legacy"])
        self.assertTrue(ids[3], "a rule put without an ID is given one")
        # Both empty filters keep meaning "every object": a Filter with nothing but an empty Prefix.
        for e in raw[:2]:
            f = child(e, "Filter")
            self.assertIsNotNone(f, e)
            self.assertEqual([(c.tag.replace(S3_NS, ""), c.text or "", len(c)) for c in f if
                              (c.tag.replace(S3_NS, ""), c.text or "", len(c)) != ("Prefix", "", 0)], [])
        # The legacy Prefix may come back at rule level or inside a Filter (AWS's reference allows both).
        legacy = raw[2]
        f = child(legacy, "Filter")
        self.assertIn("old/", (child_text(legacy, "Prefix"), None if f is None else child_text(f, "Prefix")))
        self.assertIn(child_text(child(legacy, "Expiration"), "Date"), (PAST, PAST_MS))
        got = self.rules(bucket)
        self.assertEqual(got[1]["Expiration"], {"Days": 2})
        self.assertEqual(got[2]["Expiration"], {"Date": PAST_DT})
        self.assertEqual(got[3]["AbortIncompleteMultipartUpload"], {"DaysAfterInitiation": 1})

    def test_refused_configurations_change_nothing(self):
        bucket = self.new_bucket(prefix="lc")
        baseline = [{"ID": "keep", "Status": "Enabled", "Filter": {"Prefix": "k/"}, "Expiration": {"Days": 9}}]
        self.put_lifecycle(bucket, baseline)

        expire = "<Expiration><Days>1</Days></Expiration>"
        abort = ("<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
                 "</AbortIncompleteMultipartUpload>")
        tag = "<Tag><Key>k</Key><Value>v</Value></Tag>"
        many = lambda n: lifecycle_xml(*(rule_xml(expire, rule_id=f"r{i}", filt="<Filter/>") for i in range(n)))
        cases = [
            # not XML, or not a configuration
            ("not xml", b"not xml", "MalformedXML"),
            ("truncated", lifecycle_xml(rule_xml(expire))[:-30], "MalformedXML"),
            # Status
            ("status lower case", lifecycle_xml(rule_xml(expire, status="enabled")), "MalformedXML"),
            ("status unknown", lifecycle_xml(rule_xml(expire, status="On")), "MalformedXML"),
            ("status empty", lifecycle_xml(rule_xml(expire, status="")), "MalformedXML"),
            ("status missing", lifecycle_xml(rule_xml(expire, status=None)), "MalformedXML"),
            # filters
            ("prefix and tag", lifecycle_xml(rule_xml(expire, filt=f"<Filter><Prefix>a</Prefix>{tag}</Filter>")),
             "MalformedXML"),
            ("tag and size", lifecycle_xml(rule_xml(
                expire, filt=f"<Filter>{tag}<ObjectSizeGreaterThan>5</ObjectSizeGreaterThan></Filter>")),
             "MalformedXML"),
            ("two sizes outside And", lifecycle_xml(rule_xml(
                expire, filt="<Filter><ObjectSizeGreaterThan>5</ObjectSizeGreaterThan>"
                             "<ObjectSizeLessThan>50</ObjectSizeLessThan></Filter>")), "MalformedXML"),
            ("prefix and And", lifecycle_xml(rule_xml(
                expire, filt=f"<Filter><Prefix>a</Prefix><And><Prefix>b</Prefix>{tag}</And></Filter>")),
             "MalformedXML"),
            ("legacy prefix and Filter", lifecycle_xml(rule_xml(
                expire, filt="<Prefix>a/</Prefix><Filter><Prefix>a/</Prefix></Filter>")), "MalformedXML"),
            # Expiration: exactly one of Days, Date, ExpiredObjectDeleteMarker
            ("days and date", lifecycle_xml(rule_xml(
                f"<Expiration><Days>1</Days><Date>{PAST}</Date></Expiration>")), "MalformedXML"),
            ("days and marker", lifecycle_xml(rule_xml(
                "<Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>")),
             "MalformedXML"),
            ("date and marker", lifecycle_xml(rule_xml(
                f"<Expiration><Date>{PAST}</Date><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>"
                "</Expiration>")), "MalformedXML"),
            ("empty expiration", lifecycle_xml(rule_xml("<Expiration></Expiration>")), "MalformedXML"),
            # numbers of days
            ("days 0", lifecycle_xml(rule_xml("<Expiration><Days>0</Days></Expiration>")), "InvalidArgument"),
            ("days -1", lifecycle_xml(rule_xml("<Expiration><Days>-1</Days></Expiration>")), "InvalidArgument"),
            ("noncurrent days 0", lifecycle_xml(rule_xml(
                "<NoncurrentVersionExpiration><NoncurrentDays>0</NoncurrentDays></NoncurrentVersionExpiration>")),
             "InvalidArgument"),
            ("noncurrent days -2", lifecycle_xml(rule_xml(
                "<NoncurrentVersionExpiration><NoncurrentDays>-2</NoncurrentDays></NoncurrentVersionExpiration>")),
             "InvalidArgument"),
            ("days after initiation 0", lifecycle_xml(rule_xml(
                "<AbortIncompleteMultipartUpload><DaysAfterInitiation>0</DaysAfterInitiation>"
                "</AbortIncompleteMultipartUpload>")), "InvalidArgument"),
            ("days after initiation -1", lifecycle_xml(rule_xml(
                "<AbortIncompleteMultipartUpload><DaysAfterInitiation>-1</DaysAfterInitiation>"
                "</AbortIncompleteMultipartUpload>")), "InvalidArgument"),
            # a Date not at midnight UTC
            ("date at noon", lifecycle_xml(rule_xml(
                "<Expiration><Date>2020-01-01T12:00:00Z</Date></Expiration>")), "InvalidArgument"),
            ("date a second past midnight", lifecycle_xml(rule_xml(
                "<Expiration><Date>2020-01-01T00:00:01.000Z</Date></Expiration>")), "InvalidArgument"),
            # IDs
            ("duplicate ids", lifecycle_xml(
                rule_xml(expire, rule_id="same"),
                rule_xml(abort, rule_id="same", filt="<Filter><Prefix>p</Prefix></Filter>")), "InvalidArgument"),
            ("id of 256", lifecycle_xml(rule_xml(expire, rule_id="i" * 256)), "InvalidArgument"),
            # no action
            ("no action", lifecycle_xml(rule_xml("")), "InvalidRequest"),
            # too many rules
            ("1001 rules", many(1001), "MalformedXML"),
            # AbortIncompleteMultipartUpload with tags
            ("abort with Tag", lifecycle_xml(rule_xml(abort, filt=f"<Filter>{tag}</Filter>")), "InvalidRequest"),
            ("abort with And tags", lifecycle_xml(rule_xml(
                abort, filt=f"<Filter><And><Prefix>p/</Prefix>{tag}</And></Filter>")), "InvalidRequest"),
            # transitions: Coffre's choice, it has a single storage class
            ("transition", lifecycle_xml(rule_xml(
                "<Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition>")),
             "InvalidStorageClass"),
            ("transition by date", lifecycle_xml(rule_xml(
                f"<Transition><Date>{PAST}</Date><StorageClass>STANDARD_IA</StorageClass></Transition>")),
             "InvalidStorageClass"),
            ("transition beside an expiration", lifecycle_xml(rule_xml(
                expire + "<Transition><Days>30</Days><StorageClass>DEEP_ARCHIVE</StorageClass></Transition>")),
             "InvalidStorageClass"),
            ("noncurrent transition", lifecycle_xml(rule_xml(
                "<NoncurrentVersionTransition><NoncurrentDays>30</NoncurrentDays><StorageClass>GLACIER_IR"
                "</StorageClass></NoncurrentVersionTransition>")), "InvalidStorageClass"),
            # NewerNoncurrentVersions outside 1..100 (no error code given for it: any 400)
            ("newer noncurrent versions 0", lifecycle_xml(rule_xml(
                "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays><NewerNoncurrentVersions>0"
                "</NewerNoncurrentVersions></NoncurrentVersionExpiration>")), None),
            ("newer noncurrent versions 101", lifecycle_xml(rule_xml(
                "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays><NewerNoncurrentVersions>101"
                "</NewerNoncurrentVersions></NoncurrentVersionExpiration>")), None),
        ]
        for name, body, code in cases:
            with self.subTest(name):
                r = self.put_raw(bucket, body)
                self.assertS3Error(r, code, 400)
                self.assertEqual(self.rules(bucket), baseline)

        # 1000 rules are within the limit (an ID of 255 and NewerNoncurrentVersions 1 and 100: the round trip).
        other = self.new_bucket(prefix="lc")
        self.put_raw_ok(other, many(1000))
        got = self.rules(other)
        self.assertEqual(len(got), 1000)
        self.assertEqual([g["ID"] for g in got[:3]], ["r0", "r1", "r2"])
        self.assertEqual(got[999], {"ID": "r999", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}})

    def test_refused_through_boto3(self):
        bucket = self.new_bucket(prefix="lc")
        baseline = [{"ID": "keep", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 9}}]
        self.put_lifecycle(bucket, baseline)
        cases = [
            ("InvalidArgument", [{"ID": "a", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 0}}]),
            ("InvalidArgument", [{"ID": "a", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}},
                                 {"ID": "a", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 2}}]),
            ("InvalidArgument", [{"ID": "a", "Status": "Enabled", "Filter": {},
                                  "Expiration": {"Date": _dt.datetime(2020, 1, 1, 6, tzinfo=UTC)}}]),
            ("InvalidRequest", [{"ID": "a", "Status": "Enabled", "Filter": {"Prefix": "x/"}}]),
            ("InvalidRequest", [{"ID": "a", "Status": "Enabled", "Filter": {"Tag": {"Key": "k", "Value": "v"}},
                                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}]),
            ("InvalidStorageClass", [{"ID": "a", "Status": "Enabled", "Filter": {},
                                      "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}]),
            ("InvalidStorageClass", [{"ID": "a", "Status": "Enabled", "Filter": {},
                                      "NoncurrentVersionTransitions": [{"NoncurrentDays": 30,
                                                                        "StorageClass": "STANDARD_IA"}]}]),
        ]
        for code, rules in cases:
            with self.subTest(code=code, rules=rules):
                self.assertClientError(code, 400, self.s3.put_bucket_lifecycle_configuration, Bucket=bucket,
                                       LifecycleConfiguration={"Rules": rules})
                self.assertEqual(self.rules(bucket), baseline)

    def test_aws_cli(self):
        bucket = self.new_bucket(prefix="lc")
        self.addCleanup(self.forget_lifecycle, bucket)
        config = {"Rules": [{"ID": "cli", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                             "Expiration": {"Days": 3},
                             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]}
        self.daemon.aws("s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket,
                        "--lifecycle-configuration", json.dumps(config))
        got = json.loads(self.daemon.aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket).stdout)
        self.assertEqual(got["Rules"], config["Rules"])
        self.daemon.aws("s3api", "delete-bucket-lifecycle", "--bucket", bucket)
        p = self.daemon.aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"NoSuchLifecycleConfiguration", p.stderr)


# ---------------------------------------------------------------------------------------------
# The background pass
# ---------------------------------------------------------------------------------------------

class LifecyclePassTest(LifecycleHelpers, CoffreTestCase):
    daemon_config = {"lifecycle_interval_seconds": 1, "lifecycle_actions_per_second": 0}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = admin_port(cls.daemon)

    def test_passes_are_counted(self):
        self.until(lambda: metric_value(self.metrics(), PASSES) is not None, "coffre_lifecycle_passes_total exported")
        start = self.counter(PASSES)
        t0 = time.monotonic()
        self.wait_passes(3)
        # Three passes a second apart: about 3 seconds, certainly not 30.
        self.assertLess(time.monotonic() - t0, 15)
        self.assertGreater(self.counter(PASSES), start)

    def test_expiration_date_by_prefix(self):
        bucket = self.new_bucket(prefix="lcp")
        legacy = self.new_bucket(prefix="lcp")
        doomed = {"old/a": b"a" * 10, "old/b": gen_bytes(70000, seed=1), "old/sub/c": b""}
        kept = {"keep/a": b"keep", "old": b"no slash", "older/x": b"other prefix", "Old/a": b"case",
                "future/a": b"dated 2099"}
        for k, v in {**doomed, **kept}.items():
            self.put(bucket, k, v)
        for k in ("logs/1", "logs/2", "logs", "other/1"):
            self.put(legacy, k, k.encode())
        before = self.snapshot()

        self.put_lifecycle(bucket, [
            {"ID": "old", "Status": "Enabled", "Filter": {"Prefix": "old/"}, "Expiration": {"Date": PAST_DT}},
            {"ID": "future", "Status": "Enabled", "Filter": {"Prefix": "future/"},
             "Expiration": {"Date": FUTURE_DT}},
        ])
        # The legacy rule-level Prefix, no ID, the .000Z form of the date.
        self.put_raw_ok(legacy, lifecycle_xml(rule_xml(f"<Expiration><Date>{PAST_MS}</Date></Expiration>",
                                                       rule_id=None, filt="<Prefix>logs/</Prefix>")))

        self.until(lambda: not self.keys(bucket, "old/") and not self.keys(legacy, "logs/"),
                   "objects under old/ and logs/ expired")
        self.wait_passes(2)
        self.assertEqual(self.keys(bucket), set(kept))
        for k, v in kept.items():
            self.assertEqual(self.get_bytes(bucket, k), v, k)
        for k in doomed:
            self.assertKeyAbsent(bucket, k)
        self.assertEqual(self.keys(legacy), {"logs", "other/1"})
        # In a bucket without versioning, nothing is left of them.
        r = self.s3.list_object_versions(Bucket=bucket, Prefix="old/")
        self.assertEqual(r.get("Versions", []) + r.get("DeleteMarkers", []), [])
        self.assertEqual(self.deltas(before), {EXPIRE: 5, DELETE_MARKER: 0, NONCURRENT: 0, ABORT_UPLOAD: 0,
                                               PROTECTED: 0})

    def test_tag_and_size_filters(self):
        tagged = self.new_bucket(prefix="lct")
        both = self.new_bucket(prefix="lct")
        bigger = self.new_bucket(prefix="lct")
        smaller = self.new_bucket(prefix="lct")
        between = self.new_bucket(prefix="lct")

        # Tag: every object carrying it (other tags beside it do not matter).
        self.put(tagged, "temp", Tagging="class=temp")
        self.put(tagged, "temp-and-more", Tagging="other=x&class=temp")
        self.put(tagged, "tagged-later")
        self.put(tagged, "other-value", Tagging="class=keep")
        self.put(tagged, "other-key", Tagging="kind=temp")
        self.put(tagged, "untagged")
        # And: the prefix and every tag.
        self.put(both, "logs/all", Tagging="env=dev&team=x")
        self.put(both, "logs/all-and-more", Tagging="env=dev&team=x&z=9")
        self.put(both, "logs/one-tag", Tagging="env=dev")
        self.put(both, "logs/no-tags")
        self.put(both, "other/all", Tagging="env=dev&team=x")
        # Sizes are the object's own (what S3 reports), strict on both sides.
        for n in (0, 50, 100, 101, 1000):
            for b in (bigger, smaller):
                self.put(b, f"size-{n}", b"s" * n)
        for n in (10, 11, 19, 20):
            self.put(between, f"size-{n}", b"s" * n)
        self.s3.put_object_tagging(Bucket=tagged, Key="tagged-later",
                                   Tagging={"TagSet": [{"Key": "class", "Value": "temp"}]})
        before = self.snapshot()

        self.put_lifecycle(tagged, [{"ID": "t", "Status": "Enabled",
                                     "Filter": {"Tag": {"Key": "class", "Value": "temp"}},
                                     "Expiration": {"Date": PAST_DT}}])
        self.put_lifecycle(both, [{"ID": "a", "Status": "Enabled",
                                   "Filter": {"And": {"Prefix": "logs/", "Tags": [{"Key": "env", "Value": "dev"},
                                                                                 {"Key": "team", "Value": "x"}]}},
                                   "Expiration": {"Date": PAST_DT}}])
        self.put_lifecycle(bigger, [{"ID": "g", "Status": "Enabled", "Filter": {"ObjectSizeGreaterThan": 100},
                                     "Expiration": {"Date": PAST_DT}}])
        self.put_lifecycle(smaller, [{"ID": "l", "Status": "Enabled", "Filter": {"ObjectSizeLessThan": 100},
                                      "Expiration": {"Date": PAST_DT}}])
        self.put_lifecycle(between, [{"ID": "r", "Status": "Enabled",
                                      "Filter": {"And": {"ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 20}},
                                      "Expiration": {"Date": PAST_DT}}])

        expected = {
            tagged: {"other-value", "other-key", "untagged"},
            both: {"logs/one-tag", "logs/no-tags", "other/all"},
            bigger: {"size-0", "size-50", "size-100"},
            smaller: {"size-100", "size-101", "size-1000"},
            between: {"size-10", "size-20"},
        }
        self.until(lambda: all(self.keys(b) <= left for b, left in expected.items()), "tag and size filters applied")
        self.wait_passes(2)
        for b, left in expected.items():
            with self.subTest(bucket=b):
                self.assertEqual(self.keys(b), left)
        self.assertEqual(self.deltas(before)[EXPIRE], 3 + 2 + 2 + 2 + 2)

    def test_disabled_rule_does_nothing(self):
        bucket = self.new_bucket(prefix="lcd")
        for k in ("a", "b/c"):
            self.put(bucket, k)
        before = self.snapshot()
        rule = {"ID": "off", "Status": "Disabled", "Filter": {}, "Expiration": {"Date": PAST_DT}}
        self.put_lifecycle(bucket, [rule])
        self.wait_passes(3)
        self.assertEqual(self.keys(bucket), {"a", "b/c"})
        self.assertEqual(self.deltas(before)[EXPIRE], 0)

        # The same rule Enabled does act (so the bucket was in reach of the passes).
        self.put_lifecycle(bucket, [dict(rule, Status="Enabled")])
        self.until(lambda: not self.keys(bucket), "objects expired once the rule is Enabled")
        self.wait_passes(2)
        self.assertEqual(self.deltas(before)[EXPIRE], 2)

    def test_versioned_bucket_gets_delete_markers(self):
        bucket = self.versioned_bucket()
        a1 = self.put(bucket, "exp/a", b"first")
        a2 = self.put(bucket, "exp/a", b"second")
        g1 = self.put(bucket, "exp/gone", b"deleted by the user")
        marker = self.s3.delete_object(Bucket=bucket, Key="exp/gone")["VersionId"]
        k1 = self.put(bucket, "keep/b", b"other prefix")
        before = self.snapshot()

        self.put_lifecycle(bucket, [
            {"ID": "exp", "Status": "Enabled", "Filter": {"Prefix": "exp/"}, "Expiration": {"Date": PAST_DT},
             "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
        ])
        self.until(lambda: self.history(bucket, "exp/a")[0][0] == "DeleteMarker", "a delete marker on exp/a")
        self.wait_passes(2)

        h = self.history(bucket, "exp/a")
        self.assertEqual(len(h), 3, h)
        self.assertEqual(h[0][0], "DeleteMarker")
        self.assertTrue(h[0][2], h)
        self.assertNotIn(h[0][1], (a1, a2, "null"))
        self.assertEqual(h[1:], [("Version", a2, False), ("Version", a1, False)])
        self.assertClientError("NoSuchKey", 404, self.s3.get_object, Bucket=bucket, Key="exp/a")
        self.assertEqual(self.get_bytes(bucket, "exp/a", VersionId=a2), b"second")
        self.assertEqual(self.get_bytes(bucket, "exp/a", VersionId=a1), b"first")
        # Already deleted: no second marker.
        self.assertEqual(self.history(bucket, "exp/gone"), [("DeleteMarker", marker, True), ("Version", g1, False)])
        self.assertEqual(self.history(bucket, "keep/b"), [("Version", k1, True)])
        self.assertEqual(self.deltas(before), {EXPIRE: 1, DELETE_MARKER: 0, NONCURRENT: 0, ABORT_UPLOAD: 0,
                                               PROTECTED: 0})

        # A new version written later is current again, and expires in turn.
        a3 = self.put(bucket, "exp/a", b"third")
        self.until(lambda: self.history(bucket, "exp/a")[0][0] == "DeleteMarker", "a marker on the new version")
        h = self.history(bucket, "exp/a")
        self.assertEqual([e[0] for e in h], ["DeleteMarker", "Version", "DeleteMarker", "Version", "Version"], h)
        self.assertEqual(h[1][1], a3)
        self.assertEqual(self.get_bytes(bucket, "exp/a", VersionId=a3), b"third")

    def test_expired_object_delete_marker(self):
        bucket = self.versioned_bucket()
        lone = self.put(bucket, "lone", b"1")
        self.s3.delete_object(Bucket=bucket, Key="lone")
        self.s3.delete_object(Bucket=bucket, Key="lone", VersionId=lone)
        never = self.s3.delete_object(Bucket=bucket, Key="never-written")["VersionId"]
        behind = self.put(bucket, "behind", b"2")
        behind_marker = self.s3.delete_object(Bucket=bucket, Key="behind")["VersionId"]
        plain = self.put(bucket, "plain", b"3")
        self.assertEqual(len(self.history(bucket, "lone")), 1)
        self.assertEqual(len(self.history(bucket, "never-written")), 1)
        self.assertTrue(never)
        before = self.snapshot()

        self.put_lifecycle(bucket, [{"ID": "m", "Status": "Enabled", "Filter": {},
                                     "Expiration": {"ExpiredObjectDeleteMarker": True}}])
        self.until(lambda: not self.history(bucket, "lone") and not self.history(bucket, "never-written"),
                   "lone delete markers removed")
        self.wait_passes(2)
        self.assertEqual(self.history(bucket, "behind"), [("DeleteMarker", behind_marker, True),
                                                          ("Version", behind, False)])
        self.assertEqual(self.history(bucket, "plain"), [("Version", plain, True)])
        r = self.s3.list_object_versions(Bucket=bucket)
        self.assertEqual(sorted({e["Key"] for e in r.get("Versions", []) + r.get("DeleteMarkers", [])}),
                         ["behind", "plain"])
        self.assertEqual(self.deltas(before), {EXPIRE: 0, DELETE_MARKER: 2, NONCURRENT: 0, ABORT_UPLOAD: 0,
                                               PROTECTED: 0})

        # Once the version behind it is gone, that marker is alone and goes too.
        self.s3.delete_object(Bucket=bucket, Key="behind", VersionId=behind)
        self.until(lambda: not self.history(bucket, "behind"), "the marker left alone removed")
        self.wait_passes(2)
        self.assertEqual(self.history(bucket, "plain"), [("Version", plain, True)])
        self.assertEqual(self.deltas(before)[DELETE_MARKER], 3)

    def test_object_lock_keeps_the_retained_version(self):
        bucket = unique_bucket("lcl")
        self.s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        body = gen_bytes(5000, seed=7)
        locked = self.put(bucket, "locked", body, ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=RETAIN_UNTIL)
        before = self.snapshot()

        self.put_lifecycle(bucket, [
            {"ID": "expire", "Status": "Enabled", "Filter": {}, "Expiration": {"Date": PAST_DT}},
            {"ID": "noncurrent", "Status": "Enabled", "Filter": {},
             "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
        ])
        self.until(lambda: self.history(bucket, "locked")[0][0] == "DeleteMarker",
                   "a delete marker on top of the retained version")
        self.wait_passes(3)
        h = self.history(bucket, "locked")
        self.assertEqual(len(h), 2, h)
        self.assertEqual((h[0][0], h[0][2]), ("DeleteMarker", True))
        self.assertEqual(h[1], ("Version", locked, False))
        self.assertEqual(self.get_bytes(bucket, "locked", VersionId=locked), body)
        r = self.s3.get_object_retention(Bucket=bucket, Key="locked", VersionId=locked)
        self.assertEqual((r["Retention"]["Mode"], r["Retention"]["RetainUntilDate"]), ("COMPLIANCE", RETAIN_UNTIL))
        # Adding a marker removes no version, so nothing was "protected" here.
        self.assertEqual(self.deltas(before), {EXPIRE: 1, DELETE_MARKER: 0, NONCURRENT: 0, ABORT_UPLOAD: 0,
                                               PROTECTED: 0})

    def test_young_uploads_and_noncurrent_versions_are_left_alone(self):
        bucket = self.versioned_bucket()
        up = self.s3.create_multipart_upload(Bucket=bucket, Key="mp/x")["UploadId"]
        part = gen_bytes(1000, seed=3)
        etag = self.s3.upload_part(Bucket=bucket, Key="mp/x", UploadId=up, PartNumber=1, Body=part)["ETag"]
        v1 = self.put(bucket, "nc/k", b"old")
        v2 = self.put(bucket, "nc/k", b"new")
        before = self.snapshot()

        self.put_lifecycle(bucket, [
            {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": "mp/"},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
            {"ID": "noncurrent", "Status": "Enabled", "Filter": {"Prefix": "nc/"},
             "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}},
        ])
        self.wait_passes(3)
        uploads = self.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        self.assertEqual([(u["Key"], u["UploadId"]) for u in uploads], [("mp/x", up)])
        self.assertEqual(self.history(bucket, "nc/k"), [("Version", v2, True), ("Version", v1, False)])
        self.assertEqual(self.deltas(before), {EXPIRE: 0, DELETE_MARKER: 0, NONCURRENT: 0, ABORT_UPLOAD: 0,
                                               PROTECTED: 0})
        self.s3.complete_multipart_upload(Bucket=bucket, Key="mp/x", UploadId=up,
                                          MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
        self.assertEqual(self.get_bytes(bucket, "mp/x"), part)

    def test_deleting_or_replacing_the_configuration_stops_expirations(self):
        bucket = self.new_bucket(prefix="lcs")
        before = self.snapshot()
        self.put_lifecycle(bucket, [{"ID": "all", "Status": "Enabled", "Filter": {}, "Expiration": {"Date": PAST_DT}}])
        self.put(bucket, "first")
        self.until(lambda: not self.keys(bucket), "the rule in force")

        self.s3.delete_bucket_lifecycle(Bucket=bucket)
        self.wait_passes(2)          # a pass that began before the delete has ended
        for k in ("second", "third/x"):
            self.put(bucket, k)
        self.wait_passes(3)
        self.assertEqual(self.keys(bucket), {"second", "third/x"})
        self.assertEqual(self.deltas(before)[EXPIRE], 1)

        # Replacing: the rules of the old configuration stop, the new ones apply.
        self.put_lifecycle(bucket, [{"ID": "a", "Status": "Enabled", "Filter": {"Prefix": "a/"},
                                     "Expiration": {"Date": PAST_DT}}])
        self.put(bucket, "a/1")
        self.until(lambda: not self.keys(bucket, "a/"), "the first configuration in force")
        self.put_lifecycle(bucket, [{"ID": "b", "Status": "Enabled", "Filter": {"Prefix": "b/"},
                                     "Expiration": {"Date": PAST_DT}}])
        self.wait_passes(2)
        self.put(bucket, "a/2")
        self.put(bucket, "b/1")
        self.until(lambda: not self.keys(bucket, "b/"), "the replacing configuration in force")
        self.wait_passes(2)
        self.assertEqual(self.keys(bucket), {"second", "third/x", "a/2"})
        self.assertEqual(self.deltas(before)[EXPIRE], 3)


class LifecycleRateLimitTest(LifecycleHelpers, CoffreTestCase):
    RATE = 4
    daemon_config = {"lifecycle_interval_seconds": 1, "lifecycle_actions_per_second": RATE}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = admin_port(cls.daemon)

    def test_deletions_are_paced(self):
        bucket = self.new_bucket(prefix="lcr")
        n = 16
        for i in range(n):
            self.put(bucket, f"k{i:02d}")
        before = self.snapshot()
        self.put_lifecycle(bucket, [{"ID": "all", "Status": "Enabled", "Filter": {}, "Expiration": {"Date": PAST_DT}}])

        first = last = None
        seen = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            left = len(self.keys(bucket))
            now = time.monotonic()
            seen.add(left)
            if left < n and first is None:
                first = now
            if left == 0:
                last = now
                break
            time.sleep(0.05)
        self.assertIsNotNone(last, f"all {n} objects expired within 60s (left: {left})")
        # 16 deletions at 4 a second: even with a first burst of 4, 12 more take 3 seconds.
        self.assertGreaterEqual(last - first, 2.0, f"{n} deletions took {last - first:.2f}s")
        self.assertGreater(len(seen - {0, n}), 2, f"intermediate counts seen: {sorted(seen)}")
        self.wait_passes(2)
        self.assertEqual(self.deltas(before)[EXPIRE], n)


class LifecycleOffTest(LifecycleHelpers, CoffreTestCase):
    daemon_config = {"lifecycle_interval_seconds": 0}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = admin_port(cls.daemon)

    def test_no_pass_runs(self):
        bucket = self.new_bucket(prefix="lco")
        self.put(bucket, "stays")
        rules = [{"ID": "all", "Status": "Enabled", "Filter": {}, "Expiration": {"Date": PAST_DT}}]
        self.put_lifecycle(bucket, rules)
        self.assertEqual(self.rules(bucket), rules)          # the API works all the same
        # Nothing to wait for when no pass runs: a few seconds, several intervals of the other classes.
        time.sleep(4)
        self.assertEqual(self.keys(bucket), {"stays"})
        self.assertEqual(self.counter(PASSES), 0)
        self.assertEqual(self.counter(EXPIRE), 0)


if __name__ == "__main__":
    unittest.main()
