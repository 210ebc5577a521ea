//! Test-only crate: see `tests/`. The tests run the built `ingest`, `detect` and `subscribe` binaries against
//! a tansu broker started per test, exactly as a user would.
