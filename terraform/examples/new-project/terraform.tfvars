# A new project, everything default: private HTTP API (grant callers with http_invoker_members), the Firestore
# database created here, no API key, no webhook, alerts with no notification channel.
# Copy to terraform/terraform.tfvars, set project_id, run `terraform apply`.
# expected_resources.txt (beside this file) lists what that apply creates; tests/test_terraform.py keeps it true.
project_id         = "my-reviews-prod"
region             = "us-central1"
firestore_location = "nam5"
