# Inputs. Resource names and delivery settings (topics, subscriptions,
# collections, ack deadline, retry backoff, delivery attempts, dead-letter
# retention) are NOT inputs: they come from ../shared/names.json (see main.tf).

variable "project_id" {
  description = "Google Cloud project ID to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid Google Cloud project ID (6-30 chars, lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region for the Cloud Functions (gen2), their Cloud Run services and the source bucket."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Cloud region such as us-central1 or europe-west1."
  }
}

variable "name_prefix" {
  description = "Prefix for resources that names.json does not name: functions, service accounts, secrets, the source bucket."
  type        = string
  default     = "reviewsense"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,13}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-15 chars of lowercase letters, digits and hyphens (service account IDs are capped at 30 chars)."
  }
}

variable "labels" {
  description = "Labels applied to every resource that supports them."
  type        = map(string)
  default = {
    app = "reviewsense"
  }
}

# ---------------------------------------------------------------- Firestore --

variable "create_firestore_database" {
  description = "Create the Firestore database (native mode) named by firestore_database, as a new project needs. Set false to use an existing database of that name (or import it: terraform import 'google_firestore_database.this[0]' projects/<p>/databases/<name>)."
  type        = bool
  default     = true
}

variable "firestore_database" {
  description = "Firestore database ID the functions use (FIRESTORE_DATABASE) and the trigger listens on."
  type        = string
  default     = "(default)"

  validation {
    condition     = var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database must be \"(default)\" or 4-63 chars of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "firestore_location" {
  description = "Location of the Firestore database (e.g. nam5, eur3, us-central1). The Firestore trigger's Eventarc region must equal it; also used when create_firestore_database is true."
  type        = string
  default     = "nam5"

  validation {
    condition     = can(regex("^([a-z]+[0-9]+|[a-z]+-[a-z]+[0-9]+)$", var.firestore_location))
    error_message = "firestore_location must be a Firestore location such as nam5, eur3 or us-central1."
  }
}

variable "firestore_delete_protection" {
  description = "Enable delete protection on a database created here (create_firestore_database = true)."
  type        = bool
  default     = true
}

# ------------------------------------------------------------- Memory tiers --

variable "tiers" {
  description = <<-EOT
    Sizing tiers added to, or replacing by name, the defaults in locals.default_tiers (standard, ingest, http,
    accurate, large): set only the tiers you change. A field left out takes the optional() default below.
    memory: Cloud Run memory (e.g. 512Mi, 2Gi); cpu: vCPUs as a string ("1", "2"); concurrency: requests per
    instance; min_instances/max_instances: instance bounds; timeout_seconds: request timeout (event-driven
    functions: at most 540). Cloud Run needs at least 2 vCPU above 4Gi, 4 above 8Gi, 6 above 16Gi, 8 above 24Gi.
  EOT
  type = map(object({
    memory          = optional(string, "512Mi")
    cpu             = optional(string, "1")
    concurrency     = optional(number, 1)
    min_instances   = optional(number, 0)
    max_instances   = optional(number, 10)
    timeout_seconds = optional(number, 60)
  }))
  default = {}

  validation {
    condition = alltrue([
      for t in values(var.tiers) :
      can(regex("^[0-9]+(Mi|Gi)$", t.memory)) &&
      can(tonumber(t.cpu)) &&
      t.concurrency >= 1 && t.concurrency <= 1000 &&
      (t.concurrency == 1 || try(tonumber(t.cpu) >= 1, false)) &&
      t.min_instances >= 0 && t.max_instances >= 1 && t.min_instances <= t.max_instances &&
      t.timeout_seconds >= 1 && t.timeout_seconds <= 3600
    ])
    error_message = "Each tier needs memory like 512Mi/2Gi, a numeric cpu, 1 <= concurrency <= 1000 (concurrency > 1 needs cpu >= 1), 0 <= min_instances <= max_instances, max_instances >= 1, 1 <= timeout_seconds <= 3600."
  }

  validation {
    # Cloud Run's minimum CPU per memory size: 8Gi with 1 vCPU passes the type check and fails at apply.
    condition = alltrue([
      for t in values(var.tiers) : try(
        tonumber(t.cpu) >= (
          tonumber(regex("^[0-9]+", t.memory)) * (endswith(t.memory, "Gi") ? 1024 : 1) > 24576 ? 8 :
          tonumber(regex("^[0-9]+", t.memory)) * (endswith(t.memory, "Gi") ? 1024 : 1) > 16384 ? 6 :
          tonumber(regex("^[0-9]+", t.memory)) * (endswith(t.memory, "Gi") ? 1024 : 1) > 8192 ? 4 :
          tonumber(regex("^[0-9]+", t.memory)) * (endswith(t.memory, "Gi") ? 1024 : 1) > 4096 ? 2 : 0
      ), true)
    ])
    error_message = "A tier's cpu is too small for its memory: Cloud Run needs at least 2 vCPU above 4Gi, 4 above 8Gi, 6 above 16Gi and 8 above 24Gi."
  }
}

variable "function_tiers" {
  description = "Tier (a key of tiers) used by each function."
  type = object({
    classify_http     = string
    ingest_review     = string
    on_review_labeled = string
  })
  default = {
    classify_http     = "http"
    ingest_review     = "ingest"
    on_review_labeled = "standard"
  }
}

variable "function_models" {
  description = <<-EOT
    Model each classifying function serves: "fast" (MiniLM int8, the default: milliseconds a review, 512Mi),
    "accurate" (mpnet: better on domains our data never covered, about 8x the CPU a review; give the function the
    accurate tier) or "cascade" (fast first, the accurate model only for reviews the fast one is unsure of or whose
    follow-up decision it is near; the accurate tier). See README "Choosing a model".
  EOT
  type = object({
    classify_http     = string
    ingest_review     = string
    on_review_labeled = string
  })
  default = {
    classify_http     = "fast"
    ingest_review     = "fast"
    on_review_labeled = "fast"
  }

  validation {
    condition     = alltrue([for m in values(var.function_models) : contains(["fast", "accurate", "cascade"], m)])
    error_message = "Each function_models entry must be fast, accurate or cascade."
  }
}

variable "http_min_instances" {
  description = "Override the tier's min_instances for classify_http, to buy away cold starts (each warm instance is billed). null keeps the tier's value."
  type        = number
  default     = null

  validation {
    condition     = var.http_min_instances == null || try(var.http_min_instances >= 0 && var.http_min_instances <= 100, false)
    error_message = "http_min_instances must be null or between 0 and 100."
  }
}

# -------------------------------------------------------- Runtime settings --

variable "followup_threshold" {
  description = "FOLLOWUP_THRESHOLD for on_review_labeled: score (0-1) at or above which a labeled review gets a follow-up."
  type        = number
  default     = 0.80

  validation {
    condition     = var.followup_threshold > 0 && var.followup_threshold < 1
    error_message = "followup_threshold must be in (0, 1)."
  }
}

variable "followup_high_priority" {
  description = "FOLLOWUP_HIGH_PRIORITY for on_review_labeled: score (0-1) at or above which a follow-up is high priority."
  type        = number
  default     = 0.95

  validation {
    condition     = var.followup_high_priority > 0 && var.followup_high_priority <= 1
    error_message = "followup_high_priority must be in (0, 1]."
  }
}

variable "followup_unsure_min" {
  description = "FOLLOWUP_UNSURE_MIN for on_review_labeled: lower bound (0-1) of the unsure band."
  type        = number
  default     = 0.55

  validation {
    condition     = var.followup_unsure_min >= 0 && var.followup_unsure_min < 1
    error_message = "followup_unsure_min must be in [0, 1)."
  }
}

variable "max_review_chars" {
  description = "MAX_REVIEW_CHARS: longest review text accepted."
  type        = number
  default     = 5000

  validation {
    condition     = var.max_review_chars >= 1 && var.max_review_chars <= 100000
    error_message = "max_review_chars must be between 1 and 100000."
  }
}

variable "max_batch" {
  description = "MAX_BATCH: most reviews per classify_http request."
  type        = number
  default     = 64

  validation {
    condition     = var.max_batch >= 1 && var.max_batch <= 1024
    error_message = "max_batch must be between 1 and 1024."
  }
}

variable "log_level" {
  description = "LOG_LEVEL for the functions."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.log_level)
    error_message = "log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL."
  }
}

