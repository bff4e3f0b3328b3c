"""The on-disk formats of docs/contracts.md: raw manifest, clip record, clip manifest, store."""
