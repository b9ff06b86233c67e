"""One module per Cloud Function handler: parse the event or request, call shared/, answer."""
