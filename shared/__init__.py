"""The product's core, shared by every Cloud Function: config, classifier, schemas, storage, logging."""
