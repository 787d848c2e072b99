//! The integration suite: one binary, real parts (Postgres, SQLite files, LibreOffice, HTTP).

mod browser;
mod cli;
mod clients;
mod compose;
mod converter;
mod corpus;
mod events;
mod exports;
mod faults;
mod fixtures;
mod guards;
mod helpers;
mod hostile;
mod jobs;
mod layers;
mod outage;
mod processes;
mod queue_conformance;
mod queue_plans;
mod sandbox;
mod storage;
mod webhooks;
mod workflows;
