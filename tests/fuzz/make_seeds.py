#!/usr/bin/env python3
"""Writes the text seed corpora of the fuzz targets (corpus/<target>/); run from anywhere.

The seeds are the AWS SigV4 documentation examples (their published signatures verify under the
fixed clock and example credential the harnesses use) and small valid documents and requests, so
the fuzzers start from inputs that pass every check. corpus/blob_reader/ holds real blobs written
by the library (see docs/RELIABILITY.md); this script leaves it alone.
"""

import base64
import hashlib
import hmac
import os
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def sign_v2(string_to_sign):
    return base64.b64encode(hmac.new(SECRET, string_to_sign.encode(), hashlib.sha1).digest()).decode()


def signing_key():
    k = b"AWS4" + SECRET
    for part in ("20130524", "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def chunk_sig(prev, data, kind="AWS4-HMAC-SHA256-PAYLOAD"):
    sts = "\n".join([kind, DATE, SCOPE, prev, EMPTY_SHA, hashlib.sha256(data).hexdigest()])
    return hmac.new(signing_key(), sts.encode(), hashlib.sha256).hexdigest()


def signed_chunks(seed, sizes, trailer=None):
    out, prev = b"", seed
    for i, n in enumerate(list(sizes) + [0]):
        data = bytes([97 + i % 26]) * n
        prev = chunk_sig(prev, data)
        out += b"%x;chunk-signature=%s\r\n" % (n, prev.encode()) + data + (b"\r\n" if n else b"")
    if trailer is None:
        return out + b"\r\n"
    trailer_line = trailer + b"\n"  # the trailer string-to-sign hashes "name:value\n"
    sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", DATE, SCOPE, prev, hashlib.sha256(trailer_line).hexdigest()])
    tsig = hmac.new(signing_key(), sts.encode(), hashlib.sha256).hexdigest()
    return out + trailer + b"\r\nx-amz-trailer-signature:" + tsig.encode() + b"\r\n\r\n"


def main():
    # Range header.
    for i, v in enumerate(["bytes=0-9", "bytes=-5", "bytes=5-", "bytes=0-1,3-4", "BYTES=1-2",
                           "bytes=18446744073709551616-", "bytes = 1-2", "items=0-1"]):
        write("range", "seed%d" % i, v)

    # XML bodies.
    ns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    write("xml", "complete", '<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUpload%s>'
          '<Part><PartNumber>1</PartNumber><ETag>"a54357aff0632cce46d942af68356b38"</ETag>'
          '<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part><Part><PartNumber>2</PartNumber>'
          '<ETag>0c78aef83f66abc1fa1e8477f296d394</ETag></Part></CompleteMultipartUpload>' % ns)
    write("xml", "delete", '<Delete%s><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object>'
          '<Object><Key><![CDATA[c<d]]></Key><VersionId/></Object></Delete>' % ns)
    write("xml", "create_bucket", '<CreateBucketConfiguration%s><LocationConstraint>eu-west-3'
          '</LocationConstraint></CreateBucketConfiguration>' % ns)
    write("xml", "versioning", '<s3:VersioningConfiguration xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">'
          '<!-- c --><s3:Status>Suspended</s3:Status></s3:VersioningConfiguration>')
    write("xml", "doctype", '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><Delete><Object>'
          '<Key>&a;</Key></Object></Delete>')

    # Config.
    with open(os.path.join(HERE, "..", "..", "config", "coffre.example.json"), "rb") as f:
        write("config", "example", f.read())
    write("config", "minimal", '{"listen": "[::1]:0", "data_dir": "/tmp/x", "io_threads": 1}')

    # SigV4 header auth: the AWS examples, in fuzz_request.h's text format.
    auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
    write("sigv4", "get_range", "GET /test.txt\nHost: examplebucket.s3.amazonaws.com\nAuthorization: " + auth +
          "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
          "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\n"
          "Range: bytes=0-9\nx-amz-content-sha256: " + EMPTY_SHA + "\nx-amz-date: " + DATE + "\n")
    write("sigv4", "put", "PUT /test$file.text\nHost: examplebucket.s3.amazonaws.com\n"
          "Date: Fri, 24 May 2013 00:00:00 GMT\nAuthorization: " + auth +
          "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
          "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd\n"
          "x-amz-date: " + DATE + "\nx-amz-storage-class: REDUCED_REDUNDANCY\n"
          "x-amz-content-sha256: 44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n")
    write("sigv4", "list", "GET /?max-keys=2&prefix=J\nHost: examplebucket.s3.amazonaws.com\nAuthorization: " +
          auth + "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
          "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7\n"
          "x-amz-date: " + DATE + "\nx-amz-content-sha256: " + EMPTY_SHA + "\n")
    write("sigv4", "streaming", "PUT /examplebucket/chunkObject.txt\nHost: s3.amazonaws.com\n"
          "x-amz-date: " + DATE + "\nx-amz-storage-class: REDUCED_REDUNDANCY\nAuthorization: " + auth +
          "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
          "x-amz-decoded-content-length;x-amz-storage-class,"
          "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\n"
          "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\nContent-Encoding: aws-chunked\n"
          "x-amz-decoded-content-length: 66560\nContent-Length: 66824\n")

    # SigV2, which Authenticate hands over to: a header-signed request and a presigned URL, valid
    # under the same clock and key.
    v2_date = "Fri, 24 May 2013 00:00:00 GMT"
    v2_sts = "GET\n\n\n" + v2_date + "\nx-amz-meta-a:1\n/examplebucket/photos/puppy.jpg?acl"
    write("sigv4", "sigv2_header", "GET /examplebucket/photos/puppy.jpg?acl\nHost: s3.amazonaws.com\nDate: " +
          v2_date + "\nx-amz-meta-a: 1\nAuthorization: AWS AKIAIOSFODNN7EXAMPLE:" + sign_v2(v2_sts) + "\n")
    write("sigv4", "sigv2_presigned", "GET /examplebucket/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1369400000"
          "&Signature=" + urllib.parse.quote(sign_v2("GET\n\n\n1369400000\n/examplebucket/k"), safe="") +
          "\nHost: s3.amazonaws.com\n")

    # Presigned: the query string of the AWS example.
    write("presigned", "aws_example",
          "X-Amz-Algorithm=AWS4-HMAC-SHA256"
          "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
          "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
          "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")

    # aws-chunked: mode byte, piece byte, length byte, then the body.
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    tseed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
    write("chunked", "signed", b"\x00\x07\x00" + signed_chunks(seed, [8192, 10]))
    write("chunked", "signed_empty", b"\x00\x00\x00" + signed_chunks(seed, []))
    write("chunked", "signed_trailer",
          b"\x01\x05\x00" + signed_chunks(tseed, [8192, 3], b"x-amz-checksum-crc32c:sOO8/Q=="))
    write("chunked", "unsigned_trailer", b"\x02\x03\x0b" + b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n")

    # HTTP request streams: piece-size byte, then what a client sends.
    write("http_request", "get", b"\x10GET /bucket/key?versionId=null HTTP/1.1\r\nHost: localhost\r\n"
          b"Range: bytes=0-9\r\nAuthorization: x\r\n\r\n")
    write("http_request", "put_length", b"\x7fPUT /bucket/a%20b HTTP/1.1\r\nHost: bucket.localhost\r\n"
          b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\nhello")
    write("http_request", "chunked", b"\x03POST /bucket?delete HTTP/1.1\r\nHost: localhost\r\n"
          b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n")
    write("http_request", "smuggle", b"\x40POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n"
          b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n")
    write("http_request", "pipelined", b"\x20GET /?list-type=2&prefix=a HTTP/1.1\r\nHost: localhost\r\n\r\n"
          b"HEAD /b/c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")


if __name__ == "__main__":
    main()
