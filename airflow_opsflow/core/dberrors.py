"""DB-API driver errors, whatever the driver: recognise them, tell a lost connection, describe them in one line.

Engines wrap a driver's error in their own (naming the connection and what was being done) so that no raw
``psycopg2.errors.AdminShutdown`` or ``MySQLdb.OperationalError`` leaves an operator. Imports no driver:
the checks go by the exception's module and class names, so they hold for psycopg2, psycopg, MySQLdb,
PyMySQL and sqlite3 alike.
"""

from __future__ import annotations

import sys

# Class names (anywhere in an exception's MRO) of errors where the connection failed or was lost (server
# restarted or shut down, backend terminated): a new connection can succeed.
_LOST = frozenset({"InterfaceError", "AdminShutdown", "CrashShutdown", "CannotConnectNow", "ConnectionException",
                   "ConnectionFailure", "ConnectionDoesNotExist", "SqlclientUnableToEstablishSqlconnection"})
# MySQL/MariaDB client and server codes of a connection that is gone: can't connect, server has gone away,
# lost connection, shutdown in progress, connection killed, aborted, disconnected for inactivity.
_MYSQL_LOST = frozenset({1053, 1152, 1153, 1158, 1159, 1160, 1161, 1927, 2002, 2003, 2006, 2013, 2055, 4031})
# ... and where the object named does not exist: a configuration error no retry fixes.
_UNDEFINED = frozenset({"UndefinedTable", "UndefinedColumn", "InvalidSchemaName", "UndefinedObject"})
_SQLITE_UNDEFINED = ("no such table", "no such column", "has no column named", "unknown database")
_MYSQL_UNDEFINED = frozenset({1146, 1054, 1049})  # no such table, unknown column, unknown database


def is_driver_error(e: BaseException) -> bool:
    """``e`` was raised by a DB-API driver (its package declares ``apilevel``)."""
    for cls in type(e).__mro__:
        module = sys.modules.get(cls.__module__.split(".")[0])
        if module is not None and hasattr(module, "apilevel") and hasattr(module, "paramstyle"):
            return True
    return False


def _names(e: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(e).__mro__}


def is_undefined_object(e: BaseException) -> bool:
    """A table, column or schema that does not exist: a configuration error no retry fixes."""
    names = _names(e)
    if names & _UNDEFINED:  # psycopg2, psycopg
        return True
    if e.args and isinstance(e.args[0], int):  # MySQLdb, PyMySQL: (errno, message)
        return e.args[0] in _MYSQL_UNDEFINED
    if type(e).__module__ == "sqlite3" and "OperationalError" in names:  # SQLite has no error codes here
        return any(t in str(e).lower() for t in _SQLITE_UNDEFINED)
    return False


def is_connection_lost(e: BaseException) -> bool:
    """The connection failed or was lost (server restarted, backend terminated, network gone): a new
    connection may succeed, so the work is retryable."""
    names = _names(e)
    if names & _LOST:
        return True
    if type(e).__module__ == "sqlite3":  # a file: no connection to lose
        return False
    if e.args and isinstance(e.args[0], int):  # MySQLdb, PyMySQL: (errno, message)
        return e.args[0] in _MYSQL_LOST
    # psycopg: libpq's broken-connection errors carry no SQLSTATE, so they are the plain class, not one of
    # its subclasses (QueryCanceled, LockNotAvailable, ... are OperationalErrors too).
    return type(e).__name__ == "OperationalError"


def describe(e: BaseException) -> str:
    """``ClassName: message`` on one line, at most 500 characters (driver messages carry no password)."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:500]
