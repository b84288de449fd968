#!/usr/bin/env bash
# The project's test command (README): static checks, then the whole suite under the
# race detector. Fuzz targets run their committed corpus as ordinary tests.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "+ go vet ./..."
go vet ./...
echo "+ gofmt -l ."
unformatted=$(gofmt -l . || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "+ go test -race -count=1 ./..."
go test -race -count=1 -timeout 20m ./...
