"""On-call: where is event X? ``python -m tools.trace UUID [UUID ...]`` gives each event uuid one status.

Modules: :mod:`tools.trace.core` (pure: what log lines say, the status rules), :mod:`tools.trace.sources` (the
idempotency table, the DLQs, CloudWatch Logs Insights or the local log file; how each is searched at scale),
:mod:`tools.trace.cli` (arguments, output, exit codes). Stack flags, sessions and exit codes are shared with
``tools.dlq`` (:mod:`tools.oncall`). The runbook is docs/runbook.md.
"""
