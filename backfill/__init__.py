"""Label and re-label reviews in bulk with Apache Beam (DirectRunner here, Dataflow in production)."""
