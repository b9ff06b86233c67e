# reviewsense on Google Cloud: three Cloud Functions (gen2) from one source
# archive, Pub/Sub ingestion with an owned push subscription (retry + dead
# letter), a Firestore document trigger, and Secret Manager secrets.
#
# Files: main.tf (names, APIs, service agents), storage.tf (source archive +
# bucket), registry.tf (build images), functions.tf, pubsub.tf, iam.tf,
# firestore.tf, secrets.tf, monitoring.tf, outputs.tf.

locals {
  # One source of truth for resource names and delivery settings, shared with
  # the Python code (shared/config.py) and the local stack. Never repeat these
  # names in .tf files: reference local.names.<key>.
  names = jsondecode(file("${path.module}/../shared/names.json"))

  # Function keys are the entry points in main.py; resource names use hyphens
  # (Cloud Run service names may not contain underscores).
  function_names = {
    for key, entry_point in local.names.functions :
    key => "${var.name_prefix}-${replace(entry_point, "_", "-")}"
  }

  # Sizing tiers, measured (bench/results): the int8 fast classifier peaks around 250 MB RSS, the accurate one
  # about 1 GB. standard: one request at a time on 1 vCPU (inference is CPU-bound). ingest: 4 deliveries per
  # instance queue on its vCPU instead of being answered 429 during a burst (a 429 counts as a failed delivery
  # attempt, and enough of them dead-letter a healthy review), and twice the instances. http: 2 vCPU, 4 concurrent
  # requests with one ORT thread each. var.tiers adds tiers or replaces these by name.
  default_tiers = {
    standard = { memory = "512Mi", cpu = "1", concurrency = 1, min_instances = 0, max_instances = 10, timeout_seconds = 60 }
    ingest   = { memory = "1Gi", cpu = "1", concurrency = 4, min_instances = 0, max_instances = 20, timeout_seconds = 60 }
    http     = { memory = "2Gi", cpu = "2", concurrency = 4, min_instances = 0, max_instances = 20, timeout_seconds = 60 }
    accurate = { memory = "2Gi", cpu = "1", concurrency = 1, min_instances = 0, max_instances = 10, timeout_seconds = 60 }
    large    = { memory = "4Gi", cpu = "2", concurrency = 1, min_instances = 0, max_instances = 10, timeout_seconds = 300 }
  }
  tiers = merge(local.default_tiers, var.tiers)

  # The chosen tier of each function, e.g. local.tier.classify_http.memory.
  # An unknown tier name falls back to "standard" only so that the plan
  # reaches the functions' preconditions, which then stop it with a clear error.
  tier = {
    for key, tier_name in var.function_tiers : key => lookup(local.tiers, tier_name, local.tiers.standard)
  }

  # One ONNX Runtime intra-op thread per concurrent request, at least one.
  ort_threads = {
    for key, t in local.tier : key => max(1, floor(tonumber(t.cpu) / t.concurrency))
  }

  # Each model choice as the environment shared/config.py reads; artifacts no function serves stay out of the zip.
  model_dirs = { for key, name in local.names.model_artifacts : key => "model_artifacts/${name}" }
  model_env = {
    fast     = { MODEL_DIR = local.model_dirs.fast }
    accurate = { MODEL_DIR = local.model_dirs.accurate }
    cascade  = { MODEL_DIR = local.model_dirs.fast, CASCADE_MODEL_DIR = local.model_dirs.accurate }
  }
  function_model_env = { for key, choice in var.function_models : key => local.model_env[choice] }
  served_artifacts   = toset(flatten([for env in values(local.function_model_env) : values(env)]))
  # The accurate model needs about 1 GB resident (bench/results/cascade.md); a smaller tier would crash at load.
  model_fits_tier = {
    for key, choice in var.function_models : key => choice == "fast" || (
      tonumber(regex("^[0-9]+", local.tier[key].memory)) * (endswith(local.tier[key].memory, "Gi") ? 1024 : 1) >= 2048
    )
  }
  unserved_artifacts = sort([
    for dir in values(local.model_dirs) : dir if !contains(local.served_artifacts, dir)
  ])

  firestore_database = var.create_firestore_database ? google_firestore_database.this[0].name : var.firestore_database

  # Environment every function gets (the code reads these; see shared/config.py).
  common_env = {
    GOOGLE_CLOUD_PROJECT   = var.project_id
    FIRESTORE_DATABASE     = local.firestore_database
    REVIEWS_COLLECTION     = local.names.reviews_collection
    FOLLOWUPS_COLLECTION   = local.names.followups_collection
    REJECTED_COLLECTION    = local.names.rejected_collection
    FOLLOWUP_TOPIC         = google_pubsub_topic.followup.name
    FOLLOWUP_THRESHOLD     = tostring(var.followup_threshold)
    FOLLOWUP_HIGH_PRIORITY = tostring(var.followup_high_priority)
    FOLLOWUP_UNSURE_MIN    = tostring(var.followup_unsure_min)
    MAX_REVIEW_CHARS       = tostring(var.max_review_chars)
    MAX_BATCH              = tostring(var.max_batch)
    LOG_LEVEL              = var.log_level
  }

  # Pub/Sub service agent: publishes dead letters, acks forwarded messages and
  # mints the OIDC tokens of push subscriptions (and of Eventarc's). Created
  # explicitly (service_identity below): on a new project it does not exist
  # until first use, and granting it a role before then fails the apply.
  pubsub_service_agent = "serviceAccount:${google_project_service_identity.agent["pubsub.googleapis.com"].email}"

  required_apis = toset(concat(var.enable_backfill ? ["dataflow.googleapis.com"] : [], [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]))
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_project_service" "enabled" {
  for_each = local.required_apis

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

# The service agents that IAM grants below name: created now, not on first use.
resource "google_project_service_identity" "agent" {
  provider = google-beta
  for_each = toset(["pubsub.googleapis.com", "eventarc.googleapis.com"])

  project = var.project_id
  service = each.value

  depends_on = [google_project_service.enabled]
}

# A freshly enabled API answers "not enabled" for a while; everything else waits for it.
resource "time_sleep" "apis_enabled" {
  create_duration = "60s"

  depends_on = [google_project_service.enabled, google_project_service_identity.agent]
}
