"""The least-privilege recipes of docs/security.md, as the SQL text the docs show.

One place for the statements: ``tests/checks/test_least_privilege.py`` applies exactly these on the
throwaway PostgreSQL and MariaDB servers and asserts what the roles can and cannot do, and it asserts
that docs/security.md carries each of them verbatim.

The names are the docs' example: the application's database ``shop`` (schemas ``public`` and
``sales``, tables owned by ``app_owner``), the checks login ``opsflow_checks`` and the state store's
login ``opsflow_state``. Run them as a superuser (PostgreSQL) or an administrator (MariaDB).
"""

from __future__ import annotations

# PostgreSQL: the role checks connect as. Statements of one recipe are separated by ";\n".
POSTGRES_CHECKS_ROLE = """\
CREATE ROLE opsflow_checks LOGIN PASSWORD 'replace-with-a-generated-password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 10;
ALTER ROLE opsflow_checks SET default_transaction_read_only = on;
ALTER ROLE opsflow_checks SET statement_timeout = '5min';
ALTER ROLE opsflow_checks SET idle_in_transaction_session_timeout = '10min';
GRANT CONNECT ON DATABASE shop TO opsflow_checks;
GRANT USAGE ON SCHEMA public, sales TO opsflow_checks;
GRANT SELECT ON ALL TABLES IN SCHEMA public, sales TO opsflow_checks;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public, sales
  GRANT SELECT ON TABLES TO opsflow_checks;"""

# PostgreSQL, in each database the checks connect to: functions that act outside the read-only
# transaction, taken from PUBLIC (every role). Grant them back to the application roles that use them.
POSTGRES_PUBLIC_HARDENING = """\
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
      JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
      JOIN pg_extension e ON e.oid = d.refobjid
      WHERE e.extname IN ('dblink', 'postgres_fdw')
  LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END $$;
REVOKE EXECUTE ON FUNCTION lo_create(oid), lo_creat(integer), lo_from_bytea(oid, bytea),
  lo_put(oid, bigint, bytea) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text),
  pg_logical_emit_message(boolean, text, bytea) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_notify(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_terminate_backend(integer, bigint), pg_cancel_backend(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_terminate_backend(integer, bigint), pg_cancel_backend(integer)
  TO pg_signal_backend;"""

# PostgreSQL: the state store's role, which owns its own schema and nothing else.
POSTGRES_STATE_ROLE = """\
CREATE ROLE opsflow_state LOGIN PASSWORD 'replace-with-another-generated-password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 20;
ALTER ROLE opsflow_state SET statement_timeout = '1min';
ALTER ROLE opsflow_state SET idle_in_transaction_session_timeout = '10min';
GRANT CONNECT ON DATABASE shop TO opsflow_state;
CREATE SCHEMA opsflow_state AUTHORIZATION opsflow_state;
ALTER ROLE opsflow_state IN DATABASE shop SET search_path = opsflow_state;"""

# MariaDB (MAX_STATEMENT_TIME is MariaDB's; on MySQL leave it out, see docs/security.md).
MARIADB_CHECKS_USER = """\
CREATE USER 'opsflow_checks'@'%' IDENTIFIED BY 'replace-with-a-generated-password'
  WITH MAX_STATEMENT_TIME 300 MAX_USER_CONNECTIONS 10;
GRANT SELECT ON shop.* TO 'opsflow_checks'@'%';"""

MARIADB_STATE_USER = """\
CREATE DATABASE opsflow_state;
CREATE USER 'opsflow_state'@'%' IDENTIFIED BY 'replace-with-another-generated-password'
  WITH MAX_USER_CONNECTIONS 20;
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON opsflow_state.* TO 'opsflow_state'@'%';"""

CHECKS_PASSWORD = "replace-with-a-generated-password"
STATE_PASSWORD = "replace-with-another-generated-password"

RECIPES = {
    "POSTGRES_CHECKS_ROLE": POSTGRES_CHECKS_ROLE,
    "POSTGRES_PUBLIC_HARDENING": POSTGRES_PUBLIC_HARDENING,
    "POSTGRES_STATE_ROLE": POSTGRES_STATE_ROLE,
    "MARIADB_CHECKS_USER": MARIADB_CHECKS_USER,
    "MARIADB_STATE_USER": MARIADB_STATE_USER,
}


def statements(recipe: str) -> list[str]:
    """The recipe's statements, one by one (a ``DO $$ ... $$`` block stays whole)."""
    parts: list[str] = []
    for chunk in recipe.split(";\n"):
        if parts and parts[-1].count("$$") % 2:  # inside a dollar-quoted body
            parts[-1] += ";\n" + chunk
        else:
            parts.append(chunk)
    return [p.strip().rstrip(";") for p in parts if p.strip()]
