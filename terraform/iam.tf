# Identities and least-privilege grants.
#
#   <prefix>-fn-classify  classify_http runtime: API key secret (when enabled).
#   <prefix>-fn-ingest    ingest_review runtime: Firestore.
#   <prefix>-fn-labeled   on_review_labeled runtime: Firestore, publish to the
#                         follow-up topic only, webhook secret (when enabled).
#   <prefix>-push-invoker OIDC identity of the ingest push subscription:
#                         run.invoker on ingest_review's service only.
#   <prefix>-eventarc     identity of the Firestore trigger: Eventarc event
#                         receiver, run.invoker on on_review_labeled only.
#   <prefix>-build        Cloud Build identity for the function builds.

locals {
  function_sa_ids = {
    classify_http     = "${var.name_prefix}-fn-classify"
    ingest_review     = "${var.name_prefix}-fn-ingest"
    on_review_labeled = "${var.name_prefix}-fn-labeled"
  }

  # Functions that read/write Firestore (roles/datastore.user). classify_http
  # only classifies the texts it is sent and stores nothing.
  firestore_users = toset(["ingest_review", "on_review_labeled"])

}

# ------------------------------------------------------------ Accounts -------

resource "google_service_account" "function" {
  for_each = local.function_sa_ids

  project      = var.project_id
  account_id   = each.value
  display_name = "reviewsense ${each.key} runtime"

  depends_on = [time_sleep.apis_enabled]
}

resource "google_service_account" "pubsub_invoker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push-invoker"
  display_name = "reviewsense ingest push subscription invoker"

  depends_on = [time_sleep.apis_enabled]
}

resource "google_service_account" "eventarc_invoker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-eventarc"
  display_name = "reviewsense Firestore trigger (Eventarc) invoker"

  depends_on = [time_sleep.apis_enabled]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "reviewsense Cloud Build for functions"

  depends_on = [time_sleep.apis_enabled]
}

# ------------------------------------------------------- Function runtime ----

# Firestore has no per-database IAM resource; an IAM condition narrows the project grant to our database.
resource "google_project_iam_member" "datastore_user" {
  for_each = local.firestore_users

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"

  condition {
    title       = "reviewsense-database-only"
    description = "Only the Firestore database the functions use."
    expression  = "resource.name == \"projects/${var.project_id}/databases/${local.firestore_database}\""
  }
}

resource "google_pubsub_topic_iam_member" "followup_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.followup.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.function["on_review_labeled"].email}"
}

resource "google_secret_manager_secret_iam_member" "api_key" {
  count = var.enable_api_key ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.api_key[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function["classify_http"].email}"
}

resource "google_secret_manager_secret_iam_member" "followup_webhook_url" {
  count = var.enable_followup_webhook ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.followup_webhook_url[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function["on_review_labeled"].email}"
}

# ------------------------------------------------------------- Invokers ------

# classify_http: public only when the variable says so.
resource "google_cloud_run_service_iam_member" "classify_public" {
  #checkov:skip=CKV_GCP_102:allUsers is granted only when allow_unauthenticated_http = true (count guard, off by default), which variable validation refuses without enable_api_key.
  count = var.allow_unauthenticated_http ? 1 : 0

  project  = var.project_id
  location = google_cloudfunctions2_function.function["classify_http"].location
  service  = google_cloudfunctions2_function.function["classify_http"].name
  role     = "roles/run.invoker"
  member   = "allUsers"

  # A replaced function is a new Cloud Run service, without this binding: make it again.
  lifecycle {
    replace_triggered_by = [google_cloudfunctions2_function.function["classify_http"].id]
  }
}

resource "google_cloud_run_service_iam_member" "classify_invokers" {
  for_each = toset(var.http_invoker_members)

  project  = var.project_id
  location = google_cloudfunctions2_function.function["classify_http"].location
  service  = google_cloudfunctions2_function.function["classify_http"].name
  role     = "roles/run.invoker"
  member   = each.value

  # A replaced function is a new Cloud Run service, without this binding: make it again.
  lifecycle {
    replace_triggered_by = [google_cloudfunctions2_function.function["classify_http"].id]
  }
}

