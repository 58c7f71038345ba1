-- Two databases in one PostgreSQL: JupyterHub's (with SciTeX Hub's own tables)
-- and Gitea's, each owned by its own role that can reach only its own database.
--
-- Run once by the postgres image when its data directory is new
-- (/docker-entrypoint-initdb.d, as the superuser, psql -v ON_ERROR_STOP=1).
-- Passwords come from the secret files, never from this file or a command line:
-- psql reads them with \set `cat ...`. A bare-metal PostgreSQL runs the same file:
--   psql -v secrets=/etc/scitex/secrets -f 10-scitex-databases.sql
-- (files hub_db_password and gitea_db_password in that directory).
\set ON_ERROR_STOP on
\if :{?secrets}
\else
\set secrets /run/secrets
\endif
\set hub_password `cat :secrets/hub_db_password`
\set gitea_password `cat :secrets/gitea_db_password`

CREATE ROLE jupyterhub LOGIN PASSWORD :'hub_password';
CREATE DATABASE jupyterhub OWNER jupyterhub TEMPLATE template0 ENCODING 'UTF8';
REVOKE ALL ON DATABASE jupyterhub FROM PUBLIC;

CREATE ROLE gitea LOGIN PASSWORD :'gitea_password';
CREATE DATABASE gitea OWNER gitea TEMPLATE template0 ENCODING 'UTF8';
REVOKE ALL ON DATABASE gitea FROM PUBLIC;

-- The values are not needed past this point.
\unset hub_password
\unset gitea_password
