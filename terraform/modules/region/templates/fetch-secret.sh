#!/bin/sh
# fetch-secret REGION PARAMETER FILE: an SSM SecureString into FILE (0600), read with the node's
# instance role. Private keys reach nodes this way, not in user data, which anyone who may
# describe the instance or its launch template can read.
set -eu
if ! command -v aws >/dev/null 2>&1; then
  apt-get update -q >/dev/null && apt-get install -y -q awscli >/dev/null
fi
umask 077
# Into a temporary file first: a failed fetch must not leave an empty key where one is expected.
trap 'rm -f "$3.part"' EXIT
aws ssm get-parameter --region "$1" --name "$2" --with-decryption \
  --query Parameter.Value --output text > "$3.part"
mv "$3.part" "$3"
