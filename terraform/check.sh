#!/usr/bin/env bash
# Static checks for terraform/: formatting and checkov. Run from the repo root:
#   bash terraform/check.sh
# The google provider is not needed (nor downloaded); `terraform validate`
# needs it and is documented in terraform/README.md for machines that have it.
set -euo pipefail

CHECKOV_VERSION="3.3.30"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CHECKPOINT_DISABLE=1
# No CLI config is needed; point a missing one at /dev/null to silence the warning.
if [ -z "${TF_CLI_CONFIG_FILE:-}" ] || [ ! -e "$TF_CLI_CONFIG_FILE" ]; then
  export TF_CLI_CONFIG_FILE=/dev/null
fi

if ! command -v terraform >/dev/null 2>&1; then
  echo "check.sh: terraform is not on PATH" >&2
  exit 1
fi

venv=".venv-checkov"
if [ ! -x "$venv/bin/checkov" ] || ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  # Its own venv: checkov ships a fork of python-hcl2 that shadows the
  # `hcl2` module the pytest suite uses.
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"
fi

echo "== terraform fmt -check -recursive terraform"
terraform fmt -check -recursive terraform

echo "== checkov $CHECKOV_VERSION"
"$venv/bin/checkov" -d terraform --framework terraform --skip-download --quiet --compact

echo "terraform checks passed"
