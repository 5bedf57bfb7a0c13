//! Cross-crate test suites live in `tests/`; this library is empty on purpose.
