# Large payloads and results (issue 9's s3 backend): private, encrypted, expiring.

resource "aws_s3_bucket" "payloads" {
  #checkov:skip=CKV_AWS_18:payloads live for days; request logging is the operator's choice of log bucket
  #checkov:skip=CKV2_AWS_62:nothing consumes events from this bucket
  #checkov:skip=CKV_AWS_144:transient payloads, not data to keep: no cross-region replica
  #checkov:skip=CKV_AWS_21:versioning would keep deleted payloads past their expiry
  bucket_prefix = "${local.prefix}-payloads-"
  force_destroy = true
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "payloads" {
  bucket                  = aws_s3_bucket.payloads.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "payloads" {
  bucket = aws_s3_bucket.payloads.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "payloads" {
  bucket = aws_s3_bucket.payloads.id

  rule {
    id     = "expire-payloads"
    status = "Enabled"
    filter {}
    expiration {
      days = var.payload_expiry_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1 # an aborted upload leaves nothing behind
    }
  }
}