# ingest_review: only the push subscription's OIDC identity may call it.
resource "google_cloud_run_service_iam_member" "pubsub_invoker" {
  project  = var.project_id
  location = google_cloudfunctions2_function.function["ingest_review"].location
  service  = google_cloudfunctions2_function.function["ingest_review"].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.pubsub_invoker.email}"

  # A replaced function is a new Cloud Run service, without this binding: make it again.
  lifecycle {
    replace_triggered_by = [google_cloudfunctions2_function.function["ingest_review"].id]
  }
}

# on_review_labeled: only the Eventarc trigger identity may call it.
resource "google_cloud_run_service_iam_member" "eventarc_invoker" {
  project  = var.project_id
  location = google_cloudfunctions2_function.function["on_review_labeled"].location
  service  = google_cloudfunctions2_function.function["on_review_labeled"].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.eventarc_invoker.email}"

  # A replaced function is a new Cloud Run service, without this binding: make it again.
  lifecycle {
    replace_triggered_by = [google_cloudfunctions2_function.function["on_review_labeled"].id]
  }
}

# Eventarc requires the trigger identity to hold eventReceiver on the project
# (the role has no narrower resource to bind to).
resource "google_project_iam_member" "eventarc_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.eventarc_invoker.email}"
}

# ----------------------------------------------------- Pub/Sub service agent --

# The agent mints the OIDC tokens for push (and Eventarc) deliveries. Needed on
# projects whose agent predates April 2021; granted on these two accounts only.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  for_each = {
    push     = google_service_account.pubsub_invoker.name
    eventarc = google_service_account.eventarc_invoker.name
  }

  service_account_id = each.value
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# Dead lettering: the agent publishes to the dead-letter topic ...
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

# ... and acknowledges the forwarded message on the source subscription.
resource "google_pubsub_subscription_iam_member" "ingest_dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.ingest_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# ---------------------------------------------------------------- Build ------

# Logs of the builds: no narrower resource to grant it on.
resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

# Build images go to our repository only (registry.tf), not to every repository of the project.
resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# Cloud Functions copies the uploaded source into its own gcf-v2-sources-<project number>-<region> bucket and the
# build reads it from there. That bucket does not exist before the first deploy, so it cannot be named as a resource:
# the provider's gen2 examples grant storage.objectAdmin project-wide; we grant objectViewer, conditioned on the
# two buckets the build reads.
resource "google_project_iam_member" "build_source_reader" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "function-sources-only"
    description = "The gcf-v2-sources bucket of this region and our source bucket."
    expression = join(" || ", [
      "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}\")",
      "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.source.name}\")",
    ])
  }
}

# IAM is eventually consistent: a function deployed right after its grants can fail its first build or start.
resource "time_sleep" "iam_propagated" {
  create_duration = "60s"

  triggers = {
    # Wait again whenever a grant the functions need changes.
    grants = sha1(jsonencode([
      [for m in google_project_iam_member.datastore_user : m.id],
      google_pubsub_topic_iam_member.followup_publisher.id,
      [for m in google_secret_manager_secret_iam_member.api_key : m.id],
      [for m in google_secret_manager_secret_iam_member.followup_webhook_url : m.id],
      google_project_iam_member.eventarc_receiver.id,
      google_project_iam_member.build_log_writer.id,
      google_artifact_registry_repository_iam_member.build_writer.id,
      google_project_iam_member.build_source_reader.id,
      google_storage_bucket_iam_member.build_source_bucket_reader.id,
      [for m in google_service_account_iam_member.pubsub_token_creator : m.id],
      [for v in google_secret_manager_secret_version.api_key : v.id],
      [for v in google_secret_manager_secret_version.followup_webhook_url : v.id],
    ]))
  }
}

resource "google_storage_bucket_iam_member" "build_source_bucket_reader" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

moved {
  from = google_storage_bucket_iam_member.build_source_reader
  to   = google_storage_bucket_iam_member.build_source_bucket_reader
}

moved {
  from = google_project_iam_member.build["roles/logging.logWriter"]
  to   = google_project_iam_member.build_log_writer
}
