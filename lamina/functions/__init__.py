"""Control-plane domain logic: functions, versions, aliases, tags; no HTTP."""
