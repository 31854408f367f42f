"""Data API fixtures: a real S3-compatible server (moto's server mode) on 127.0.0.1."""
import socket

import boto3
import pytest
from moto.server import ThreadedMotoServer

BUCKET = "algostore-test-bucket"
SECRET = "moto-secret-key-do-not-show"


@pytest.fixture(scope="module")
def s3_server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id="moto-key", aws_secret_access_key=SECRET)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="inbox/a.txt", Body=b"from the outside store")
    s3.put_object(Bucket=BUCKET, Key="inbox/sub/b.txt", Body=b"deeper")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/c.txt", Body=b"out of reach")
    yield url, s3
    server.stop()
