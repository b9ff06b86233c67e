# No secret values here: secrets live only in Secret Manager.

output "classify_http_url" {
  description = "HTTPS URL of classify_http (needs an identity token unless allow_unauthenticated_http)."
  value       = google_cloudfunctions2_function.function["classify_http"].service_config[0].uri
}

output "ingest_review_url" {
  description = "Cloud Run URL of ingest_review (called only by the push subscription)."
  value       = google_cloudfunctions2_function.function["ingest_review"].service_config[0].uri
}

output "function_names" {
  description = "Deployed Cloud Function names, by entry point."
  value = {
    classify_http     = google_cloudfunctions2_function.function["classify_http"].name
    ingest_review     = google_cloudfunctions2_function.function["ingest_review"].name
    on_review_labeled = google_cloudfunctions2_function.function["on_review_labeled"].name
  }
}

output "ingest_topic" {
  description = "Publish reviews here (full topic ID)."
  value       = google_pubsub_topic.ingest.id
}

output "followup_topic" {
  description = "Topic on_review_labeled publishes follow-ups to (full topic ID)."
  value       = google_pubsub_topic.followup.id
}

output "dead_letter_topic" {
  description = "Dead-letter topic of the ingest push subscription (full topic ID)."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription" {
  description = "Pull subscription that keeps dead letters for inspection."
  value       = google_pubsub_subscription.dead_letter_hold.name
}

output "ingest_subscription" {
  description = "Push subscription that delivers the ingest topic to ingest_review."
  value       = google_pubsub_subscription.ingest_push.name
}

output "firestore_database" {
  description = "Firestore database the functions use."
  value       = local.firestore_database
}

output "source_bucket" {
  description = "Bucket holding the function source archives."
  value       = google_storage_bucket.source.name
}

output "service_accounts" {
  description = "Service account emails, by role."
  value = {
    classify_http     = google_service_account.function["classify_http"].email
    ingest_review     = google_service_account.function["ingest_review"].email
    on_review_labeled = google_service_account.function["on_review_labeled"].email
    push_invoker      = google_service_account.pubsub_invoker.email
    eventarc_invoker  = google_service_account.eventarc_invoker.email
    build             = google_service_account.build.email
  }
}

output "backfill" {
  description = "What the Dataflow backfill command needs (null unless enable_backfill): worker service account and temp bucket."
  value = var.enable_backfill ? {
    service_account_email = google_service_account.dataflow_worker[0].email
    temp_location         = "gs://${google_storage_bucket.dataflow[0].name}/temp"
    staging_location      = "gs://${google_storage_bucket.dataflow[0].name}/staging"
  } : null
}
