"""The tests' own hands on the S3 server (boto3, not framewire's client): make a bucket, upload, delete,
read back. Usage: s3.py ENDPOINT create BUCKET | put BUCKET KEY FILE | delete BUCKET KEY | dump BUCKET [PREFIX].
`put` prints the ETag (without quotes) and the last-modified time in Unix ms; `dump` prints KEY BASE64-BODY
per object under the prefix, in key order.
"""
import base64
import sys

import boto3

endpoint, op, *args = sys.argv[1:]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
    region_name="us-east-1",
)
if op == "create":
    s3.create_bucket(Bucket=args[0])
elif op == "put":
    bucket, key, path = args
    with open(path, "rb") as f:
        s3.put_object(Bucket=bucket, Key=key, Body=f.read())
    head = s3.head_object(Bucket=bucket, Key=key)
    print(head["ETag"].strip('"'), int(head["LastModified"].timestamp() * 1000))
elif op == "delete":
    s3.delete_object(Bucket=args[0], Key=args[1])
elif op == "dump":
    prefix = args[1] if len(args) > 1 else ""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args[0], Prefix=prefix):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=args[0], Key=o["Key"])["Body"].read()
            print(o["Key"], base64.b64encode(body).decode())
else:
    sys.exit(f"unknown operation {op}")
