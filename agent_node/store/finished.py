"""``executions.finished_at``: ``updated_at`` once an execution is finished,
NULL before (schema version 8), the column listings by last change read
through its index (:mod:`.listing`). SQLite's store writes it itself where
it sets a status (:mod:`.sql`); on PostgreSQL a trigger keeps it so for
every writer."""

from __future__ import annotations

from agent_node.store.sql import TERMINAL_IN

__all__ = ["FINISHED_BACKFILL", "FINISHED_DDL"]

_DONE = TERMINAL_IN

#: ``finished_at`` of the rows already there (the upgrade to version 8).
FINISHED_BACKFILL = f"UPDATE executions SET finished_at = updated_at WHERE status IN {_DONE}"


def FINISHED_DDL(dialect: str) -> list[str]:
    """Triggers that keep ``finished_at`` = ``updated_at`` on finished rows,
    NULL on live ones (idempotent): PostgreSQL's, before the row is written."""
    if dialect == "sqlite":
        # None: the store writes finished_at itself, in the statements that
        # set a status (store/sql.py). SQLite runs a trigger as a program
        # for every row a watched statement touches, whatever its WHEN: 7 %
        # of a concurrent step's instructions. SQL written by hand beside
        # the store must set it too.
        return []
    wrong = (
        f"(NEW.status IN {_DONE} AND NEW.finished_at IS DISTINCT FROM NEW.updated_at)"
        f" OR (NEW.status NOT IN {_DONE} AND NEW.finished_at IS NOT NULL)"
    )
    return [
        "CREATE OR REPLACE FUNCTION agent_node_finished() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN NEW.finished_at := CASE WHEN NEW.status IN {_DONE} THEN NEW.updated_at END;"
        " RETURN NEW; END $$",
        "DROP TRIGGER IF EXISTS executions_finished ON executions",
        # BEFORE: the row is written once, with its finished_at (a WHEN that
        # is false costs no call).
        "CREATE TRIGGER executions_finished"
        " BEFORE INSERT OR UPDATE OF status, finished_at ON executions"
        f" FOR EACH ROW WHEN ({wrong}) EXECUTE FUNCTION agent_node_finished()",
    ]
