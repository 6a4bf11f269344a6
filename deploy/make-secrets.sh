#!/usr/bin/env bash
# compose.yaml's secrets in deploy/secrets (deploy/make_secrets.py says what each is), made
# inside the Kapok image, so nothing but Docker is needed here: build the image first
# (`docker compose build`). Each file then belongs to the user of the container that reads it,
# mode 0400: read one yourself with `sudo cat deploy/secrets/admin_token`. A second run keeps
# every existing secret. To start over: `sudo rm -r deploy/secrets` (and `docker compose down
# -v`: the bus and the database were made with the old ones).
set -euo pipefail
DEPLOY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE="${KAPOK_IMAGE:-kapok:latest}"
mkdir -p "$DEPLOY/secrets"
docker run --rm --user 0 --network none \
    -v "$DEPLOY/make_secrets.py:/make_secrets.py:ro" \
    -v "$DEPLOY/secrets:/secrets" \
    "$IMAGE" python3 /make_secrets.py /secrets --owners
