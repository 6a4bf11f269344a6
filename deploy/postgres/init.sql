-- Run once, when the postgres volume is new (the official image's /docker-entrypoint-initdb.d):
-- each service its own database, as `kapok up --postgres` gives it. Two instances of a service
-- share its database (leases decide which one publishes and folds: shared/lease.py).
CREATE DATABASE kapok_hotline OWNER kapok;
CREATE DATABASE kapok_aid OWNER kapok;
CREATE DATABASE kapok_donation OWNER kapok;
CREATE DATABASE kapok_reporting OWNER kapok;