# ------------------------------------------------------- Access and secrets --

variable "allow_unauthenticated_http" {
  description = "Make classify_http public (grants roles/run.invoker to allUsers). Off by default; needs enable_api_key."
  type        = bool
  default     = false

  # An error, not a check block's warning: a plan that would open the API to anyone without a key stops here.
  validation {
    condition     = !var.allow_unauthenticated_http || var.enable_api_key
    error_message = "allow_unauthenticated_http needs enable_api_key = true: classify_http would be open to anyone with no API key."
  }
}

variable "http_invoker_members" {
  description = "IAM members (e.g. serviceAccount:x@p.iam.gserviceaccount.com, group:team@example.com) allowed to call classify_http. allUsers/allAuthenticatedUsers are refused here: use allow_unauthenticated_http."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.http_invoker_members :
      !contains(["allUsers", "allAuthenticatedUsers"], m) && can(regex("^(user|serviceAccount|group|domain|principal|principalSet):", m))
    ])
    error_message = "http_invoker_members entries must be IAM members like serviceAccount:..., user:..., group:...; allUsers/allAuthenticatedUsers are only granted through allow_unauthenticated_http."
  }
}

variable "http_ingress" {
  description = "Ingress setting for classify_http."
  type        = string
  default     = "ALLOW_ALL"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.http_ingress)
    error_message = "http_ingress must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "event_ingress" {
  description = "Ingress setting for the event-driven functions (ingest_review behind the push subscription, on_review_labeled behind Eventarc). Pub/Sub push and Eventarc in the same project count as internal traffic."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.event_ingress)
    error_message = "event_ingress must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "enable_api_key" {
  description = "Create the API key secret (its value from var.api_key) and mount it into classify_http as API_KEY."
  type        = bool
  default     = false
}

