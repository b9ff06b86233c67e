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
  description = "Create the Firestore database (native mode) named by firestore_database. Leave false to use an existing database of that name."
  type        = bool
  default     = false
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
    Sizing tiers, by name. Each function picks one with function_tiers.
    memory: Cloud Run memory (e.g. 512Mi, 2Gi); cpu: vCPUs as a string ("1", "2");
    concurrency: requests per instance; min_instances/max_instances: instance bounds;
    timeout_seconds: request timeout (event-driven functions: at most 540).
    Defaults are sized from the measured classifier: the int8 ONNX classifier process
    peaks around 250 MB RSS after a batch of 32 long reviews, so 512Mi with 1 vCPU and
    concurrency 1 (inference is CPU-bound) is the default tier; the HTTP tier has 2 vCPU
    and room for 4 concurrent requests (one ORT thread each) for higher throughput.
  EOT
  type = map(object({
    memory          = string
    cpu             = string
    concurrency     = number
    min_instances   = number
    max_instances   = number
    timeout_seconds = number
  }))
  default = {
    # ~250 MB peak RSS measured (int8 ONNX, batch of 32 long reviews) -> 512Mi leaves ~2x headroom.
    standard = {
      memory          = "512Mi"
      cpu             = "1"
      concurrency     = 1
      min_instances   = 0
      max_instances   = 10
      timeout_seconds = 60
    }
    # HTTP: 4 concurrent batches share one loaded model (~250 MB) plus per-request
    # activations; 2Gi / 2 vCPU keeps p99 latency flat under load.
    http = {
      memory          = "2Gi"
      cpu             = "2"
      concurrency     = 4
      min_instances   = 0
      max_instances   = 20
      timeout_seconds = 60
    }
    # The accurate model (all-mpnet-base-v2, int8 weights expanded to fp32 at load) or the cascade (both models in one
    # process): peaks of 639 MiB (accurate) and 758 MiB (cascade) measured by tools/cascade.py
    # (bench/results/cascade.md) -> 2Gi, over 2.5x headroom. One vCPU, one request at a time: a review costs about
    # 4x the fast model's CPU (4.4x accurate, 3.8x cascade on the held-out mix).
    accurate = {
      memory          = "2Gi"
      cpu             = "1"
      concurrency     = 1
      min_instances   = 0
      max_instances   = 10
      timeout_seconds = 60
    }
    # For larger batches (MAX_BATCH raised) or longer MAX_REVIEW_CHARS.
    large = {
      memory          = "4Gi"
      cpu             = "2"
      concurrency     = 1
      min_instances   = 0
      max_instances   = 10
      timeout_seconds = 300
    }
  }

  validation {
    condition = length(var.tiers) > 0 && alltrue([
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
    ingest_review     = "standard"
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
  description = "Make classify_http public (grants roles/run.invoker to allUsers). Off by default; when on, enable_api_key should be on too."
  type        = bool
  default     = false
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
  description = "Create the API key secret and mount it into classify_http as API_KEY. Add a secret version before the apply that deploys it (see README)."
  type        = bool
  default     = false
}

variable "enable_followup_webhook" {
  description = "Create the webhook URL secret and mount it into on_review_labeled as FOLLOWUP_WEBHOOK_URL. Add a secret version before the apply that deploys it (see README)."
  type        = bool
  default     = false
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

variable "source_versions_to_keep" {
  description = "Noncurrent versions of each source archive object kept in the source bucket."
  type        = number
  default     = 5

  validation {
    condition     = var.source_versions_to_keep >= 1 && var.source_versions_to_keep <= 100
    error_message = "source_versions_to_keep must be between 1 and 100."
  }
}
