# The three functions. Sizing comes only from the chosen tier (local.tier),
# names and entry points from names.json (local.names / local.function_names).

# --- classify_http: HTTP API, not public unless allow_unauthenticated_http. ---
resource "google_cloudfunctions2_function" "classify_http" {
  #checkov:skip=CKV_GCP_124:classify_http is the internet-facing HTTP API, so ingress defaults to ALLOW_ALL (var.http_ingress can narrow it); callers are still authenticated by IAM run.invoker unless allow_unauthenticated_http, and by API_KEY when enabled.
  name        = local.function_names.classify_http
  project     = var.project_id
  location    = var.region
  description = "reviewsense: classify review texts over HTTP."
  labels      = var.labels

  build_config {
    runtime         = "python311"
    entry_point     = local.names.functions.classify_http
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.tier.classify_http.memory
    available_cpu                    = local.tier.classify_http.cpu
    max_instance_request_concurrency = local.tier.classify_http.concurrency
    min_instance_count               = coalesce(var.http_min_instances, local.tier.classify_http.min_instances)
    max_instance_count               = local.tier.classify_http.max_instances
    timeout_seconds                  = local.tier.classify_http.timeout_seconds
    ingress_settings                 = var.http_ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["classify_http"].email

    environment_variables = merge(local.common_env, local.function_model_env.classify_http, {
      ORT_INTRA_OP_THREADS = tostring(local.ort_threads.classify_http)
    })

    dynamic "secret_environment_variables" {
      for_each = var.enable_api_key ? [google_secret_manager_secret.api_key[0].secret_id] : []
      content {
        key        = "API_KEY"
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = var.secret_version
      }
    }
  }

  lifecycle {
    precondition {
      condition     = contains(keys(var.tiers), var.function_tiers.classify_http)
      error_message = "function_tiers.classify_http must name a key of var.tiers."
    }
    precondition {
      condition     = local.model_fits_tier.classify_http
      error_message = "function_models.classify_http serves the accurate model, which needs a tier of at least 2Gi (e.g. \"accurate\")."
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source_reader,
    google_secret_manager_secret_iam_member.api_key,
  ]
}

# --- ingest_review: HTTP-deployed, invoked only by the push subscription. ---
# No event_trigger on purpose: a gen2 Pub/Sub trigger creates its own
# subscription, which cannot be given a dead-letter policy from Terraform.
# pubsub.tf owns the subscription and pushes here with an OIDC token; the
# Functions Framework turns the push body into the messagePublished CloudEvent.
resource "google_cloudfunctions2_function" "ingest_review" {
  name        = local.function_names.ingest_review
  project     = var.project_id
  location    = var.region
  description = "reviewsense: classify reviews published to the ingestion topic (Pub/Sub push)."
  labels      = var.labels

  build_config {
    runtime         = "python311"
    entry_point     = local.names.functions.ingest_review
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.tier.ingest_review.memory
    available_cpu                    = local.tier.ingest_review.cpu
    max_instance_request_concurrency = local.tier.ingest_review.concurrency
    min_instance_count               = local.tier.ingest_review.min_instances
    max_instance_count               = local.tier.ingest_review.max_instances
    timeout_seconds                  = local.tier.ingest_review.timeout_seconds
    ingress_settings                 = var.event_ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["ingest_review"].email

    environment_variables = merge(local.common_env, local.function_model_env.ingest_review, {
      ORT_INTRA_OP_THREADS = tostring(local.ort_threads.ingest_review)
    })
  }

  lifecycle {
    precondition {
      condition     = contains(keys(var.tiers), var.function_tiers.ingest_review)
      error_message = "function_tiers.ingest_review must name a key of var.tiers."
    }
    precondition {
      condition     = local.model_fits_tier.ingest_review
      error_message = "function_models.ingest_review serves the accurate model, which needs a tier of at least 2Gi (e.g. \"accurate\")."
    }
    precondition {
      condition     = local.tier.ingest_review.timeout_seconds <= local.names.ack_deadline_seconds
      error_message = "The ingest_review tier's timeout_seconds must not exceed ack_deadline_seconds in shared/names.json (the push request would be redelivered while still running)."
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source_reader,
  ]
}

# --- on_review_labeled: Firestore document.written on reviews/{review_id}. ---
resource "google_cloudfunctions2_function" "on_review_labeled" {
  name        = local.function_names.on_review_labeled
  project     = var.project_id
  location    = var.region
  description = "reviewsense: act on labeled reviews (follow-up topic, optional webhook)."
  labels      = var.labels

  build_config {
    runtime         = "python311"
    entry_point     = local.names.functions.on_review_labeled
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.tier.on_review_labeled.memory
    available_cpu                    = local.tier.on_review_labeled.cpu
    max_instance_request_concurrency = local.tier.on_review_labeled.concurrency
    min_instance_count               = local.tier.on_review_labeled.min_instances
    max_instance_count               = local.tier.on_review_labeled.max_instances
    timeout_seconds                  = local.tier.on_review_labeled.timeout_seconds
    ingress_settings                 = var.event_ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function["on_review_labeled"].email

    environment_variables = merge(local.common_env, local.function_model_env.on_review_labeled, {
      ORT_INTRA_OP_THREADS = tostring(local.ort_threads.on_review_labeled)
    })

    dynamic "secret_environment_variables" {
      for_each = var.enable_followup_webhook ? [google_secret_manager_secret.followup_webhook_url[0].secret_id] : []
      content {
        key        = "FOLLOWUP_WEBHOOK_URL"
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = var.secret_version
      }
    }
  }

  event_trigger {
    # Eventarc Firestore triggers must live in the database's location.
    trigger_region        = var.firestore_location
    event_type            = "google.cloud.firestore.document.v1.written"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.eventarc_invoker.email

    event_filters {
      attribute = "database"
      value     = local.firestore_database
    }

    event_filters {
      attribute = "document"
      value     = "${local.names.reviews_collection}/{review_id}"
      operator  = "match-path-pattern"
    }
  }

  lifecycle {
    precondition {
      condition     = contains(keys(var.tiers), var.function_tiers.on_review_labeled)
      error_message = "function_tiers.on_review_labeled must name a key of var.tiers."
    }
    precondition {
      condition     = local.model_fits_tier.on_review_labeled
      error_message = "function_models.on_review_labeled serves the accurate model, which needs a tier of at least 2Gi (e.g. \"accurate\")."
    }
    precondition {
      condition     = var.followup_unsure_min < var.followup_threshold && var.followup_threshold <= var.followup_high_priority
      error_message = "Need followup_unsure_min < followup_threshold <= followup_high_priority."
    }
    precondition {
      condition     = local.tier.on_review_labeled.timeout_seconds <= 540
      error_message = "Event-driven functions allow at most 540 s: pick a tier with timeout_seconds <= 540 for on_review_labeled."
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_source_reader,
    google_project_iam_member.eventarc_receiver,
    google_pubsub_topic_iam_member.followup_publisher,
    google_secret_manager_secret_iam_member.followup_webhook_url,
  ]
}
