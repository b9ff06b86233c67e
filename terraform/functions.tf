# The three functions, one shape (for_each over local.functions). Sizing comes only from the chosen tier
# (local.tier), names and entry points from names.json (local.names / local.function_names).
#
# ingest_review has no event_trigger on purpose: a gen2 Pub/Sub trigger creates its own subscription, which cannot
# be given a dead-letter policy from Terraform. pubsub.tf owns the subscription and pushes here with an OIDC token.
# on_review_labeled is triggered by Firestore document.written on reviews/{review_id}.

locals {
  functions = {
    classify_http = {
      description   = "reviewsense: classify review texts over HTTP."
      ingress       = var.http_ingress
      min_instances = coalesce(var.http_min_instances, local.tier.classify_http.min_instances)
      # tomap(): an object with a key and an empty one are not one type, so a bare conditional would not plan
      secrets = var.enable_api_key ? tomap({ API_KEY = google_secret_manager_secret.api_key[0].secret_id }) : tomap({})
    }
    ingest_review = {
      description   = "reviewsense: classify reviews published to the ingestion topic (Pub/Sub push)."
      ingress       = var.event_ingress
      min_instances = local.tier.ingest_review.min_instances
      secrets       = tomap({})
    }
    on_review_labeled = {
      description   = "reviewsense: act on labeled reviews (follow-up topic, optional webhook)."
      ingress       = var.event_ingress
      min_instances = local.tier.on_review_labeled.min_instances
      secrets = var.enable_followup_webhook ? tomap({
        FOLLOWUP_WEBHOOK_URL = google_secret_manager_secret.followup_webhook_url[0].secret_id
      }) : tomap({})
    }
  }
}

resource "google_cloudfunctions2_function" "function" {
  #checkov:skip=CKV_GCP_124:classify_http is the internet-facing HTTP API, so its ingress defaults to ALLOW_ALL (var.http_ingress can narrow it); callers are still authenticated by IAM run.invoker unless allow_unauthenticated_http, which requires API_KEY. The event functions default to ALLOW_INTERNAL_ONLY.
  for_each = local.functions

  name        = local.function_names[each.key]
  project     = var.project_id
  location    = var.region
  description = each.value.description
  labels      = var.labels

  build_config {
    runtime           = "python311"
    entry_point       = local.names.functions[each.key]
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = local.tier[each.key].memory
    available_cpu                    = local.tier[each.key].cpu
    max_instance_request_concurrency = local.tier[each.key].concurrency
    min_instance_count               = each.value.min_instances
    max_instance_count               = local.tier[each.key].max_instances
    timeout_seconds                  = local.tier[each.key].timeout_seconds
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.function[each.key].email

    environment_variables = merge(local.common_env, local.function_model_env[each.key], {
      ORT_INTRA_OP_THREADS = tostring(local.ort_threads[each.key])
    })

    dynamic "secret_environment_variables" {
      for_each = each.value.secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = var.secret_version
      }
    }
  }

  dynamic "event_trigger" {
    for_each = each.key == "on_review_labeled" ? [local.names.reviews_collection] : []
    content {
      # Eventarc Firestore triggers must live in the database's location.
      trigger_region        = var.firestore_location
      event_type            = "google.cloud.firestore.document.v1.written"
      retry_policy          = "RETRY_POLICY_RETRY" # bounded in code: FOLLOWUP_MAX_EVENT_AGE_SECONDS
      service_account_email = google_service_account.eventarc_invoker.email

      event_filters {
        attribute = "database"
        value     = local.firestore_database
      }

      event_filters {
        attribute = "document"
        value     = "${event_trigger.value}/{review_id}"
        operator  = "match-path-pattern"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = contains(keys(local.tiers), var.function_tiers[each.key])
      error_message = "function_tiers.${each.key} must name a tier (a key of the default tiers or of var.tiers)."
    }
    precondition {
      condition     = local.model_fits_tier[each.key]
      error_message = "function_models.${each.key} serves the accurate model, which needs a tier of at least 2Gi (e.g. \"accurate\")."
    }
    precondition {
      condition     = each.key != "ingest_review" || local.tier[each.key].timeout_seconds <= local.names.ack_deadline_seconds
      error_message = "The ingest_review tier's timeout_seconds must not exceed ack_deadline_seconds in shared/names.json (the push request would be redelivered while still running)."
    }
    precondition {
      condition     = each.key != "on_review_labeled" || local.tier[each.key].timeout_seconds <= 540
      error_message = "Event-driven functions allow at most 540 s: pick a tier with timeout_seconds <= 540 for on_review_labeled."
    }
    precondition {
      condition     = var.followup_unsure_min < var.followup_threshold && var.followup_threshold <= var.followup_high_priority
      error_message = "Need followup_unsure_min < followup_threshold <= followup_high_priority."
    }
  }

  # The IAM every function needs (build account, runtime grants, secrets, the trigger identity) has propagated.
  depends_on = [time_sleep.iam_propagated]
}

moved {
  from = google_cloudfunctions2_function.classify_http
  to   = google_cloudfunctions2_function.function["classify_http"]
}

moved {
  from = google_cloudfunctions2_function.ingest_review
  to   = google_cloudfunctions2_function.function["ingest_review"]
}

moved {
  from = google_cloudfunctions2_function.on_review_labeled
  to   = google_cloudfunctions2_function.function["on_review_labeled"]
}
