"""On-call tool for deletion requests: ``python -m tools.privacy erase --platform P --device-id ID``.

Modules: :mod:`tools.privacy.core` (pure: who is erased, what matches), :mod:`tools.privacy.aws` (the profile
table, the enricher's app GUIDs; the DLQs through :mod:`tools.dlq.sqs`), :mod:`tools.privacy.ops` (the erase, in
order), :mod:`tools.privacy.cli` (arguments, output, exit codes). What it covers and what it cannot reach:
docs/privacy.md.
"""
