#!/usr/bin/env bash
# The project's virtual environment's Python (made by `make test`), found
# relative to this script's real location in the source tree.
here="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
exec "${here}/../../.venv/bin/python" "$@"
