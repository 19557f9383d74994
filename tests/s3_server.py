"""A real S3 server for tests: moto's ``moto_server`` on 127.0.0.1, with IAM checks on.

The server lets its first few requests through unsigned (``INITIAL_NO_AUTH_ACTION_COUNT``)
to create a user with an access key and the bucket, then checks every request's
signature like S3 does: a wrong secret or missing credentials are refused, as they are
by a real object store. Clients reach it through the standard variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...) that :meth:`S3Server.env` returns.
No request leaves loopback: the instance metadata service is off in that environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BUCKET = "rt3d-runs"
# Requests the bootstrap makes unsigned: create user, its policy, its key, the bucket.
_BOOTSTRAP_REQUESTS = 4


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different loopback ports free now (all bound at once, so that the OS
    cannot hand the same one out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class S3Server:
    endpoint: str
    key_id: str
    secret: str
    process: subprocess.Popen | None = None
    bucket: str = BUCKET

    def env(self, **changes: str | None) -> dict[str, str]:
        """The variables an S3 client needs (``changes``: overrides; None removes)."""
        env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        for key, value in changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def uri(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_s3_server(log: Path, host: str = "127.0.0.1") -> S3Server:
    """Start ``moto_server`` on a free loopback port, create a user and the bucket."""
    port = free_port()
    endpoint = f"http://{host}:{port}"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_BOOTSTRAP_REQUESTS)}
    server = Path(sys.executable).with_name("moto_server")
    with open(log, "ab") as out:
        process = subprocess.Popen([str(server), "-H", host, "-p", str(port)], env=env,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                tail = log.read_text()[-2000:]
                raise RuntimeError(f"moto_server did not start: {tail}") from None
            time.sleep(0.1)
    import boto3

    boot = {"endpoint_url": endpoint, "region_name": "us-east-1",
            "aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
    iam = boto3.client("iam", **boot)
    iam.create_user(UserName="rt3d")
    iam.put_user_policy(UserName="rt3d", PolicyName="all", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="rt3d")["AccessKey"]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id=key["AccessKeyId"],
                      aws_secret_access_key=key["SecretAccessKey"])
    s3.create_bucket(Bucket=BUCKET)
    return S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], process)
