# Source archive: exactly what the functions run, nothing else.
#
# The zip is built from the repository root. Only the entries in
# local.source_allow are deployed; everything else at the top level (tests/,
# tools/, bench/, local/, data/, docs/, terraform/, hidden dirs, virtualenvs,
# stray files) is excluded. The exclude list is the complement of the allow
# list over the top-level names found by a shallow scan (files up to two dirs
# down; a deeper scan walks every virtualenv and is far too slow at plan time),
# plus a fixed deny list that also covers dirs whose files sit deeper.
# tests/test_terraform.py re-does this on the checkout and fails if anything
# outside the allow list would ship.

locals {
  source_root = "${path.module}/.."

  source_allow = ["main.py", "requirements.txt", "functions", "shared", "model_artifacts"]

  source_deny = [
    ".*", "**/.*", "**/__pycache__", "**/*.pyc",
    "tests", "tools", "bench", "local", "data", "docs", "terraform", "training", "build",
  ]

  # Top-level names in the checkout (dirs seen through their files up to three levels down).
  source_top_level = toset(concat(
    tolist(fileset(local.source_root, "*")),
    [for f in fileset(local.source_root, "*/*") : split("/", f)[0]],
    [for f in fileset(local.source_root, "*/*/*") : split("/", f)[0]],
  ))

  source_excludes = sort(distinct(concat(
    local.source_deny,
    local.unserved_artifacts, # e.g. the 112 MB accurate model when every function serves the fast one
    [for name in local.source_top_level : name if !contains(local.source_allow, name)],
  )))
}

# A resource, not a data source: the zip is built at apply, so a plan made on one machine applies on another.
resource "archive_file" "source" {
  type             = "zip"
  source_dir       = local.source_root
  excludes         = local.source_excludes
  output_path      = "${path.module}/.build/function-source.zip"
  output_file_mode = "0644"
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only the function source zip; reads/writes are covered by Cloud Audit Logs and a second log bucket would need its own log bucket.
  name                        = "${var.project_id}-${var.name_prefix}-source"
  project                     = var.project_id
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = var.labels

  versioning {
    enabled = true
  }

  # Objects are named by content hash, so an object never gets a newer version (num_newer_versions would keep
  # every archive forever); Terraform deletes the previous archive on each deploy, which versioning keeps as
  # noncurrent: those go after a few days.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.source_archive_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [time_sleep.apis_enabled]
}

resource "google_storage_bucket_object" "source" {
  # Content-addressed name: a code change uploads a new object, which
  # redeploys the functions.
  name         = "source/function-source-${archive_file.source.output_md5}.zip"
  bucket       = google_storage_bucket.source.name
  source       = archive_file.source.output_path
  content_type = "application/zip"
}
