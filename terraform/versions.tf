# Exact provider versions: the plan a reviewer reads is the plan that applies. The google provider is the one
# tests/test_terraform_schema.py validates every resource against (its schema ships in cdktn-provider-google 21.1.0,
# built from google 8.7.0). No lock file can be generated here (the registry is unreachable): run
# `terraform providers lock -platform=linux_amd64 -platform=darwin_arm64` on the deploying machine and commit it.
terraform {
  # 1.11: write-only arguments (secret_data_wo keeps secret values out of state and plan); 1.9: cross-variable validation.
  required_version = ">= 1.11.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "8.7.0"
    }
    # Only for google_project_service_identity (the Pub/Sub and Eventarc service agents), which is beta-only.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "8.7.0"
    }
    # 2.5.0 brought glob patterns in excludes; 2.4 would silently ship __pycache__ and dotfiles.
    archive = {
      source  = "hashicorp/archive"
      version = "2.7.1"
    }
    # Waits for API enablement and IAM propagation, as the provider's own gen2 examples do.
    time = {
      source  = "hashicorp/time"
      version = "0.13.1"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}
