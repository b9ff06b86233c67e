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

  build_roles = toset([
    "roles/artifactregistry.writer",
    "roles/logging.logWriter",
  ])
}

# ------------------------------------------------------------ Accounts -------

resource "google_service_account" "function" {
  for_each = local.function_sa_ids

  project      = var.project_id
  account_id   = each.value
  display_name = "reviewsense ${each.key} runtime"

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "pubsub_invoker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push-invoker"
  display_name = "reviewsense ingest push subscription invoker"

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "eventarc_invoker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-eventarc"
  display_name = "reviewsense Firestore trigger (Eventarc) invoker"

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "reviewsense Cloud Build for functions"

  depends_on = [google_project_service.enabled]
}

# ------------------------------------------------------- Function runtime ----

resource "google_project_iam_member" "datastore_user" {
  for_each = local.firestore_users

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.function[each.key].email}"
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
  #checkov:skip=CKV_GCP_102:allUsers is granted only when allow_unauthenticated_http = true (count guard, off by default); the API is then protected by API_KEY (see check "public_http_has_api_key").
  count = var.allow_unauthenticated_http ? 1 : 0

  project  = var.project_id
  location = google_cloudfunctions2_function.classify_http.location
  service  = google_cloudfunctions2_function.classify_http.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_service_iam_member" "classify_invokers" {
  for_each = toset(var.http_invoker_members)

  project  = var.project_id
  location = google_cloudfunctions2_function.classify_http.location
  service  = google_cloudfunctions2_function.classify_http.name
  role     = "roles/run.invoker"
  member   = each.value
}

# Warn (at plan) when the API would be public without an API key.
check "public_http_has_api_key" {
  assert {
    condition     = !var.allow_unauthenticated_http || var.enable_api_key
    error_message = "allow_unauthenticated_http is true but enable_api_key is false: classify_http would be open to anyone with no API key."
  }
}

# ingest_review: only the push subscription's OIDC identity may call it.
resource "google_cloud_run_service_iam_member" "pubsub_invoker" {
  project  = var.project_id
  location = google_cloudfunctions2_function.ingest_review.location
  service  = google_cloudfunctions2_function.ingest_review.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.pubsub_invoker.email}"
}

# on_review_labeled: only the Eventarc trigger identity may call it.
resource "google_cloud_run_service_iam_member" "eventarc_invoker" {
  project  = var.project_id
  location = google_cloudfunctions2_function.on_review_labeled.location
  service  = google_cloudfunctions2_function.on_review_labeled.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.eventarc_invoker.email}"
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

resource "google_project_iam_member" "build" {
  for_each = local.build_roles

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_source_reader" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}
