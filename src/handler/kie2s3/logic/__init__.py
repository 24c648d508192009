"""Use cases: receive a callback, plan and dispatch copies, copy one file, report a task's status."""
