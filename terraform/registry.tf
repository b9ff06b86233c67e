# The build images of the three functions, in a repository of our own rather than the service's gcf-artifacts:
# the build account writes only here, and old images are cleaned up (each deploy builds three new ones).

resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Build images of public code with no secrets in them; Google-managed encryption, as for the topics.
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  description   = "reviewsense: Cloud Functions build images."
  format        = "DOCKER"
  labels        = var.labels

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.images_to_keep
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "${var.image_retention_days * 86400}s"
    }
  }

  depends_on = [time_sleep.apis_enabled]
}
