# The backfill pipeline on Dataflow (backfill/README.md): a worker identity and a temp/staging bucket, created only
# with enable_backfill. Least privilege: dataflow.worker (the job's own bookkeeping; no narrower resource),
# Firestore read/write conditioned on our database, read-write on its own bucket, read on the input buckets named.

resource "google_service_account" "dataflow_worker" {
  count = var.enable_backfill ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-backfill"
  display_name = "reviewsense backfill (Dataflow workers)"

  depends_on = [time_sleep.apis_enabled]
}

resource "google_storage_bucket" "dataflow" {
  #checkov:skip=CKV_GCP_62:Holds only Dataflow staging and temp files, deleted after a week; access is in Cloud Audit Logs.
  #checkov:skip=CKV_GCP_78:Staging files are rewritten per job; versioning would only keep garbage.
  count = var.enable_backfill ? 1 : 0

  name                        = "${var.project_id}-${var.name_prefix}-dataflow"
  project                     = var.project_id
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = var.labels

  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [time_sleep.apis_enabled]
}

resource "google_project_iam_member" "dataflow_worker" {
  count = var.enable_backfill ? 1 : 0

  project = var.project_id
  role    = "roles/dataflow.worker"
  member  = "serviceAccount:${google_service_account.dataflow_worker[0].email}"
}

resource "google_project_iam_member" "dataflow_firestore" {
  count = var.enable_backfill ? 1 : 0

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.dataflow_worker[0].email}"

  condition {
    title       = "reviewsense-database-only"
    description = "Only the Firestore database the functions use."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${local.firestore_database}\""
  }
}

resource "google_storage_bucket_iam_member" "dataflow_temp" {
  count = var.enable_backfill ? 1 : 0

  bucket = google_storage_bucket.dataflow[0].name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.dataflow_worker[0].email}"
}

resource "google_storage_bucket_iam_member" "dataflow_inputs" {
  for_each = var.enable_backfill ? toset(var.backfill_input_buckets) : toset([])

  bucket = each.value
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.dataflow_worker[0].email}"
}
