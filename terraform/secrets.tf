# Secret containers and their versions. The values come from ephemeral variables (TF_VAR_api_key,
# TF_VAR_followup_webhook_url) into write-only arguments, so they are in neither state nor plan files, and the
# functions that mount them are created in the same apply, after the version exists.

resource "google_secret_manager_secret" "api_key" {
  count = var.enable_api_key ? 1 : 0

  project   = var.project_id
  secret_id = "${var.name_prefix}-api-key"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [time_sleep.apis_enabled]
}

resource "google_secret_manager_secret_version" "api_key" {
  count = var.enable_api_key ? 1 : 0

  secret                 = google_secret_manager_secret.api_key[0].id
  secret_data_wo         = var.api_key
  secret_data_wo_version = var.secret_values_version
}

resource "google_secret_manager_secret" "followup_webhook_url" {
  count = var.enable_followup_webhook ? 1 : 0

  project   = var.project_id
  secret_id = "${var.name_prefix}-followup-webhook-url"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [time_sleep.apis_enabled]
}

resource "google_secret_manager_secret_version" "followup_webhook_url" {
  count = var.enable_followup_webhook ? 1 : 0

  secret                 = google_secret_manager_secret.followup_webhook_url[0].id
  secret_data_wo         = var.followup_webhook_url
  secret_data_wo_version = var.secret_values_version
}
