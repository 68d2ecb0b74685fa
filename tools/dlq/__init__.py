"""On-call tool for the pipeline's dead-letter queues: ``python -m tools.dlq list|show|replay|purge``.

Modules: :mod:`tools.dlq.core` (pure: message model, selection, grouping, masking), :mod:`tools.dlq.sqs` (queue
discovery and the SQS calls), :mod:`tools.dlq.ops` (scan / replay / purge), :mod:`tools.dlq.cli` (arguments,
output, exit codes). The runbook is docs/runbook.md.
"""
