"""s3cmd in its default configuration, which signs SigV4 for the region "US", against gateways in
us-east-1 and in another region. Apart from test_clients.py because one daemon here brings a
configuration of its own (gateway_suite.py runs test_clients.py over upstreams)."""

import os
import unittest

import boto3
from botocore.config import Config

from harness import S3cmdTestCase, sha256_file, write_file


class S3cmdDefaultConfig(S3cmdTestCase):
    """s3cmd in its default configuration signs SigV4 for the region "US", which no AWS region is
    called. AWS answers AuthorizationHeaderMalformed naming the bucket's region in <Region>, and
    s3cmd signs again for it (and asks a bucket's location first, signed for us-east-1): every
    command works against a gateway in us-east-1 or in another region, as against AWS."""

    # Nothing beyond the endpoint and the key: bucket_location and the signature version stay
    # s3cmd's defaults ("US", SigV4).
    s3cmd_config = ""

    def round_trip(self, bucket):
        src = os.path.join(self.tmp, "piece.bin")
        write_file(src, 100_000, seed=9)
        self.s3cmd("put", src, f"s3://{bucket}/piece.bin")
        back = os.path.join(self.tmp, "retour.bin")
        self.s3cmd("get", "--force", f"s3://{bucket}/piece.bin", back)
        self.assertEqual(sha256_file(back), sha256_file(src))
        self.assertIn(f"s3://{bucket}/piece.bin", self.s3cmd("ls", f"s3://{bucket}").stdout)
        self.assertIn(f"s3://{bucket}", self.s3cmd("ls").stdout)
        self.s3cmd("info", f"s3://{bucket}/piece.bin")
        self.s3cmd("del", f"s3://{bucket}/piece.bin")
        self.assertNotIn("Contents", self.s3.list_objects_v2(Bucket=bucket))



class S3cmdDefaultRegionTest(S3cmdDefaultConfig):

    def test_default_config_against_us_east_1(self):
        self.s3cmd("mb", "s3://s3cmd-us-default")
        self.round_trip("s3cmd-us-default")
        self.s3cmd("rb", "s3://s3cmd-us-default")


class S3cmdDefaultRegionElsewhereTest(S3cmdDefaultConfig):
    """The same s3cmd configuration against a gateway in eu-west-3, on a bucket made there (s3cmd's
    `mb` without a location would be refused there, by AWS too)."""

    daemon_config = {"region": "eu-west-3"}

    def test_default_config_against_another_region(self):
        s3 = boto3.session.Session().client(
            "s3", endpoint_url=self.daemon.endpoint, aws_access_key_id=self.daemon.access_key,
            aws_secret_access_key=self.daemon.secret_key, region_name="eu-west-3",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket="s3cmd-eu-default", CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        self.s3 = s3
        self.round_trip("s3cmd-eu-default")
        s3.delete_bucket(Bucket="s3cmd-eu-default")


if __name__ == "__main__":
    unittest.main()
