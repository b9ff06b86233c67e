# reviewsense on Google Cloud: three Cloud Functions (gen2) from one source
# archive, Pub/Sub ingestion with an owned push subscription (retry + dead
# letter), a Firestore document trigger, and Secret Manager secrets.
#
# Files: main.tf (names, APIs), storage.tf (source archive + bucket),
# functions.tf, pubsub.tf, iam.tf, firestore.tf, secrets.tf, outputs.tf.

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

  # The chosen tier of each function, e.g. local.tier.classify_http.memory.
  # An unknown tier name falls back to the first tier only so that the plan
  # reaches the functions' preconditions, which then stop it with a clear error.
  tier = {
    for key, tier_name in var.function_tiers : key => lookup(var.tiers, tier_name, values(var.tiers)[0])
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
  # mints the OIDC tokens of push subscriptions (and of Eventarc's).
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  required_apis = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])
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
