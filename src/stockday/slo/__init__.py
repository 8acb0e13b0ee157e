"""Service level objectives as code: one catalogue, read by the Prometheus rules, the CDK app's
alarms and `stockday status`."""
