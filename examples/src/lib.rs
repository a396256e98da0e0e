//! Example programs that embed `aethermart-core`; each is a binary under `src/bin/`.
