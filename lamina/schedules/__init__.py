"""Schedules: functions run on EventBridge rate() and cron() expressions, through the durable queue."""
