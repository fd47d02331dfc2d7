"""What the throwaway PostgreSQL clusters (``stack_harness.pg_cluster``) raise."""

from __future__ import annotations


class PgClusterError(RuntimeError):
    """A throwaway cluster failed to start, stop or answer."""


class PgBinariesNotFound(PgClusterError):
    """No usable PostgreSQL server binaries on this machine."""
