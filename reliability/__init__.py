"""`make reliability`: storm, fault and fuzz scenarios against the local stack; writes RELIABILITY.md."""
