-- A small database at upstream schema version 8 (tables as migration 08 leaves them), for migration tests.
CREATE TABLE schema_migrations (version uint64,dirty bool);
CREATE UNIQUE INDEX version_unique ON schema_migrations (version);
INSERT INTO schema_migrations VALUES (8, 0);

CREATE TABLE tag (
id       INTEGER PRIMARY KEY,
tag_type VARCHAR(255) NOT NULL,
tag_name VARCHAR(255) NOT NULL, insert_ts TEXT DEFAULT CURRENT_TIMESTAMP, tag_scope TEXT NOT NULL DEFAULT 'global',
UNIQUE (tag_type, tag_name));

CREATE TABLE "hpc_user" (
username varchar(255) PRIMARY KEY NOT NULL,
password varchar(255) DEFAULT NULL,
ldap     tinyint      NOT NULL DEFAULT 0,
name     varchar(255) DEFAULT NULL,
roles    varchar(255) NOT NULL DEFAULT "[]",
email    varchar(255) DEFAULT NULL, projects varchar(255) NOT NULL DEFAULT "[]");

CREATE TABLE "configuration" (
username varchar(255),
confkey  varchar(255),
value    text,
PRIMARY KEY (username, confkey),
FOREIGN KEY (username) REFERENCES "hpc_user" (username) ON DELETE CASCADE ON UPDATE NO ACTION);

CREATE TABLE "job" (
id                INTEGER PRIMARY KEY,
job_id            BIGINT NOT NULL,
cluster           VARCHAR(255) NOT NULL,
subcluster        VARCHAR(255) NOT NULL,
start_time        BIGINT NOT NULL,
hpc_user          VARCHAR(255) NOT NULL,
project           VARCHAR(255) NOT NULL,
cluster_partition VARCHAR(255),
array_job_id      BIGINT,
duration          INT NOT NULL,
walltime          INT NOT NULL,
job_state         VARCHAR(255) NOT NULL
CHECK(job_state IN ('running', 'completed', 'failed', 'cancelled', 'stopped', 'timeout', 'preempted', 'out_of_memory')),
meta_data         TEXT,
resources         TEXT NOT NULL,
num_nodes         INT NOT NULL,
num_hwthreads     INT,
num_acc           INT,
smt               TINYINT NOT NULL DEFAULT 1 CHECK(smt IN (0, 1)),
exclusive         TINYINT NOT NULL DEFAULT 1 CHECK(exclusive IN (0, 1, 2)),
monitoring_status TINYINT NOT NULL DEFAULT 1 CHECK(monitoring_status IN (0, 1, 2, 3)),
energy            REAL NOT NULL DEFAULT 0.0,
energy_footprint  TEXT DEFAULT NULL,
footprint         TEXT DEFAULT NULL,
UNIQUE (job_id, cluster, start_time));

CREATE TABLE jobtag (
job_id INTEGER,
tag_id INTEGER, insert_ts TEXT DEFAULT CURRENT_TIMESTAMP,
PRIMARY KEY (job_id, tag_id),
FOREIGN KEY (job_id) REFERENCES job (id) ON DELETE CASCADE,
FOREIGN KEY (tag_id) REFERENCES tag (id) ON DELETE CASCADE);

CREATE INDEX jobs_cluster ON job (cluster);
CREATE INDEX jobs_cluster_starttime ON job (cluster, start_time);
CREATE INDEX jobs_user ON job (hpc_user);

INSERT INTO job VALUES
 (1, 5001, 'emmy', 'main', 1600000000, 'u1', 'p1', 'work', 0, 600, 3600, 'completed', '{"jobName":"a"}',
  '[{"hostname":"e0101"}]', 1, 20, 0, 1, 0, 3, 0.5, '{"cpu_power":0.5}', '{"flops_any_avg":1.5,"mem_used_max":3}'),
 (2, 5002, 'emmy', 'main', 1600000100, 'u2', 'p1', 'work', 0, 60, 3600, 'failed', NULL,
  '[{"hostname":"e0102"},{"hostname":"e0103"}]', 2, 40, 0, 1, 1, 3, 0, NULL, '{"flops_any_avg":0}'),
 (3, 5003, 'emmy', 'main', 1600000200, 'u1', 'p2', 'work', 0, 6000, 7200, 'timeout', NULL,
  '[{"hostname":"e0104"}]', 1, 20, 0, 0, 2, 2, 0, NULL, '{"flops_any_avg":2}');
INSERT INTO tag (id, tag_type, tag_name) VALUES (1, 'app', 'gromacs');
INSERT INTO jobtag (job_id, tag_id) VALUES (1, 1), (3, 1);
INSERT INTO hpc_user (username, roles) VALUES ('u1', '["user"]');
INSERT INTO configuration VALUES ('u1', 'plotConfiguration_plotsPerRow', '3');
