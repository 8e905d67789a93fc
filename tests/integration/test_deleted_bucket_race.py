"""A request that resolved its bucket, then outlived it, never writes or deletes in another tenant's
bucket that came after it.

Each replay holds a request of tenant A between its bucket lookup and its catalog write: the
request says `Expect: 100-continue`, and the daemon answers "100 Continue" only once the handler
asks for the body, after it resolved the bucket. Meanwhile A's bucket goes (deleted, or the whole
tenant shredded) and tenant B makes a bucket and stores a dossier in it. Then A sends its body.
A's request must fail with NoSuchBucket, and B's bucket must hold exactly what B put there.
"""

import os
import socket
import sqlite3

from harness import CoffreTestCase, gen_bytes, read_raw_http_response, unique_bucket, md5_b64


class DeletedBucketRaceTest(CoffreTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bob_creds = cls.daemon.create_tenant("bob")
        cls.bob = cls.daemon.client_for(cls.bob_creds)

    # -- helpers --

    def start_request(self, creds, method, path, query, body, extra_headers=None) -> socket.socket:
        """Sends a signed request's head with Expect: 100-continue and waits for the 100: from
        then on the handler holds its resolved bucket and is waiting for `body`."""
        headers = {"Expect": "100-continue", "Content-Length": str(len(body))}
        headers.update(extra_headers or {})
        req = self.daemon.sign(method, path, query, headers, body, creds=creds)
        sock = self.daemon.raw_socket(timeout=30)
        target = req.target
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items()) + "\r\n"
        sock.sendall(head.encode("latin-1"))
        interim = read_raw_http_response(sock, timeout=30, method=method)
        self.assertIsNotNone(interim, "the daemon closed the connection instead of asking for the body")
        self.assertEqual(interim.status, 100, interim)
        return sock

    def finish_request(self, sock: socket.socket, body: bytes, method: str):
        # In two writes, as a slow client would.
        half = len(body) // 2
        sock.sendall(body[:half])
        sock.sendall(body[half:])
        resp = read_raw_http_response(sock, timeout=30, method=method)
        sock.close()
        self.assertIsNotNone(resp, "no answer to the finished request")
        return resp

    def bob_bucket_with_dossier(self):
        name = unique_bucket("bob")
        self.bob.create_bucket(Bucket=name)
        dossier = gen_bytes(3000, seed=7)
        self.bob.put_object(Bucket=name, Key="dossier.pdf", Body=dossier, Metadata={"owner": "bob"})
        return name, dossier

    def assertBobUntouched(self, name, dossier):
        listed = self.bob.list_objects_v2(Bucket=name).get("Contents", [])
        self.assertEqual([o["Key"] for o in listed], ["dossier.pdf"])
        got = self.bob.get_object(Bucket=name, Key="dossier.pdf")
        self.assertEqual(got["Body"].read(), dossier)
        self.assertEqual(got["Metadata"], {"owner": "bob"})

    def assertNoSuchBucket(self, resp):
        self.assertEqual((resp.status, resp.error_code), (404, "NoSuchBucket"), resp)

    def bucket_ids(self) -> dict:
        with sqlite3.connect(f"file:{os.path.join(self.daemon.data_dir, 'catalog.db')}?mode=ro", uri=True) as db:
            return {name: bid for bid, name in db.execute("SELECT id, name FROM buckets")}

    # -- replays --

    def test_put_into_a_bucket_deleted_meanwhile(self):
        a_bucket = self.new_bucket(prefix="alice")
        a_id = self.bucket_ids()[a_bucket]
        body = gen_bytes(200_000, seed=1)
        sock = self.start_request(self.daemon.credentials, "PUT", f"/{a_bucket}/alice-new.pdf", [], body,
                                  {"x-amz-meta-owner": "alice"})
        self.s3.delete_bucket(Bucket=a_bucket)
        b_bucket, dossier = self.bob_bucket_with_dossier()
        resp = self.finish_request(sock, body, "PUT")
        self.assertBobUntouched(b_bucket, dossier)
        self.assertNoSuchBucket(resp)
        self.assertNotEqual(self.bucket_ids()[b_bucket], a_id, "a deleted bucket's id was handed out again")

    def test_put_over_a_key_in_a_bucket_deleted_meanwhile(self):
        a_bucket = self.new_bucket(prefix="alice")
        body = gen_bytes(200_000, seed=2)
        sock = self.start_request(self.daemon.credentials, "PUT", f"/{a_bucket}/dossier.pdf", [], body,
                                  {"x-amz-meta-owner": "alice"})
        self.s3.delete_bucket(Bucket=a_bucket)
        b_bucket, dossier = self.bob_bucket_with_dossier()
        resp = self.finish_request(sock, body, "PUT")
        self.assertBobUntouched(b_bucket, dossier)
        self.assertNoSuchBucket(resp)

    def test_delete_objects_in_a_bucket_deleted_meanwhile(self):
        a_bucket = self.new_bucket(prefix="alice")
        body = (b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>dossier.pdf</Key>'
                b'</Object></Delete>')
        sock = self.start_request(self.daemon.credentials, "POST", f"/{a_bucket}", [("delete", "")], body,
                                  {"Content-MD5": md5_b64(body)})
        self.s3.delete_bucket(Bucket=a_bucket)
        b_bucket, dossier = self.bob_bucket_with_dossier()
        resp = self.finish_request(sock, body, "POST")
        self.assertBobUntouched(b_bucket, dossier)
        self.assertNoSuchBucket(resp)

    def test_requests_of_a_tenant_shredded_meanwhile(self):
        carol_creds = self.daemon.create_tenant("carol")
        carol = self.daemon.client_for(carol_creds)
        c_bucket = unique_bucket("carol")
        carol.create_bucket(Bucket=c_bucket)
        c_id = self.bucket_ids()[c_bucket]
        put_body = gen_bytes(150_000, seed=3)
        put = self.start_request(carol_creds, "PUT", f"/{c_bucket}/dossier.pdf", [], put_body)
        del_body = (b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>dossier.pdf</Key>'
                    b'</Object></Delete>')
        delete = self.start_request(carol_creds, "POST", f"/{c_bucket}", [("delete", "")], del_body,
                                    {"Content-MD5": md5_b64(del_body)})
        self.daemon.run_cli("tenant", "shred", "carol", "--confirm", "carol", "--data-dir", self.daemon.data_dir)
        self.assertNotIn(c_bucket, self.bucket_ids())
        b_bucket, dossier = self.bob_bucket_with_dossier()
        delete_resp = self.finish_request(delete, del_body, "POST")
        put_resp = self.finish_request(put, put_body, "PUT")
        self.assertBobUntouched(b_bucket, dossier)
        # The shredded tenant's keys are gone too, so its PUT may be refused for that first; it
        # must not succeed, and its DeleteObjects must say the bucket is gone.
        self.assertNoSuchBucket(delete_resp)
        self.assertNotEqual(put_resp.status, 200, put_resp)
        self.assertNotEqual(self.bucket_ids()[b_bucket], c_id, "a shredded tenant's bucket id was handed out again")


if __name__ == "__main__":
    import unittest
    unittest.main()