variable "api_key" {
  description = "The API key callers must send in X-API-Key (enable_api_key). Pass it as TF_VAR_api_key: ephemeral, so it is kept in neither state nor plan."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "enable_followup_webhook" {
  description = "Create the webhook URL secret (its value from var.followup_webhook_url) and mount it into on_review_labeled as FOLLOWUP_WEBHOOK_URL."
  type        = bool
  default     = false
}

variable "followup_webhook_url" {
  description = "The Discord/Slack incoming-webhook URL (enable_followup_webhook). Pass it as TF_VAR_followup_webhook_url: ephemeral, kept in neither state nor plan."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "secret_values_version" {
  description = "Bump it to write new secret values (var.api_key, var.followup_webhook_url) as new versions: write-only values cannot be compared, so a change is announced by this number."
  type        = number
  default     = 1
}

variable "secret_version" {
  description = "Secret Manager version mounted for API_KEY and FOLLOWUP_WEBHOOK_URL (a number pins it; \"latest\" is read when an instance starts)."
  type        = string
  default     = "latest"

  validation {
    condition     = var.secret_version == "latest" || can(regex("^[1-9][0-9]*$", var.secret_version))
    error_message = "secret_version must be \"latest\" or a positive version number."
  }
}

variable "source_archive_retention_days" {
  description = "Days a replaced source archive stays in the source bucket (as a noncurrent version) before it is deleted."
  type        = number
  default     = 7

  validation {
    condition     = var.source_archive_retention_days >= 1 && var.source_archive_retention_days <= 365
    error_message = "source_archive_retention_days must be between 1 and 365."
  }
}

variable "images_to_keep" {
  description = "Most recent build images kept per function in the Artifact Registry repository, whatever their age."
  type        = number
  default     = 5

  validation {
    condition     = var.images_to_keep >= 1 && var.images_to_keep <= 100
    error_message = "images_to_keep must be between 1 and 100."
  }
}

variable "image_retention_days" {
  description = "Build images older than this are deleted, except the images_to_keep most recent ones."
  type        = number
  default     = 30

  validation {
    condition     = var.image_retention_days >= 1 && var.image_retention_days <= 3650
    error_message = "image_retention_days must be between 1 and 3650."
  }
}

variable "alert_notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/<p>/notificationChannels/<id>) the alert policies notify. Empty: the policies exist and open incidents in the console, nobody is paged."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "alert_notification_channels entries must look like projects/<project>/notificationChannels/<id>."
  }
}

variable "enable_backfill" {
  description = "Create what the backfill pipeline needs on Dataflow: the Dataflow API, a worker service account and a temp/staging bucket (backfill/README.md)."
  type        = bool
  default     = false
}

variable "backfill_input_buckets" {
  description = "Buckets (names) holding exports the backfill reads (gs://bucket/export.jsonl): the worker gets objectViewer on each."
  type        = list(string)
  default     = []
}
