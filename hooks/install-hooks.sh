#!/usr/bin/env bash
# Points git at the versioned hooks in hooks/ (run once per clone).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
chmod +x hooks/pre-commit hooks/pre-push
git config core.hooksPath hooks
echo "git hooks installed from hooks/"
