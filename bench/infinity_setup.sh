#!/usr/bin/env bash
# Creates bench/.venv-infinity with infinity-emb 0.0.78 (server + torch engine), for bench/serve_load.py.
#
#     bash bench/infinity_setup.sh            # idempotent: does nothing if the venv already works
#     bash bench/infinity_setup.sh --force    # rebuild it
#
# Why its own venv: infinity-emb 0.0.78 pins numpy<2, sentence-transformers<4, click<8.2, typer<0.13,
# uvicorn<0.33 and rich<14 — none of which fit scorekit's environment (numpy 2, transformers 5).
# torch is pinned to 2.13.0 and installed first from the local CPU wheel, so nothing pulls the CUDA build.
# The venv holds a `.gitignore` of `*`, so git never sees it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${INFINITY_VENV:-$HERE/.venv-infinity}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"

if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$VENV"
fi

if [[ -x "$VENV/bin/infinity_emb" ]] && "$VENV/bin/python" -c "import infinity_emb, sentence_transformers, torch" 2>/dev/null \
        && ! "$VENV/bin/python" -c "import posthog" 2>/dev/null; then
    echo "infinity venv ready: $VENV"
    exit 0
fi

"$PYTHON" -m venv "$VENV"
echo '*' > "$VENV/.gitignore"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off)

"${PIP[@]}" --upgrade pip wheel

# torch first: the local CPU wheel if the machine has one (pip's find-links /opt/wheels), else torch==2.13.0 with
# the CPU index as the only source of torch itself.
LOCAL_TORCH="$(ls /opt/wheels/torch-${TORCH_VERSION}+cpu-*.whl 2>/dev/null | head -n1 || true)"
if [[ -n "$LOCAL_TORCH" ]]; then
    "${PIP[@]}" "$LOCAL_TORCH"
else
    "${PIP[@]}" "torch==${TORCH_VERSION}"
fi

# A constraint keeps the resolver from touching torch again.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
"$VENV/bin/python" -c "import torch; print('torch==' + torch.__version__)" > "$CONSTRAINTS"

"${PIP[@]}" -c "$CONSTRAINTS" "infinity-emb[server,torch]==0.0.78"

# infinity sends anonymous usage statistics to an outside host through posthog unless told not to; this machine
# only talks to loopback, so take the client out altogether (infinity treats it as optional). serve_load.py also
# sets DO_NOT_TRACK=1 and INFINITY_ANONYMOUS_USAGE_STATS=0.
"$VENV/bin/python" -m pip uninstall --disable-pip-version-check -y posthog

"$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
for name in ("infinity-emb", "torch", "sentence-transformers", "transformers", "numpy", "fastapi", "uvicorn"):
    print(f"  {name:24s} {md.version(name)}")
EOF
"$VENV/bin/infinity_emb" v2 --help > /dev/null
echo "infinity venv ready: $VENV"
