# Secret containers only. Terraform never holds the values: add versions with
# gcloud (see README), so nothing secret lands in state, variables or outputs.
# The functions mount them as environment variables through
# secret_environment_variables (functions.tf).

resource "google_secret_manager_secret" "api_key" {
  count = var.enable_api_key ? 1 : 0

  project   = var.project_id
  secret_id = "${var.name_prefix}-api-key"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret" "followup_webhook_url" {
  count = var.enable_followup_webhook ? 1 : 0

  project   = var.project_id
  secret_id = "${var.name_prefix}-followup-webhook-url"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}
