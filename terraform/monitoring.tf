# Alerts, so a team learns about held reviews and failing notifications before its customers do. Each policy
# notifies var.alert_notification_channels (none by default: incidents still open in the console).

resource "google_monitoring_alert_policy" "dead_letters" {
  project      = var.project_id
  display_name = "reviewsense: reviews held in the dead-letter subscription"
  combiner     = "OR"

  conditions {
    display_name = "dead-letter subscription is not empty"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter_hold.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "300s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Reviews failed every delivery attempt and are held in `${google_pubsub_subscription.dead_letter_hold.name}`. Find the cause in the ingest_review logs, fix it, then `make replay-dead-letters` (README, Operations)."
  }

  notification_channels = var.alert_notification_channels
  depends_on            = [time_sleep.apis_enabled]
}

resource "google_monitoring_alert_policy" "function_errors" {
  project      = var.project_id
  display_name = "reviewsense: functions answering 5xx"
  combiner     = "OR"

  conditions {
    display_name = "more than 5 server errors in 5 minutes"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = one_of(${join(", ", [for name in values(local.function_names) : "\"${name}\""])}) AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = 5
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A reviewsense function is failing requests (ingest_review: deliveries are retried, then dead-lettered). Its logs name the error code; a broken model artifact logs `model self-check failed`."
  }

  notification_channels = var.alert_notification_channels
  depends_on            = [time_sleep.apis_enabled]
}

# Follow-up notifications that failed, were refused for good (a webhook's 4xx) or were abandoned (too old to retry).
resource "google_logging_metric" "notification_failures" {
  project     = var.project_id
  name        = "${var.name_prefix}-notification-failures"
  description = "reviewsense follow-up notifications that failed, were refused or were abandoned."
  filter      = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${local.function_names.on_review_labeled}\" AND jsonPayload.message = (\"notification failed\" OR \"notification refused; not retried\" OR \"follow-up abandoned: the event is too old to retry\")"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }

  depends_on = [time_sleep.apis_enabled]
}

resource "google_monitoring_alert_policy" "notification_failures" {
  project      = var.project_id
  display_name = "reviewsense: follow-up notifications failing"
  combiner     = "OR"

  conditions {
    display_name = "a follow-up notification failed"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.notification_failures.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_DELTA"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Negative reviews are not reaching support. The follow-up document (`followups/<review id>`) keeps the last error under `notification_attempts`; a webhook refused with a 4xx is not retried until the follow-up reopens."
  }

  notification_channels = var.alert_notification_channels
}
