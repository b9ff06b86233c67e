# Pub/Sub: ingestion, follow-up and dead-letter topics; the owned push
# subscription that feeds ingest_review with retry + dead-letter policy; and a
# pull subscription that holds dead letters for inspection.
#
# Why the push subscription is defined here and not by the function: a gen2
# function's Pub/Sub event_trigger creates its own Eventarc-managed
# subscription, and the google provider cannot attach a dead_letter_policy (or
# a custom retry policy) to it. Owning the subscription gives bounded delivery
# attempts, exponential backoff and a dead-letter topic.

resource "google_pubsub_topic" "ingest" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption is sufficient for review texts in this deployment; CMEK would add a KMS key ring and key rotation that the project does not otherwise run.
  name    = local.names.ingest_topic
  project = var.project_id
  labels  = var.labels

  depends_on = [time_sleep.apis_enabled]
}

resource "google_pubsub_topic" "followup" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption is sufficient for follow-up notices; see the ingest topic.
  name    = local.names.followup_topic
  project = var.project_id
  labels  = var.labels

  depends_on = [time_sleep.apis_enabled]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption is sufficient for dead letters; see the ingest topic.
  name    = local.names.dead_letter_topic
  project = var.project_id
  labels  = var.labels

  depends_on = [time_sleep.apis_enabled]
}

resource "google_pubsub_subscription" "ingest_push" {
  name    = local.names.ingest_subscription
  project = var.project_id
  topic   = google_pubsub_topic.ingest.id
  labels  = var.labels

  # For push delivery this is also the HTTP request timeout.
  ack_deadline_seconds = local.names.ack_deadline_seconds

  push_config {
    # The path names the topic so the Functions Framework sets the CloudEvent
    # source to //pubsub.googleapis.com/projects/<project>/topics/<topic>.
    push_endpoint = "${google_cloudfunctions2_function.function["ingest_review"].service_config[0].uri}/projects/${var.project_id}/topics/${google_pubsub_topic.ingest.name}"

    oidc_token {
      service_account_email = google_service_account.pubsub_invoker.email
      audience              = google_cloudfunctions2_function.function["ingest_review"].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "${local.names.min_retry_backoff_seconds}s"
    maximum_backoff = "${local.names.max_retry_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = local.names.max_delivery_attempts
  }

  # Never expire for inactivity.
  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_service_iam_member.pubsub_invoker,
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_service_account_iam_member.pubsub_token_creator,
  ]
}

resource "google_pubsub_subscription" "dead_letter_hold" {
  name    = local.names.dead_letter_subscription
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.id
  labels  = var.labels

  # Dead letters are pulled by a human (or a replay tool), not by a service.
  ack_deadline_seconds       = local.names.ack_deadline_seconds
  message_retention_duration = "${local.names.dead_letter_retention_seconds}s"
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}
