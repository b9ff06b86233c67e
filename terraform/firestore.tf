# Firestore (native mode): created here when create_firestore_database is
# true, otherwise the existing database named by firestore_database is used.
# Either way the Firestore trigger's region is firestore_location.

resource "google_firestore_database" "this" {
  count = var.create_firestore_database ? 1 : 0

  project                           = var.project_id
  name                              = var.firestore_database
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = var.firestore_delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  # terraform destroy leaves the data alone.
  deletion_policy = "ABANDON"

  depends_on = [time_sleep.apis_enabled]
}
